"""Catalogue entries for disk and CPU waits that are easy to miss (TLS set-up, directory
listings, fsync, sqlite3 cursors), the library call a finding names on the way to the blocking
call, and allow entries scoped to a caller or to the user's files."""

from __future__ import annotations

import builtins
import io
import json
import os
import pathlib
import ssl
import sys
import types

import pytest

from pytest_asynccheck.detectors.blocking import allow, catalogue, chain, intercept
from tests.helpers import ARGS

MARK = "# <- here"

#: name -> (setup, the blocking statement, what the finding names, its look-alike that must
#: pass: the same work offloaded, or a use that cannot block).
CASES: dict[str, tuple[str, str, str, str]] = {
    "create_default_context": (
        "",
        "ssl.create_default_context()",
        "ssl.create_default_context",
        "await asyncio.to_thread(ssl.create_default_context)",
    ),
    "load_default_certs": (
        "context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)",
        "context.load_default_certs()",
        "ssl.SSLContext.load_default_certs",
        "await asyncio.to_thread(context.load_default_certs)",
    ),
    "set_default_verify_paths": (
        "context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)",
        "context.set_default_verify_paths()",
        "ssl.SSLContext.set_default_verify_paths",
        "await asyncio.to_thread(context.set_default_verify_paths)",
    ),
    "load_verify_locations": (
        "context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)",
        "context.load_verify_locations(CAFILE)",
        "ssl.SSLContext.load_verify_locations",
        "context.load_verify_locations(cadata=ONE_CERTIFICATE)",  # in memory: no disk
    ),
    "load_cert_chain": (
        "context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        "    missing = str(tmp_path / 'missing.pem')",
        "with contextlib.suppress(OSError): context.load_cert_chain(missing)",
        "ssl.SSLContext.load_cert_chain",
        "with contextlib.suppress(OSError):\n"
        "        await asyncio.to_thread(context.load_cert_chain, missing)",
    ),
    "listdir": (
        "",
        "os.listdir(tmp_path)",
        "os.listdir",
        "await asyncio.to_thread(os.listdir, tmp_path)",
    ),
    "scandir": (
        "",
        "with os.scandir(tmp_path) as entries: list(entries)",
        "os.scandir",
        "await asyncio.to_thread(lambda: list(os.scandir(tmp_path)))",
    ),
    "walk": (
        "",
        "for _ in os.walk(tmp_path): pass",
        "os.walk -> os.scandir",
        "await asyncio.to_thread(lambda: list(os.walk(tmp_path)))",
    ),
    "glob": (
        "",
        "glob.glob(str(tmp_path / '*'))",
        "glob.glob -> os.scandir",
        "await asyncio.to_thread(glob.glob, str(tmp_path / '*'))",
    ),
    "iterdir": (
        "",
        "list(tmp_path.iterdir())",
        "pathlib.Path.iterdir -> os.*",
        "await asyncio.to_thread(lambda: list(tmp_path.iterdir()))",
    ),
    "path_glob": (
        "",
        "list(tmp_path.glob('*'))",
        "pathlib.Path.glob -> os.scandir",
        "await asyncio.to_thread(lambda: list(tmp_path.glob('*')))",
    ),
    "rglob": (
        "",
        "list(tmp_path.rglob('*'))",
        # (on Python 3.13 rglob returns glob's iterator: named Path.glob)
        "pathlib.Path.*glob -> os.scandir",
        "await asyncio.to_thread(lambda: list(tmp_path.rglob('*')))",
    ),
    "fsync": (
        "fd = os.open(tmp_path / 'f', os.O_WRONLY | os.O_CREAT)",
        "os.fsync(fd)",
        "os.fsync",
        "await asyncio.to_thread(os.fsync, fd)",
    ),
    "cursor_execute": (
        "with asynccheck.allow_blocking():\n"
        "        db = sqlite3.connect(tmp_path / 'db.sqlite', check_same_thread=False)\n"
        "    cursor = db.cursor()",
        "cursor.execute('create table t (x)')",
        "sqlite3.Cursor.execute",
        "await asyncio.to_thread(cursor.execute, 'create table t (x)')",
    ),
    "cursor_fetchall": (
        "with asynccheck.allow_blocking():\n"
        "        db = sqlite3.connect(tmp_path / 'db.sqlite', check_same_thread=False)\n"
        "        cursor = db.execute('select 1')",
        "cursor.fetchall()",
        "sqlite3.Cursor.fetchall",
        "await asyncio.to_thread(cursor.fetchall)",
    ),
}
if hasattr(os, "fdatasync"):
    CASES["fdatasync"] = (
        "fd = os.open(tmp_path / 'f', os.O_WRONLY | os.O_CREAT)",
        "os.fdatasync(fd)",
        "os.fdatasync",
        "await asyncio.to_thread(os.fdatasync, fd)",
    )

