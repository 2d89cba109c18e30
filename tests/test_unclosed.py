"""Connections, sockets, subprocess transports, files and loops a test (or its async fixture)
makes and never closes fail it at the line that made them; closed ones, pooled ones, and
ResourceWarnings are left alone, and nothing the code under test sees changes type."""

from __future__ import annotations

import gc
import json
import re
import warnings

import jsonschema
import pytest

from pytest_asynccheck.detectors.unclosed import FIXES, LIBRARY_FIX
from tests.helpers import (
    ANYIO,
    ARGS,
    ASYNCIO,
    ASYNCIO_INI,
    LOOP_SCOPE,
    PYTEST_ASYNCIO_0_23,
    REPORT_SCHEMA,
    anyio_module,
    write_for_runner,
)

# Python ignores ResourceWarnings unless told otherwise: so do the inner runs here (this
# suite's "error" filter would turn asyncio's own warnings about the leaks into errors).
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

RUNNERS = [
    pytest.param("standalone", id="standalone"),
    pytest.param("asyncio", id="pytest-asyncio"),
    pytest.param("anyio", id="anyio-asyncio"),
]


def run_with(pytester: pytest.Pytester, runner: str, source: str, *args: str) -> pytest.RunResult:
    """Run ``source`` as test_mod.py under ``runner``; lines keep their numbers (the anyio
    marker goes at the end of the module)."""
    if runner == "anyio":
        pytester.makeconftest(anyio_module("", imports=()))
        pytester.makepyfile(test_mod=source + "\n\npytestmark = pytest.mark.anyio\n")
        extra: tuple[str, ...] = (*ANYIO, "-p", "no:asyncio")
    else:
        extra = ASYNCIO if runner == "asyncio" else ()
        write_for_runner(pytester, extra, source)
    result = pytester.runpytest(*ARGS, *extra, "-p", "no:randomly", *args)
    settle()
    return result


def settle() -> None:
    """Free what an in-process inner run leaked on purpose, here rather than in a later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def line_of(source: str, marker: str) -> int:
    return next(n for n, line in enumerate(source.splitlines(), 1) if marker in line)


SERVER = """\
import asyncio
import socket
import sys

import pytest


async def answer(reader, writer):
    await reader.readline()
    writer.write(b"pong\\n")
    await writer.drain()
    writer.close()


@pytest.fixture
async def port():
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
"""

LEAKS = (
    SERVER
    + """


async def test_client_forgets_to_close(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # WRITER
    writer.write(b"ping\\n")
    assert await reader.readline() == b"pong\\n"


async def test_socket_never_closed():
    sock = socket.socket()  # SOCKET
    sock.bind(("127.0.0.1", 0))


class Exited(asyncio.SubprocessProtocol):
    def __init__(self, done):
        self.done = done

    def process_exited(self):
        self.done.set_result(None)


async def test_subprocess_transport_never_closed():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    await loop.subprocess_exec(lambda: Exited(done), sys.executable, "-c", "pass")  # SUBPROCESS
    await done


async def test_event_loop_never_closed():
    other = asyncio.new_event_loop()  # LOOP
    assert not other.is_closed()


class Holder:
    pass


async def test_socket_left_in_a_reference_cycle():
    holder = Holder()
    holder.me = holder
    holder.sock = socket.socket()  # CYCLE


async def test_file_read_and_dropped(tmp_path):
    (tmp_path / "data.txt").write_text("data")
    assert open(tmp_path / "data.txt").read() == "data"  # FILE
"""
)


@pytest.mark.parametrize("runner", RUNNERS)
def test_unclosed_resources_fail_at_the_line_that_made_them(
    pytester: pytest.Pytester, runner: str
) -> None:
    result = run_with(pytester, runner, LEAKS, "--asynccheck-blocking=off")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 6, outcomes
    for test, marker, what, fix in (
        ("test_client_forgets_to_close", "WRITER", "StreamWriter", "StreamWriter"),
        ("test_socket_never_closed", "SOCKET", "socket.socket", "socket"),
        ("test_subprocess_transport_never_closed", "SUBPROCESS", "subprocess transport", ""),
        ("test_event_loop_never_closed", "LOOP", "event loop", "event loop"),
        ("test_socket_left_in_a_reference_cycle", "CYCLE", "socket.socket", "socket"),
        ("test_file_read_and_dropped", "FILE", "open()", "file"),
    ):
        result.stdout.fnmatch_lines(
            [
                f"asynccheck found 1 problem in test_mod.py::{test} *",
                f"?unclosed? {what} made here was * it was never closed",
                f"  at test_mod.py:{line_of(LEAKS, '# ' + marker)} in {test}",
                f"  fix: {FIXES[fix or what]}",
            ]
        )
    # Freed by reference counting in the test body: a failure of its call phase.
    result.stdout.fnmatch_lines(
        [
            "*test_socket_never_closed (call):",
            "?unclosed? socket.socket made here was freed while still open: it was never closed",
        ]
    )


CLOSED = (
    SERVER
    + """
POOL = []



async def test_stream_closed_in_finally_without_wait_closed(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"ping\\n")
        assert await reader.readline() == b"pong\\n"
    finally:
        writer.close()


async def test_socket_closed_by_its_with_block():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))


