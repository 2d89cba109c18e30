"""Off means inert, and on leaves nothing behind: no patched attribute, no thread, no hook."""

from __future__ import annotations

import pytest

from tests.helpers import ARGS

#: Written into the inner run's conftest: snapshots the attributes detectors could patch when
#: the conftest is imported (before the check session starts), compares them in the session and
#: again when the interpreter exits (after the check session ended), and writes what differs.
SNAPSHOT_CONFTEST = """
import atexit
import importlib
import pathlib
import sys
import threading

MODULES = [
    "asyncio", "asyncio.events", "asyncio.base_events", "asyncio.tasks", "builtins", "io",
    "os", "pathlib", "queue", "select", "shutil", "socket", "sqlite3", "ssl", "subprocess",
    "threading", "time", "urllib.request", "http.client", "concurrent.futures", "warnings",
]
OUT = pathlib.Path(__file__).with_name("inert.txt")


def snapshot():
    state = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if callable(value):
                state[(name, attr)] = id(value)
            if isinstance(value, type):
                for meth, member in vars(value).items():
                    if callable(member):
                        state[(name, attr + "." + meth)] = id(member)
    state[("sys", "coroutine_origin_tracking_depth")] = sys.get_coroutine_origin_tracking_depth()
    state[("sys", "unraisablehook")] = id(sys.unraisablehook)
    return state


BEFORE = snapshot()
THREADS = {t.ident for t in threading.enumerate()}


def changes(label):
    after = snapshot()
    changed = sorted(
        ".".join(key) for key in BEFORE.keys() & after.keys() if BEFORE[key] != after[key]
    )
    threads = sorted(t.name for t in threading.enumerate() if t.ident not in THREADS)
    with OUT.open("a") as out:
        out.write(f"{label} changed={changed} threads={threads}\\n")


def pytest_sessionfinish(session):
    changes("during-session")


atexit.register(changes, "after-session")
"""

TESTS = """
    import asyncio

    async def test_async():
        await asyncio.sleep(0)

    def test_sync():
        pass
"""


def _report(pytester: pytest.Pytester, *args: str) -> dict[str, str]:
    out = pytester.path / "inert.txt"
    if out.exists():
        out.unlink()
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    lines = out.read_text().splitlines()
    return dict(line.split(" ", 1) for line in lines)


@pytest.fixture
def baseline(pytester: pytest.Pytester) -> dict[str, str]:
    """What pytest itself changes (its own hooks for warnings, unraisables, threads)."""
    pytester.makeconftest(SNAPSHOT_CONFTEST)
    pytester.makepyfile(TESTS)
    report = _report(pytester, "-k", "test_sync")
    assert "threads=[]" in report["during-session"]
    return report


def _without_pytest_8_0_warning_capture(report: dict[str, str]) -> dict[str, str]:
    """pytest 8.0 swaps ``warnings._showwarnmsg_impl`` (its ``catch_warnings(record=True)``)
    around another span of the session when a plugin is named with ``-p``; later versions do
    not, and there the comparison keeps it."""
    if pytest.version_tuple >= (8, 1):
        return report
    return {
        label: text.replace("'warnings._showwarnmsg_impl', ", "").replace(
            "'warnings._showwarnmsg_impl'", ""
        )
        for label, text in report.items()
    }


def test_off_patches_nothing_and_starts_no_thread(
    pytester: pytest.Pytester, baseline: dict[str, str]
) -> None:
    report = _report(pytester, "-p", "asynccheck", "-k", "test_sync")
    assert _without_pytest_8_0_warning_capture(report) == _without_pytest_8_0_warning_capture(
        baseline
    )


def test_on_leaves_nothing_behind_after_the_session(
    pytester: pytest.Pytester, baseline: dict[str, str]
) -> None:
    report = _report(pytester, *ARGS)
    assert report["after-session"] == baseline["after-session"]


INJECTED_BUG = """

from pytest_asynccheck.detectors.blocking.watchdog import Watchdog


def _broken_task_entered(self, test, loop, where):
    raise RuntimeError("injected bug")


Watchdog.step_entered = _broken_task_entered
"""


def test_a_bug_in_a_builtin_detector_leaves_nothing_behind_and_the_rest_still_works(
    pytester: pytest.Pytester, baseline: dict[str, str]
) -> None:
    pytester.makeconftest(SNAPSHOT_CONFTEST + INJECTED_BUG)
    pytester.makepyfile(
        test_unawaited="""
        import asyncio

        async def test_missing_await():
            asyncio.sleep(1)
        """
    )
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "?unawaited? coroutine 'sleep' was never awaited",
            "note: detector blocking raised RuntimeError: injected bug in task_entered; "
            "it has been disabled",
        ],
        consecutive=False,
    )
    lines = (pytester.path / "inert.txt").read_text().splitlines()
    after = dict(line.split(" ", 1) for line in lines)["after-session"]
    assert after == baseline["after-session"]


OFF_TESTS = """
import gc
import os
import sys

import pytest

import pytest_asynccheck

PACKAGE = os.path.dirname(os.path.abspath(pytest_asynccheck.__file__)) + os.sep
#: The hooks the plugin needs whether or not the checks are on.
ALWAYS = {"pytest_addhooks", "pytest_addoption", "pytest_configure", "pytest_report_header"}


def plugin_frames():
    frame = sys._getframe()
    found = []
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename).startswith(PACKAGE):
            found.append(f"{frame.f_code.co_filename}:{frame.f_lineno}")
        frame = frame.f_back
    return found


@pytest.fixture
def probe():
    assert plugin_frames() == []
    yield
    assert plugin_frames() == []


def test_no_frame_of_the_plugin_in_setup_call_or_teardown(probe):
    assert plugin_frames() == []


def test_only_the_hooks_that_read_the_options_are_registered(request):
    hooks = {
        name
        for name, caller in vars(request.config.pluginmanager.hook).items()
        if hasattr(caller, "get_hookimpls")
        for impl in caller.get_hookimpls()
        if getattr(impl.function, "__module__", "").startswith("pytest_asynccheck")
    }
    assert hooks == ALWAYS


class Broken:
    def __del__(self):
        raise ValueError("broken __del__")


def test_unraisable():
    Broken()
    gc.collect()
"""


def test_off_puts_no_hook_of_the_plugin_on_a_tests_path(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = default\n")
    pytester.makepyfile(test_off=OFF_TESTS)
    result = pytester.runpytest("-p", "asynccheck")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") is None, result.stdout.str()
    assert outcomes.get("passed") == 3
    # The unraisable exception is reported where pytest found it, not in the plugin.
    result.stdout.fnmatch_lines(["*PytestUnraisableExceptionWarning: Exception ignored in*Broken*"])
    result.stdout.no_fnmatch_line("*pytest_asynccheck*")