HEADER = """
import asyncio, contextlib, glob, os, sqlite3, ssl

import pytest_asynccheck as asynccheck

CAFILE = {cafile!r}
with open(CAFILE) as bundle:
    ONE_CERTIFICATE = bundle.read().split("-----END CERTIFICATE-----")[0] + (
        "-----END CERTIFICATE-----\\n"
    )
"""

TEST = """

async def test_{kind}_{name}(tmp_path):
    {setup}
    {statement}  {mark}
    if "db" in locals():
        locals()["db"].close()
    if "fd" in locals():
        os.close(locals()["fd"])
"""


def line_of(source: str, marker: str = MARK) -> int:
    """The line of ``marker`` in ``source`` as ``makepyfile`` writes it (dedented, stripped)."""
    for number, text in enumerate(source.strip("\n").splitlines(), start=1):
        if marker in text:
            return number
    raise AssertionError(f"no {marker!r} in the inner test")


def _cafile() -> str:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    pytest.skip("no CA bundle on this machine")


def test_each_new_entry_is_reported_at_its_line_and_its_look_alike_passes(
    pytester: pytest.Pytester,
) -> None:
    source = HEADER.format(cafile=_cafile())
    expected = []
    for name, (setup, statement, named, look_alike) in CASES.items():
        source += TEST.format(
            kind="bug", name=name, setup=setup or "pass", statement=statement, mark=MARK
        )
        lines = source.strip("\n").splitlines()
        line = max(number for number, text in enumerate(lines, start=1) if MARK in text)
        expected.append((name, named, line))
        source += TEST.format(
            kind="ok", name=name, setup=setup or "pass", statement=look_alike, mark=""
        )
    pytester.makepyfile(test_it=source)
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(failed=len(CASES), passed=len(CASES))
    for name, named, line in expected:
        result.stdout.fnmatch_lines(
            [
                f"*_ test_bug_{name} _*",
                "asynccheck found 1 problem in *",
                f"[[]blocking[]] blocking call {named}() held the event loop for * ms*",
                f"  at test_it.py:{line} in test_bug_{name}",
            ]
        )
    result.stdout.no_fnmatch_line("*test_ok_* - *")


def test_a_sqlite_cursor_class_of_the_users_own_is_kept(pytester: pytest.Pytester) -> None:
    """``cursor(factory=...)`` still makes the cursor class asked for."""
    pytester.makepyfile(
        test_it="""
import sqlite3
import pytest_asynccheck as asynccheck

class Mine(sqlite3.Cursor):
    pass

async def test_it():
    with asynccheck.allow_blocking():
        db = sqlite3.connect(":memory:")
        assert type(db.cursor(Mine)) is Mine
        assert isinstance(db.cursor(), sqlite3.Cursor)
        assert db.execute("select 1").fetchall() == [(1,)]
        db.close()
"""
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1)


# -- the library call on the way ----------------------------------------------------------------

MIMETYPES = """
import mimetypes
import pytest

{marker}
async def test_first_guess():
    mimetypes.guess_type("data.json")  {mark}
"""


@pytest.mark.skipif(
    not any(os.path.isfile(f) for f in __import__("mimetypes").knownfiles),
    reason="no mime.types file to read",
)
@pytest.mark.parametrize(
    ("ini", "marker", "outcome"),
    [
        ("", "", "failed"),
        ("asynccheck_blocking_allow = module:mimetypes\n", "", "passed"),
        ("", "@pytest.mark.asynccheck(allow=['mimetypes.guess_type'])", "passed"),
        ("asynccheck_blocking_allow = mimetypes.init\n", "", "passed"),
        ("asynccheck_blocking_allow = module:json\n", "", "failed"),
    ],
)
def test_a_standard_library_first_use_names_the_call_made_and_can_be_allowed_by_it(
    pytester: pytest.Pytester, ini: str, marker: str, outcome: str
) -> None:
    """mimetypes reads the system's mime files at its first use in a process: a fresh
    interpreter, where nothing has used it yet."""
    source = MIMETYPES.format(marker=marker, mark=MARK)
    pytester.makeini("[pytest]\n" + ini)
    pytester.makepyfile(test_it=source)
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(**{outcome: 1})
    if outcome == "failed":
        result.stdout.fnmatch_lines(
            [
                "[[]blocking[]] blocking call mimetypes.guess_type -> open() held the event "
                "loop for * ms*",
                f"  at test_it.py:{line_of(source)} in test_first_guess",
            ]
        )