async def test_server_closed_at_teardown(request):
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    request.addfinalizer(server.close)


async def test_subprocess_awaited():
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    assert await proc.wait() == 0


async def test_event_loop_closed():
    other = asyncio.new_event_loop()
    other.close()


async def test_file_in_a_with_block(tmp_path):
    with open(tmp_path / "data.txt", "w") as out:
        out.write("data")


async def test_pooled_socket_kept_open_for_the_session():
    if not POOL:
        POOL.append(socket.socket())


@pytest.fixture(scope="session", autouse=True)
def pool_closed_at_session_end():
    yield
    for sock in POOL:
        sock.close()
"""
)


@pytest.mark.parametrize("runner", RUNNERS)
def test_closed_and_pooled_resources_pass(pytester: pytest.Pytester, runner: str) -> None:
    result = run_with(pytester, runner, CLOSED, "--asynccheck-blocking=off")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["asynccheck: no findings in 7 checked tests"])


FIXTURES = """\
import asyncio

import pytest


async def answer(reader, writer):
    await reader.readline()
    writer.close()


@pytest.fixture
async def server():
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def leaky_connection(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)  # LEAKY
    yield writer


@pytest.fixture
async def connection(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    yield writer
    writer.close()
    await writer.wait_closed()


async def test_uses_a_leaky_fixture(leaky_connection):
    leaky_connection.write(b"hi\\n")


async def test_uses_a_closing_fixture(connection):
    connection.write(b"hi\\n")
"""


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_fixture_that_never_closes_its_connection(pytester: pytest.Pytester, runner: str) -> None:
    result = run_with(pytester, runner, FIXTURES)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 2 and outcomes.get("errors", 0) == 1, outcomes
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_uses_a_leaky_fixture (teardown):",
            "?unclosed? StreamWriter made here was * it was never closed, in fixture "
            "'leaky_connection' (setup)",
            f"  at test_mod.py:{line_of(FIXTURES, '# LEAKY')} in leaky_connection",
        ]
    )


TYPES = """\
import asyncio
import io
import socket
import subprocess
import sys


async def test_types_are_the_standard_librarys(tmp_path):
    sock = socket.socket()
    assert type(sock) is socket.socket
    sock.close()
    left, right = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=left)
    assert type(writer) is asyncio.StreamWriter
    assert type(writer.transport).__module__ == "asyncio.selector_events"
    assert type(writer.transport).__mro__[1:3] == (
        asyncio.selector_events._SelectorTransport,
        asyncio.transports._FlowControlMixin,
    )
    writer.close()
    right.close()
    with open(tmp_path / "f", "w") as text:
        assert type(text) is io.TextIOWrapper
        assert type(text.buffer.raw) is io.FileIO
    with open(tmp_path / "f", "rb") as raw:
        assert type(raw) is io.BufferedReader
    loop = asyncio.new_event_loop()
    assert type(loop) is asyncio.SelectorEventLoop
    loop.close()
"""


def test_what_the_code_under_test_sees_keeps_its_type(pytester: pytest.Pytester) -> None:
    result = run_with(pytester, "standalone", TYPES, "--asynccheck-blocking=off")
    result.assert_outcomes(passed=1)


FAKE_LIBRARY = """\
import asyncio
import traceback


