"""pytest-rerunfailures: a test run more than once counts by its last attempt, the one that
decides its outcome, in the summary, the JSON report and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import ARGS

TESTS = """
import asyncio
import pytest

ATTEMPTS = {}


def attempt(name):
    ATTEMPTS[name] = ATTEMPTS.get(name, 0) + 1
    return ATTEMPTS[name]


async def test_flaky():
    if attempt("flaky") == 1:
        asyncio.sleep(0)


async def test_always():
    asyncio.sleep(0)


@pytest.mark.max_wall(30)
async def test_budgeted():
    await asyncio.sleep(0)
    assert attempt("budgeted") > 1


async def test_clean():
    await asyncio.sleep(0)
"""


def _last_testcases(path: str) -> dict[str, list[tuple[str, str]]]:
    """Each test's last ``testcase`` element (its final attempt), as its property list."""
    last: dict[str, list[tuple[str, str]]] = {}
    for case in ET.parse(path).iter("testcase"):
        last[case.get("name", "")] = [
            (p.get("name", ""), p.get("value", "")) for p in case.iter("property")
        ]
    return last


@pytest.mark.parametrize("distribution", [(), ("-p", "xdist", "-n", "2")], ids=["serial", "xdist"])
def test_only_the_final_attempt_counts(
    pytester: pytest.Pytester, distribution: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(
        *ARGS,
        "-p",
        "rerunfailures",
        "--reruns",
        "2",
        "-p",
        "no:randomly",
        "--junitxml=junit.xml",
        "--asynccheck-report=r.json",
        *distribution,
    )
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("failed"), outcomes.get("rerun")) == (3, 1, 4)
    # The flaky test passed on its rerun: only the finding of test_always, of its last attempt,
    # counts; the earlier attempts' are listed as such.
    result.stdout.fnmatch_lines(
        [
            "*= asynccheck =*",
            "in test files:",
            "rerun unawaited       test_mod.py:14 in test_flaky sleep()  x1",
            "        test_mod.py::test_flaky",
            "error unawaited       test_mod.py:18 in test_always sleep()  x1",
            "        test_mod.py::test_always",
            "rerun unawaited       test_mod.py:18 in test_always sleep()  x2",
            "        test_mod.py::test_always",
            "asynccheck: 1 error, 0 warnings in 1 of 4 checked tests; "
            "3 more in attempts that were rerun, not counted",
        ]
    )
    result.stdout.no_fnmatch_line("error *test_flaky*")
    result.stdout.fnmatch_lines(["FAILED test_mod.py::test_always - Failed: asynccheck found 1*"])
    result.stdout.no_fnmatch_line("FAILED *test_flaky*")

    report = json.loads((pytester.path / "r.json").read_text())
    assert [(f["nodeid"], f["count"]) for f in report["findings"]] == [
        ("test_mod.py::test_always", 1)
    ]
    assert report["totals"]["errors"] == 1
    assert report["totals"]["checked_tests"] == 4
    assert [b["nodeid"] for b in report["budgets"]] == ["test_mod.py::test_budgeted"]

    final = _last_testcases(str(pytester.path / "junit.xml"))
    assert final["test_flaky"] == []
    assert [name for name, _ in final["test_always"]] == ["asynccheck_finding"]
    assert final["test_always"][0][1].startswith("unawaited error test_mod.py:18: coroutine")
    assert [name for name, _ in final["test_budgeted"]] == ["asynccheck_wall"]
    # Every attempt's testcase carries its own findings and budget only.
    for case in ET.parse(pytester.path / "junit.xml").iter("testcase"):
        assert len(list(case.iter("property"))) <= 1, ET.tostring(case)


FOLLOWED = """
import asyncio
import time
import pytest


@pytest.fixture
async def slow_setup():
    time.sleep(0.01)
    yield


async def test_clean():
    await asyncio.sleep(0)


async def test_blocking():
    time.sleep(0.01)


async def test_fails_and_blocks():
    time.sleep(0.01)
    assert False


async def test_in_fixture(slow_setup):
    await asyncio.sleep(0)


@pytest.mark.max_wall(30)
async def test_budgeted():
    await asyncio.sleep(0)


@pytest.mark.asynccheck(allow=["blocking"])
async def test_allowed():
    time.sleep(0.01)


def test_sync():
    pass
"""


def _stable(report: dict[str, object]) -> dict[str, object]:
    """The report without what changes from run to run (durations, versions)."""
    findings = [
        {k: v for k, v in finding.items() if k not in ("duration", "message")}
        for finding in report["findings"]  # type: ignore[attr-defined]
    ]
    budgets = [
        {k: v for k, v in budget.items() if k in ("nodeid", "budget", "clock")}
        for budget in report["budgets"]  # type: ignore[attr-defined]
    ]
    kept = ("complete", "tests_collected", "tests_run", "totals")
    return {"findings": findings, "budgets": budgets, **{k: report[k] for k in kept}}


def test_the_summary_reads_the_same_whether_it_follows_every_report_or_starts_at_a_finding(
    pytester: pytest.Pytester,
) -> None:
    """Without pytest-rerunfailures or pytest-xdist the summary starts reading reports only at
    the first phase with findings or a budget: the terminal summary, the JSON report, the
    crash locations and the outcomes are those of a run that reads every report."""
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_followed=FOLLOWED)
    runs = {}
    for name, plugin in (("lazy", "no:rerunfailures"), ("every", "rerunfailures")):
        result = pytester.runpytest(
            *ARGS,
            "-p",
            "asyncio",
            "-p",
            plugin,
            "-p",
            "no:randomly",
            "--tb=line",
            f"--asynccheck-report={name}.json",
        )
        result.assert_outcomes(passed=4, failed=2, errors=1)
        summary = result.stdout.str().split("= asynccheck =", 1)[1].replace(name, "NAME")
        summary = summary.splitlines()
        crashes = [line for line in result.stdout.lines if "test_followed.py:" in line]
        report = json.loads((pytester.path / f"{name}.json").read_text())
        runs[name] = (summary, crashes, _stable(report))
    lazy, every = runs["lazy"], runs["every"]
    assert lazy[0][:-1] == every[0][:-1]  # the last line gives the run's duration
    assert lazy[1] == every[1] and lazy[1]
    assert lazy[2] == every[2]
    assert {f["nodeid"].split("::")[1] for f in lazy[2]["findings"]} == {  # type: ignore[attr-defined]
        "test_blocking",
        "test_fails_and_blocks",
        "test_in_fixture",
    }
    assert [b["nodeid"] for b in lazy[2]["budgets"]] == ["test_followed.py::test_budgeted"]  # type: ignore[attr-defined]
    assert lazy[2]["tests_run"] == lazy[2]["tests_collected"] == 7