# -- allow entries scoped to a caller or to the user's files ------------------------------------

LOADER = """
import time

def load_config():
    time.sleep(0.002)

def load_data():
    time.sleep(0.002)
"""

SCOPED = """
import time
import pytest
from pkg import loader

async def test_in_the_allowed_function():
    loader.load_config()

{marker}
async def test_in_another_function_of_that_file():
    loader.load_data()  {mark}

async def test_outside_it():
    time.sleep(0.002)  {mark2}
"""


@pytest.mark.parametrize("where", ["ini", "marker"])
def test_a_call_allowed_from_one_function_of_one_file_only_there(
    pytester: pytest.Pytester, where: str
) -> None:
    entry = "time.sleep@pkg/loader.py:load_config"
    pytester.mkpydir("pkg")
    pytester.makepyfile(**{"pkg/loader": LOADER})
    pytester.syspathinsert()
    if where == "ini":
        pytester.makeini(f"[pytest]\nasynccheck_blocking_allow =\n    {entry}\n    open@x.py:f\n")
        marker = ""
        source = SCOPED.format(marker="", mark=MARK, mark2="# <- two")
    else:
        marker = f"@pytest.mark.asynccheck(allow={[entry]!r})"
        allowed_test = "async def test_in_the_allowed_function"
        source = SCOPED.replace(allowed_test, f"{marker}\n{allowed_test}").format(
            marker=marker, mark=MARK, mark2="# <- two"
        )
    pytester.makepyfile(test_it=source)
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_in_another_function_of_that_file _*",
            "[[]blocking[]] blocking call time.sleep() held the event loop for * ms*",
            f"  at pkg/loader.py:{line_of(LOADER, 'def load_data') + 1} in load_data",
            "*_ test_outside_it _*",
            "[[]blocking[]] blocking call time.sleep() held the event loop for * ms*",
            f"  at test_it.py:{line_of(source, '# <- two')} in test_outside_it",
        ]
    )


def test_a_path_entry_accepts_test_file_setup_io_and_keeps_checking_the_code_under_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.mkpydir("app")
    pytester.makepyfile(
        **{
            "app/store": "def load(path):\n    with open(path) as f:\n        return f.read()\n",
            "tests/test_store": """
from app import store

async def test_reads_its_fixture(tmp_path):
    (tmp_path / "x").write_text("1")  # setup I/O in the test body
    with open(tmp_path / "x") as f:
        assert f.read() == "1"

async def test_the_store(tmp_path):
    path = tmp_path / "x"
    path.write_text("1")
    assert store.load(path) == "1"
""",
        }
    )
    pytester.syspathinsert()
    report = pytester.path / "report.json"
    result = pytester.runpytest(*ARGS, "-p", "no:randomly", f"--asynccheck-report={report}")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*= asynccheck =*",
            "in the code under test:",
            "error blocking        app/store.py:2 in load open  x1",
            "in test files:",
            "error blocking        tests/test_store.py:4 in test_reads_its_fixture "
            "pathlib.Path.write_text  x1",
            "error blocking        tests/test_store.py:5 in test_reads_its_fixture open  x1",
        ]
    )
    findings = json.loads(report.read_text())["findings"]
    assert {(f["file"], f["in_test_file"]) for f in findings} == {
        ("app/store.py", False),
        ("tests/test_store.py", True),
    }

    pytester.makeini("[pytest]\nasynccheck_blocking_allow = path:tests/*\n")
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*_ test_the_store _*", "  at app/store.py:2 in load"])


# -- units ----------------------------------------------------------------------------------