class ClientSession:
    def __init__(self, debug=False):
        self._loop = asyncio.get_running_loop()
        self.closed = False
        # What aiohttp records in asyncio's debug mode.
        self._source_traceback = traceback.extract_stack() if debug else None

    async def close(self):
        self.closed = True

    def __del__(self):
        if not self.closed:
            context = {"message": "Unclosed client session", "client_session": self}
            if self._source_traceback:
                context["source_traceback"] = self._source_traceback
            self._loop.call_exception_handler(context)
"""

LIBRARY_USE = """\
import fakelib


async def test_session_dropped_open():
    session = fakelib.ClientSession()
    del session


async def test_session_closed():
    session = fakelib.ClientSession()
    await session.close()


async def test_session_dropped_open_in_debug_mode():
    session = fakelib.ClientSession(debug=True)  # MADE
    session = None


async def test_other_handler_reports_are_not_findings():
    import asyncio

    loop = asyncio.get_running_loop()
    loop.call_exception_handler({"message": "something else"})
    loop.call_exception_handler({"message": "Unclosed thing", "thing": object()})
"""


def test_a_library_report_through_the_loop_handler_is_a_finding(
    pytester: pytest.Pytester,
) -> None:
    # In a directory named like an installed package's, so its frames are not the user's.
    library = pytester.mkdir("site-packages")
    (library / "fakelib.py").write_text(FAKE_LIBRARY)
    pytester.makeconftest(f"import sys\nsys.path.insert(0, {str(library)!r})\n")
    pytester.makepyfile(test_mod=LIBRARY_USE)
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(failed=2, passed=2)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_session_dropped_open_in_debug_mode *",
            "?unclosed? Unclosed client session: *",
            f"  at test_mod.py:{line_of(LIBRARY_USE, '# MADE')} in "
            "test_session_dropped_open_in_debug_mode",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_session_dropped_open (call):",
            "?unclosed? Unclosed client session: a client session (ClientSession) was never closed",
            "  at test_mod.py:6 in test_session_dropped_open",
            f"  fix: {LIBRARY_FIX}",
        ]
    )
    # The library's own log line is still written by the loop's handler.
    result.stdout.fnmatch_lines(["*Unclosed client session*", "client_session: <fakelib*"])


RESOURCE_WARNINGS = """\
import gc
import socket

import pytest


def make_and_drop():
    socket.socket()


def test_sync_test_drops_a_socket():
    make_and_drop()
    gc.collect()


@pytest.fixture
def dropped():
    make_and_drop()
    gc.collect()


async def test_fixture_drops_a_socket(dropped):
    pass


async def test_closed_socket():
    with socket.socket():
        pass


async def test_body_drops_a_socket():
    make_and_drop()
"""


@pytest.mark.parametrize("flag", ["default", "error"])
def test_resource_warnings_reach_pytest_as_without_the_checks(
    pytester: pytest.Pytester, flag: str
) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makepyfile(test_mod=RESOURCE_WARNINGS)
    run = ("-p", "no:randomly", *ASYNCIO, "-W", f"{flag}::ResourceWarning", "-rA")

    def warnings_of(result: pytest.RunResult) -> list[str]:
        # The checks hold descriptors of their own: the sockets' numbers differ.
        return [re.sub(r"fd=\d+", "fd=N", line) for line in result.outlines if "Resource" in line]

    plain = pytester.runpytest("-p", "asynccheck", *run, "-k", "not body")
    settle()
    for kind_off in (ARGS, (*ARGS, "--asynccheck-unclosed=off")):
        checked = pytester.runpytest(*kind_off, *run, "-k", "not body")
        settle()
        assert checked.parseoutcomes() == plain.parseoutcomes()
        assert warnings_of(checked) == warnings_of(plain)
    if flag == "default":  # under "error", what is shown and fails is pytest's version's
        assert plain.parseoutcomes().get("passed") == 3
        plain.stdout.fnmatch_lines(["*ResourceWarning*unclosed <socket.socket*"])
    # Off, a leak of the body is only Python's warning; on, it is a finding besides.
    for kind, finding in (("off", False), ("error", True)):
        checked = pytester.runpytest(*ARGS, *run, "-k", "body", f"--asynccheck-unclosed={kind}")
        settle()
        if flag == "default":
            checked.stdout.fnmatch_lines(["*ResourceWarning*unclosed <socket.socket*"])
        shown = "?unclosed? socket.socket made here was freed while still open*"
        if finding:
            checked.stdout.fnmatch_lines([shown, "  at test_mod.py:8 in make_and_drop"])
        else:
            checked.stdout.no_fnmatch_line(shown)


def test_warn_level_and_allow_marker(pytester: pytest.Pytester) -> None:
    source = LEAKS.replace(
        "async def test_socket_never_closed",
        "@pytest.mark.asynccheck(allow=['unclosed'])\nasync def test_socket_never_closed",
    )
    result = run_with(
        pytester, "standalone", source, "--asynccheck-unclosed=warn", "--asynccheck-blocking=off"
    )
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*UnclosedResourceWarning: ?unclosed? event loop made here*"])
    summary = result.stdout.str().split("== asynccheck ==")[-1]
    assert "test_socket_never_closed" not in summary
    assert "test_client_forgets_to_close" in summary


CI_TESTS = """\
import socket


