"""A test failed by a check crashes at the user's line, not in the plugin: ``--tb=line``, the
report's ``longrepr.reprcrash`` (read by IDEs, annotators and report plugins) name the first
error finding's file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import ARGS

TESTS = """
import asyncio
import time


async def test_unawaited():
    asyncio.sleep(0)


async def test_blocks():
    await asyncio.sleep(0)
    time.sleep(0.002)


async def test_asserts():
    asyncio.sleep(0)
    assert False
"""


class CrashSites:
    """Records each failed report's crash location, as the tools that read it see it."""

    def __init__(self) -> None:
        self.sites: dict[str, tuple[str, int | None]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        crash = getattr(report.longrepr, "reprcrash", None)
        if report.failed and crash is not None:
            self.sites[report.nodeid.split("::")[-1]] = (crash.path, crash.lineno)


@pytest.mark.parametrize("distribution", [(), ("-p", "xdist", "-n", "2")], ids=["serial", "xdist"])
def test_a_failing_check_crashes_at_the_first_finding(
    pytester: pytest.Pytester, distribution: tuple[str, ...]
) -> None:
    path = pytester.makepyfile(test_mod=TESTS)
    recorder = CrashSites()
    result = pytester.runpytest(*ARGS, "--tb=line", *distribution, plugins=[recorder])
    result.assert_outcomes(failed=3)
    file = str(Path(path).resolve())
    result.stdout.fnmatch_lines_random(
        [
            f"{file}:6: Failed: asynccheck found 1 problem in test_mod.py::test_unawaited (call):",
            f"{file}:11: Failed: asynccheck found 1 problem in test_mod.py::test_blocks (call):",
            f"{file}:16: assert False",
        ]
    )
    result.stdout.no_fnmatch_line("*pytest_asynccheck*plugin.py*")
    result.stdout.no_fnmatch_line("*pytest_asynccheck*_runtest.py*")
    assert recorder.sites == {
        "test_unawaited": (file, 6),
        "test_blocks": (file, 11),
        "test_asserts": (file, 16),  # failed for its own reason: its own crash stays
    }
    # The failure text itself is unchanged.
    long = pytester.runpytest(*ARGS, "-k", "test_unawaited")
    long.stdout.fnmatch_lines(
        [
            "*_ test_unawaited _*",
            "asynccheck found 1 problem in test_mod.py::test_unawaited (call):",
            "[unawaited] coroutine 'sleep' was never awaited",
            "  at test_mod.py:6 in test_unawaited",
            "  fix: await it*",
            "*= asynccheck =*",
        ]
    )


def test_a_finding_without_a_file_of_the_project_leaves_the_crash_where_it_was(
    tmp_path: Path,
) -> None:
    from pytest_asynccheck._findings import Finding
    from pytest_asynccheck.reporting.summary import crash_site, point_crash_at

    (tmp_path / "test_mod.py").write_text("pass\n")
    nowhere = Finding(kind="blocking", message="m", file="", line=0)
    elsewhere = Finding(kind="blocking", message="m", file="asyncio/tasks.py", line=3)
    here = Finding(kind="blocking", message="m", file="test_mod.py", line=1)
    assert crash_site([nowhere, elsewhere], str(tmp_path)) is None
    assert crash_site([nowhere, here], str(tmp_path)) == (str(tmp_path / "test_mod.py"), 1)
    # A report whose longrepr is a plain string has no crash location to move.
    report = pytest.TestReport("id", ("f", 0, "t"), {}, "failed", "text", "call")
    point_crash_at(report, (str(tmp_path / "test_mod.py"), 1))
    assert report.longrepr == "text"