def test_allow_entries_parse_into_their_forms_and_bad_ones_say_the_form_expected() -> None:
    parse = allow.parse_allow_entry
    assert parse(" builtins.open ") == allow.AllowEntry("builtins.open", call="open")
    assert parse("module:botocore").module == "botocore"
    assert parse("path:tests/*").path == "tests/*"
    scoped = parse("open@pydantic/networks.py:import_email_validator")
    assert (scoped.call, scoped.path, scoped.function) == (
        "open",
        "pydantic/networks.py",
        "import_email_validator",
    )
    for bad, form in [
        ("module:", "module:<module prefix>*"),
        ("path: ", "path:<glob*"),
        ("open@x.py", "<call>@<path suffix>:<function>*"),
        ("@x.py:f", "<call>@*"),
        ("open@:f", "<call>@*"),
        ("", "a call name*"),
    ]:
        with pytest.raises(ValueError) as info:
            parse(bad)
        assert __import__("fnmatch").fnmatch(str(info.value), form), (bad, info.value)


def test_a_catalogue_row_names_its_module_without_a_second_table() -> None:
    target = catalogue._target
    assert target("http.client.HTTPConnection.connect") == ("http.client", "HTTPConnection.connect")
    assert target("concurrent.futures.wait") == ("concurrent.futures", "wait")
    assert target("socket.socket.recv") == ("socket", "socket.recv")
    assert target("os.walk") == ("os", "walk")
    assert target("open") == ("builtins", "open")
    assert "sqlite3" in sys.modules or target("sqlite3.Cursor.execute") == (
        "sqlite3",
        "Cursor.execute",
    )


class _Owner:
    def method(self) -> types.FrameType:
        return sys._getframe()

    @classmethod
    def made(cls) -> types.FrameType:
        return sys._getframe()


def test_a_methods_class_is_found_without_co_qualname() -> None:
    """Python 3.10 frames have no ``co_qualname``: the class comes from the first argument."""
    assert chain._qualname_of(_Owner().method()) == "_Owner.method"
    assert chain._qualname_of(_Owner.made()) == "_Owner.made"
    assert chain._qualname_of(sys._getframe()) == (
        "test_a_methods_class_is_found_without_co_qualname"
    )