async def test_socket_never_closed():
    socket.socket()
"""


def test_json_report_annotations_and_baseline_carry_the_kind(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pytester.makepyfile(test_mod=CI_TESTS)
    result = pytester.runpytest(*ARGS, "--asynccheck-report=r.json", "-p", "no:randomly")
    settle()
    data = json.loads((pytester.path / "r.json").read_text())
    jsonschema.validate(data, json.loads(REPORT_SCHEMA.read_text()))
    assert [(f["kind"], f["line"], f["call"]) for f in data["findings"]] == [
        ("unclosed", 5, "socket.socket")
    ]
    commands = [line for line in result.outlines if line.startswith("::error")]
    assert any(
        line.startswith("::error file=test_mod.py,line=5,title=asynccheck unclosed in ")
        for line in commands
    ), commands
    baseline = ("--asynccheck-baseline=b.json", "-p", "no:randomly")
    pytester.runpytest(*ARGS, *baseline, "--asynccheck-update-baseline").assert_outcomes(passed=1)
    pytester.runpytest(*ARGS, *baseline).assert_outcomes(passed=1)
    settle()


MORE = f"""\
import asyncio

import pytest

KEPT = []


async def test_datagram_transport_never_closed():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(  # DATAGRAM
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )


async def test_loop_kept_open_past_the_test():
    KEPT.append(asyncio.new_event_loop())  # KEPT


@pytest.mark.asyncio({LOOP_SCOPE}="module")
async def test_pooled_connection_on_a_shared_loop():
    loop = asyncio.get_running_loop()
    KEPT.append(
        await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
    )


@pytest.mark.asyncio({LOOP_SCOPE}="module")
async def test_pool_closed_by_a_later_test():
    transport, _protocol = KEPT.pop()
    transport.close()
    KEPT.pop().close()
"""


def test_datagram_transports_loops_kept_open_and_pools_on_a_shared_loop(
    pytester: pytest.Pytester,
) -> None:
    result = run_with(pytester, "asyncio", MORE)
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "?unclosed? _SelectorDatagramTransport made here was * it was never closed",
            f"  at test_mod.py:{line_of(MORE, '# DATAGRAM')} in "
            "test_datagram_transport_never_closed",
            f"  fix: {FIXES['transport']}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "?unclosed? event loop made here was still open when the test ended: *",
            f"  at test_mod.py:{line_of(MORE, '# KEPT')} in test_loop_kept_open_past_the_test",
        ]
    )


def test_a_writer_freed_open_fails_the_call_phase(pytester: pytest.Pytester) -> None:
    result = run_with(pytester, "standalone", LEAKS, "-k", "client_forgets")
    result.assert_outcomes(passed=0, failed=1, deselected=5)
    result.stdout.fnmatch_lines(
        ["*(call):", "?unclosed? StreamWriter made here was freed while still open*"]
    )


ADOPTED = """\
import asyncio
import socket


async def test_writer_over_a_socket_pair_never_closed():
    left, right = socket.socketpair()  # PAIR
    reader, writer = await asyncio.open_connection(sock=left)
    right.close()


async def test_writer_over_a_socket_pair_closed():
    left, right = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=left)
    writer.close()
    await writer.wait_closed()
    right.close()
