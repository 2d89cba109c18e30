"""Warn mode fails nothing: not under a project's blanket ``filterwarnings = error``, not for a
bad marker, not for a finding reported after the run. Only a filter that names one of the
plugin's warning classes turns its warnings into errors."""

from __future__ import annotations

import pytest

import pytest_asynccheck
from pytest_asynccheck._findings import WARNING_FOR_KIND, AsynccheckWarning, Kind
from tests.helpers import ARGS, SLOW_NOT_HUNG

FLAGGED = """
import asyncio
import time

import pytest


async def test_blocks():
    time.sleep(0.002)


async def test_unawaited():
    asyncio.sleep(0)


async def test_leaks():
    asyncio.get_running_loop().create_task(asyncio.sleep(10))


@pytest.mark.max_wall(0.001)
async def test_over_budget():
    await asyncio.sleep(0.05)


@pytest.mark.max_wall("soon")
async def test_bad_marker():
    await asyncio.sleep(0)


async def test_clean():
    await asyncio.sleep(0)
"""

WARNINGS = [
    "  test_mod.py:8: BlockingCallWarning: ?blocking? blocking call time.sleep() held the event*",
    "  test_mod.py:12: UnawaitedCoroutineWarning: ?unawaited? coroutine 'sleep' was never awaited",
    "  test_mod.py:16: LeakedTaskWarning: ?leaked-task? task * was still pending when the test*",
    "  test_mod.py:19: WallBudgetWarning: ?max-wall? wall time * exceeded the max_wall budget*",
    "  test_mod.py:24: AsynccheckWarning: test_mod.py::test_bad_marker: "
    "@pytest.mark.max_wall('soon'): 'soon' is not a budget*"
    "(warn mode: the test runs without this marker)",
]


@pytest.mark.parametrize(
    "blanket",
    [
        ("-o", "filterwarnings=error"),
        ("-W", "error"),
        ("-W", "error::pytest.PytestWarning"),
        ("-W", "error::UserWarning"),
    ],
    ids=["ini", "command-line", "pytest-warnings", "user-warnings"],
)
def test_a_blanket_error_filter_fails_no_flagged_test_in_warn_mode(
    pytester: pytest.Pytester, blanket: tuple[str, str]
) -> None:
    pytester.makepyfile(test_mod=FLAGGED)
    result = pytester.runpytest(
        *ARGS, *SLOW_NOT_HUNG, "--asynccheck-mode=warn", "-p", "no:randomly", *blanket
    )
    result.assert_outcomes(passed=6, warnings=5)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines_random(WARNINGS)
    result.stdout.fnmatch_lines(["asynccheck: 0 errors, 4 warnings in 4 of 6 checked tests"])


@pytest.mark.parametrize(
    ("category", "failed", "errors"),
    [
        # The bad marker's warning comes after the setup, and errors it.
        ("pytest_asynccheck.AsynccheckWarning", 4, 1),
        ("pytest_asynccheck.BlockingCallWarning", 1, 0),
        ("pytest_asynccheck.UnawaitedCoroutineWarning", 1, 0),
    ],
)
def test_a_filter_naming_the_plugins_warnings_still_makes_them_errors(
    pytester: pytest.Pytester, category: str, failed: int, errors: int
) -> None:
    pytester.makepyfile(test_mod=FLAGGED)
    result = pytester.runpytest(
        *ARGS, "--asynccheck-mode=warn", "-o", "filterwarnings=error", "-W", f"error::{category}"
    )
    result.assert_outcomes(passed=6 - failed - errors, failed=failed, errors=errors)
    warning = category.rsplit(".", 1)[1]
    result.stdout.fnmatch_lines([f"*{warning}*"])


LATE_CONFTEST = """
from pytest_asynccheck import Detector, Finding


class Late(Detector):
    def session_ending(self, session):
        session.report(
            Finding(kind="unawaited", message="coroutine 'y' was never awaited",
                    file="test_late.py", line=2, function="test_it"),
            nodeid="test_late.py::test_it",
        )


def pytest_asynccheck_detectors(config, settings):
    return [Late()]
"""


@pytest.mark.parametrize(
    ("mode", "status", "severity"),
    [("warn", pytest.ExitCode.OK, "warn "), ("error", pytest.ExitCode.TESTS_FAILED, "error")],
)
def test_a_late_finding_fails_the_run_in_error_mode_only(
    pytester: pytest.Pytester, mode: str, status: pytest.ExitCode, severity: str
) -> None:
    pytester.makeconftest(LATE_CONFTEST)
    pytester.makepyfile(test_late="async def test_it():\n    pass\n")
    result = pytester.runpytest(*ARGS, f"--asynccheck-mode={mode}")
    result.assert_outcomes(passed=1)
    assert result.ret == status
    result.stdout.fnmatch_lines(
        [
            f"{severity} unawaited       test_late.py:2 in test_it  x1",
            "        test_late.py::test_it",
        ]
    )


def test_with_no_filter_at_all_the_plugins_warning_is_shown() -> None:
    import warnings

    from pytest_asynccheck import AsynccheckWarning
    from pytest_asynccheck._warnings import warn_explicit

    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warn_explicit(AsynccheckWarning("shown"), "test_mod.py", 3)
    assert [(str(w.message), w.filename, w.lineno) for w in caught] == [("shown", "test_mod.py", 3)]


def test_every_kind_has_a_warning_class_named_where_filters_find_it() -> None:
    assert set(WARNING_FOR_KIND) == set(Kind)
    for warning in (AsynccheckWarning, *WARNING_FOR_KIND.values()):
        assert warning.__module__ == "pytest_asynccheck"
        assert getattr(pytest_asynccheck, warning.__name__) is warning
        assert warning.__name__ in pytest_asynccheck.__all__