def test_a_class_holding_a_catalogued_function_of_its_own_is_pointed_at_the_wrapper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pathlib on 3.10 and glob on 3.13 keep ``os.scandir`` in a class attribute; the
    interceptor points those at its wrapper (as a static method) and puts them back."""
    import time

    holder_module = types.ModuleType("holder_module")

    class Holder:
        plain = time.sleep
        static = staticmethod(time.sleep)
        other = staticmethod(len)

    holder_module.Holder = Holder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "holder_module", holder_module)
    monkeypatch.setattr(
        intercept, "_HOLDERS", (("holder_module", "Holder"), ("holder_module", "Missing"))
    )
    session = types.SimpleNamespace(current=None, main_thread=0)
    interceptor = intercept.Interceptor(session)  # type: ignore[arg-type]
    interceptor.install()
    try:
        wrapped = time.sleep
        assert getattr(wrapped, "__asynccheck_blocker__", None) == "time.sleep"
        assert vars(Holder)["plain"].__func__ is wrapped
        assert vars(Holder)["static"].__func__ is wrapped
        assert vars(Holder)["other"].__func__ is len
        assert Holder().plain is wrapped
    finally:
        interceptor.uninstall()
    assert getattr(time.sleep, "__asynccheck_blocker__", None) is None
    assert vars(Holder)["plain"] is time.sleep
    assert vars(Holder)["static"].__func__ is time.sleep


def test_allow_rules_match_the_call_its_chain_its_modules_its_file_and_its_callers() -> None:
    frame = sys._getframe()
    call = chain.Call(
        "open",
        ("mimetypes.guess_type", "mimetypes.MimeTypes.read"),
        ("pathlib._local.Path.glob",),
        ("mimetypes",),
        os.path.join("tests", "test_x.py"),
        [frame],
    )
    rules = allow.AllowRules
    assert rules(["builtins.open"]).allows(call)
    assert rules(["mimetypes.MimeTypes.read"]).allows(call)
    assert rules(["pathlib._local.Path.glob"]).allows(call)
    assert rules(["module:mime"]).allows(call)
    assert rules(["path:tests/*"]).allows(call)
    here = "tests/test_catalogue.py:" + frame.f_code.co_name
    assert rules([f"open@{here}"]).allows(call)
    assert rules([f"*@test_catalogue.py:{frame.f_code.co_name}"]).allows(call)
    assert rules([f"mimetypes.guess_type@{here}"]).allows(call)
    for entry in [
        "time.sleep",
        "module:json",
        "path:src/*",
        f"time.sleep@{here}",
        "open@tests/test_catalogue.py:another_function",
        f"open@other/test_catalogue.py:{frame.f_code.co_name}",
        f"open@atalogue.py:{frame.f_code.co_name}",
        "open@",  # malformed: left out, never matching everything
    ]:
        assert not rules([entry]).allows(call), entry


def test_a_chain_link_is_named_as_its_public_package_exports_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = types.ModuleType("pubpkg")
    monkeypatch.setitem(sys.modules, "pubpkg", package)
    namespace: dict[str, object] = {"__name__": "pubpkg._impl", "sys": sys}
    exec("class Thing:\n    def where(self):\n        return sys._getframe()\n", namespace)
    thing = namespace["Thing"]
    frame = thing().where()  # type: ignore[operator]
    own = "pubpkg._impl.Thing.where"
    assert chain._qualified_names(frame) == (own, own)  # not exported: its own name
    package.Thing = thing  # type: ignore[attr-defined]
    assert chain._qualified_names(frame) == ("pubpkg.Thing.where", own)

    namespace = {"__name__": "glob", "sys": sys}
    exec("class _Globber:\n    def select(self):\n        return sys._getframe()\n", namespace)
    frame = namespace["_Globber"]().select()  # type: ignore[operator]
    assert chain._qualified_names(frame) == ("pathlib.Path.glob", "glob._Globber.select")

    namespace = {"__name__": None, "sys": sys}
    exec("def anonymous():\n    return sys._getframe()\n", namespace)
    frame = namespace["anonymous"]()  # type: ignore[operator]
    assert chain._qualified_names(frame) == ("anonymous", "anonymous")


def test_a_module_imported_during_the_session_is_patched_with_its_aliases_and_put_back(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Install looks nothing up on disk for a package not imported yet (finding out whether
    ``http.client`` is a module imports ``http``): its rows wait for it. Once it is imported,
    its calls are patched, and so are the aliases that modules imported since the last scan
    took of them; all of them are put back at the end."""
    root = tmp_path / "late"
    (root / "asynccheck_late").mkdir(parents=True)
    (root / "asynccheck_late" / "__init__.py").write_text("")
    (root / "asynccheck_late" / "calls.py").write_text("def block():\n    return 1\n")
    (root / "asynccheck_late_alias.py").write_text(
        "from asynccheck_late.calls import block as nap\n"
    )
    (root / "asynccheck_later_alias.py").write_text(
        "from asynccheck_late.calls import block as nap\n"
    )
    monkeypatch.syspath_prepend(str(root))
    name = "asynccheck_late.calls.block"
    monkeypatch.setattr(intercept, "CATALOGUE", (catalogue.Blocker(name, "blocks", "don't"),))
    late_modules = [
        "asynccheck_late",
        "asynccheck_late.calls",
        "asynccheck_late_alias",
        "asynccheck_later_alias",
    ]
    session = types.SimpleNamespace(current=None, main_thread=0)
    interceptor = intercept.Interceptor(session)  # type: ignore[arg-type]
    try:
        interceptor.install()
        assert "asynccheck_late" not in sys.modules
        import asynccheck_late.calls  # type: ignore[import-not-found]
        import asynccheck_late_alias  # type: ignore[import-not-found]

        original = asynccheck_late.calls.block
        interceptor.refresh()
        wrapped = asynccheck_late.calls.block
        assert getattr(wrapped, "__asynccheck_blocker__", None) == name
        assert asynccheck_late_alias.nap is wrapped
        import asynccheck_later_alias  # type: ignore[import-not-found]

        interceptor.refresh()
        assert asynccheck_later_alias.nap is wrapped
        assert catalogue._target(name) == ("asynccheck_late.calls", "block")
    finally:
        interceptor.uninstall()
        modules = [sys.modules.pop(module, None) for module in late_modules]
    assert [getattr(module, "__name__", None) for module in modules] == late_modules
    assert asynccheck_late.calls.block is original
    assert asynccheck_late_alias.nap is original
    assert asynccheck_later_alias.nap is original