"""


def test_a_connection_over_a_socket_points_at_the_line_that_made_the_socket(
    pytester: pytest.Pytester,
) -> None:
    """The transport takes over the socket's entry: the finding is the writer's, at the line
    that made the socket, and the closed look-alike passes."""
    result = run_with(pytester, "standalone", ADOPTED)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_writer_over_a_socket_pair_never_*",
            "?unclosed? StreamWriter made here was * it was never closed",
            f"  at test_mod.py:{line_of(ADOPTED, '# PAIR')} in "
            "test_writer_over_a_socket_pair_never_closed",
            f"  fix: {FIXES['StreamWriter']}",
        ]
    )


NOT_THE_LOOPS = """\
import asyncio
import socket


def make_and_drop(path):
    socket.socket()
    open(path, "w").write("x")


def test_a_sync_test_is_not_checked(tmp_path):
    make_and_drop(tmp_path / "a")


async def test_a_worker_thread_is_not_the_loops(tmp_path):
    await asyncio.to_thread(make_and_drop, tmp_path / "b")
"""


def test_what_a_sync_test_or_a_worker_thread_makes_is_not_tracked(
    pytester: pytest.Pytester,
) -> None:
    result = run_with(pytester, "standalone", NOT_THE_LOOPS)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["asynccheck: no findings in 1 checked test"])


SHARED = """\
import asyncio

import pytest
import pytest_asyncio


async def answer(reader, writer):
    writer.close()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def connection():
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    yield writer
    writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.asyncio(loop_scope="module")
async def test_first(connection):
    assert not connection.is_closing()


@pytest.mark.asyncio(loop_scope="module")
async def test_second(connection):
    assert not connection.is_closing()
"""


@pytest.mark.skipif(PYTEST_ASYNCIO_0_23, reason="fixtures unchecked on pytest-asyncio 0.23")
def test_a_module_fixture_keeps_its_connection_across_tests(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = strict\n" + ASYNCIO_INI)
    pytester.makepyfile(test_mod=SHARED)
    result = pytester.runpytest(*ARGS, *ASYNCIO, "-p", "no:randomly")
    settle()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["asynccheck: no findings in 2 checked tests"])


BOTH = """\
async def test_reads_a_file_on_the_loop(tmp_path):
    (tmp_path / "data.txt").write_text("data")
    assert open(tmp_path / "data.txt").read() == "data"
"""


def test_a_file_opened_on_the_loop_is_still_a_blocking_call_of_the_users(
    pytester: pytest.Pytester,
) -> None:
    result = run_with(pytester, "standalone", BOTH)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "?blocking? blocking call open() held the event loop for *",
            "  at test_mod.py:3 in test_reads_a_file_on_the_loop",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "?unclosed? open() made here was freed while still open: it was never closed",
            "  at test_mod.py:3 in test_reads_a_file_on_the_loop",
        ]
    )


SOCKET_ARGUMENTS = """\
import socket


class Tagged(socket.socket):
    def __init__(self, *args, tag, **kwargs):
        super().__init__(*args, **kwargs)
        self.tag = tag


async def test_made_by_position_by_keyword_and_by_a_subclass():
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as by_position,
        socket.socket(family=socket.AF_INET, type=socket.SOCK_DGRAM) as by_keyword,
        Tagged(socket.AF_INET, tag="mine") as subclassed,
    ):
        made = (by_position.type, by_keyword.type, subclassed.tag)
        assert made == (socket.SOCK_STREAM, socket.SOCK_DGRAM, "mine")


async def test_bad_arguments_fail_as_they_do_without_the_checks():
    socket.socket(socket.AF_INET, fileno="not a descriptor")
"""


def _failure_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith(("E ", ">", "    ", "test_mod"))]


def test_sockets_are_made_with_their_own_parameters_and_fail_as_without_the_checks(
    pytester: pytest.Pytester,
) -> None:
    """The registering ``__init__`` takes the parameters of the one it wraps: positional,
    keyword and a subclass's arguments reach ``socket.socket`` as they were given, and a bad
    one fails with the same traceback, without a frame of the plugin's."""
    checked = run_with(pytester, "asyncio", SOCKET_ARGUMENTS)
    checked.assert_outcomes(passed=1, failed=1)
    plain = pytester.runpytest("-p", "asynccheck", *ASYNCIO, "-p", "no:randomly")
    plain.assert_outcomes(passed=1, failed=1)
    assert "resource_patches" not in checked.stdout.str()
    assert "TypeError" in checked.stdout.str()
    assert _failure_lines(checked) == _failure_lines(plain)