def test_aliases_bound_before_the_session_are_put_back_by_key_and_later_ones_are_found(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Install points each alias that a module loaded before it holds at the wrapper, and
    uninstall puts exactly those back where the wrapper still is (a key the code under test
    rebound keeps its new value); a module imported during the session took the wrapper under
    a name of its own, and is searched for it."""
    root = tmp_path / "early"
    root.mkdir()
    (root / "asynccheck_early_calls.py").write_text("def block():\n    return 1\n")
    (root / "asynccheck_early_alias.py").write_text(
        "from asynccheck_early_calls import block as nap, block as kept\n"
    )
    (root / "asynccheck_during.py").write_text("from asynccheck_early_calls import block as doze\n")
    monkeypatch.syspath_prepend(str(root))
    import asynccheck_early_alias  # type: ignore[import-not-found]
    import asynccheck_early_calls  # type: ignore[import-not-found]

    original = asynccheck_early_calls.block
    name = "asynccheck_early_calls.block"
    monkeypatch.setattr(intercept, "CATALOGUE", (catalogue.Blocker(name, "blocks", "don't"),))
    session = types.SimpleNamespace(current=None, main_thread=0)
    interceptor = intercept.Interceptor(session)  # type: ignore[arg-type]
    replaced = object()
    try:
        interceptor.install()
        wrapped = asynccheck_early_calls.block
        assert wrapped is not original
        assert asynccheck_early_alias.nap is wrapped
        assert asynccheck_early_alias.kept is wrapped
        asynccheck_early_alias.kept = replaced
        import asynccheck_during  # type: ignore[import-not-found]

        assert asynccheck_during.doze is wrapped
    finally:
        interceptor.uninstall()
        for module in ("asynccheck_early_calls", "asynccheck_early_alias", "asynccheck_during"):
            sys.modules.pop(module, None)
    assert asynccheck_early_calls.block is original
    assert asynccheck_early_alias.nap is original
    assert asynccheck_early_alias.kept is replaced
    assert asynccheck_during.doze is original


def test_the_wrapper_beneath_the_plugins_own_open_is_put_back_at_uninstall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The unclosed check's ``open`` goes on top of the blocking check's wrapper and keeps the
    wrapper beneath in a global of its module: uninstall searches that module (by name, not
    every module of the plugin's) and puts the original there too."""
    from pytest_asynccheck.detectors import resource_patches

    originals = (builtins.open, io.open)
    monkeypatch.setattr(
        intercept, "CATALOGUE", tuple(b for b in catalogue.CATALOGUE if b.name == "open")
    )
    session = types.SimpleNamespace(current=None, main_thread=0)
    interceptor = intercept.Interceptor(session)  # type: ignore[arg-type]
    try:
        interceptor.install()
        wrapped = (builtins.open, io.open)
        assert wrapped[0] is not originals[0]
        resource_patches.install_open()
        beneath = (resource_patches.builtins_open_beneath, resource_patches.io_open_beneath)
        assert beneath == wrapped
    finally:
        resource_patches.uninstall_open()
        interceptor.uninstall()
    assert (builtins.open, io.open) == originals
    assert resource_patches.builtins_open_beneath is originals[0]
    assert resource_patches.io_open_beneath is originals[1]


def test_run_until_complete_is_wrapped_with_its_own_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runners call it at every step: its wrapper declares the original's parameters, so a
    call is passed on as it came (by keyword too), and a nested one is still checked."""
    import asyncio
    import inspect

    name = "asyncio.BaseEventLoop.run_until_complete"
    original = asyncio.BaseEventLoop.__dict__["run_until_complete"]
    monkeypatch.setattr(
        intercept, "CATALOGUE", tuple(b for b in catalogue.CATALOGUE if b.name == name)
    )
    session = types.SimpleNamespace(current=None, main_thread=0)
    interceptor = intercept.Interceptor(session)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    try:
        interceptor.install()
        wrapped = asyncio.BaseEventLoop.__dict__["run_until_complete"]
        assert wrapped is not original
        assert inspect.signature(wrapped) == inspect.signature(original)
        assert wrapped.__qualname__ == original.__qualname__
        assert loop.run_until_complete(future=asyncio.sleep(0, "by keyword")) == "by keyword"
        assert loop.run_until_complete(asyncio.sleep(0, "by position")) == "by position"
    finally:
        loop.close()
        interceptor.uninstall()
    assert asyncio.BaseEventLoop.__dict__["run_until_complete"] is original


def test_every_fix_has_trio_terms_and_the_table_names_only_fixes_in_use() -> None:
    from pytest_asynccheck.detectors.blocking.stalls import STALL_FIX_TRIO

    fixes = {row.fix for row in catalogue.CATALOGUE}
    assert set(catalogue.TRIO_FIXES) <= fixes
    for fix in fixes:
        assert "asyncio" not in catalogue.trio_fix(fix), fix
    assert "asyncio" not in STALL_FIX_TRIO
