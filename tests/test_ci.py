"""What CI reads: the JSON report (validated against its schema), GitHub annotations, JUnit XML
properties, warn-only mode, and the same findings under pytest-xdist as in a serial run."""

from __future__ import annotations

import json
import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.helpers import ARGS, REPORT_SCHEMA

TESTS = """
import asyncio
import time
import pytest


async def test_blocking():
    time.sleep(0.002)


async def test_unawaited():
    asyncio.sleep(1)


@pytest.mark.max_wall(10)
async def test_budgeted():
    await asyncio.sleep(0)


@pytest.mark.parametrize("n", range(4))
async def test_clean(n):
    await asyncio.sleep(0)
"""


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    jsonschema.validate(data, json.loads(REPORT_SCHEMA.read_text()))
    return data


def test_the_schema_is_a_valid_json_schema() -> None:
    schema = json.loads(REPORT_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"complete", "tests_collected", "tests_run"} <= set(schema["required"])


def test_json_report_lists_settings_findings_budgets_and_totals(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(*ARGS, "--asynccheck-report=out/report.json", "-p", "no:randomly")
    result.assert_outcomes(passed=5, failed=2)
    result.stdout.fnmatch_lines(["asynccheck: report written to out/report.json"])
    data = load(pytester.path / "out" / "report.json")
    assert data["complete"] is True
    assert (data["tests_collected"], data["tests_run"]) == (7, 7)
    assert data["settings"]["mode"] == "error"
    assert data["versions"]["pytest_asynccheck"] == "0.1.0"
    kinds = {(f["kind"], f["nodeid"], f["file"], f["line"], f["call"]) for f in data["findings"]}
    assert kinds == {
        ("blocking", "test_mod.py::test_blocking", "test_mod.py", 7, "time.sleep"),
        ("unawaited", "test_mod.py::test_unawaited", "test_mod.py", 11, "sleep()"),
    }
    assert [b["nodeid"] for b in data["budgets"]] == ["test_mod.py::test_budgeted"]
    assert data["totals"] == {
        "checked_tests": 7,
        "findings": 2,
        "errors": 2,
        "warnings": 0,
        "by_kind": {"blocking": 1, "unawaited": 1},
        "budgets_exceeded": 0,
    }
    assert not list((pytester.path / "out").glob(".report.json.*"))  # no temporary file left


def test_the_report_has_the_permissions_of_the_umask(pytester: pytest.Pytester) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    pytester.makepyfile(test_mod=TESTS)
    pytester.runpytest(*ARGS, "--asynccheck-report=r.json")
    assert stat.S_IMODE((pytester.path / "r.json").stat().st_mode) == 0o666 & ~mask


STOPS = """

async def test_zz_stop():
    {stop}
"""


@pytest.mark.parametrize(
    ("stop", "options"),
    [
        pytest.param("assert False", ("-x",), id="exitfirst"),
        pytest.param("assert False", ("--maxfail=1",), id="maxfail"),
        pytest.param("raise KeyboardInterrupt", (), id="keyboard-interrupt"),
        pytest.param("pytest.exit('enough')", (), id="pytest-exit"),
    ],
)
def test_an_interrupted_run_leaves_a_valid_incomplete_report(
    pytester: pytest.Pytester, stop: str, options: tuple[str, ...]
) -> None:
    # test_zz_stop runs fourth of 8 (no:randomly keeps the file's order; it is moved up).
    source = TESTS.replace(
        "\n\nasync def test_unawaited", STOPS.format(stop=stop) + "\n\nasync def test_unawaited"
    )
    pytester.makepyfile(test_mod=source)
    pytester.runpytest_subprocess(
        *ARGS, "--asynccheck-report=r.json", "-p", "no:randomly", *options
    )
    data = load(pytester.path / "r.json")
    assert data["complete"] is False
    assert (data["tests_collected"], data["tests_run"]) == (8, 1)
    assert [f["nodeid"] for f in data["findings"]] == ["test_mod.py::test_blocking"]


def test_a_run_under_exitfirst_that_stops_nothing_is_complete(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod="""
import asyncio
import pytest

@pytest.mark.parametrize("n", range(4))
async def test_clean(n):
    await asyncio.sleep(0)

async def test_unawaited_last():
    asyncio.sleep(1)
"""
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-report=r.json", "-p", "no:randomly", "-x")
    result.assert_outcomes(failed=1, passed=4)
    data = load(pytester.path / "r.json")
    assert (data["complete"], data["tests_collected"], data["tests_run"]) == (True, 5, 5)


def test_github_annotations_are_printed_on_github_actions(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pytester.makeini("[pytest]\nfilterwarnings = default\n")
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(*ARGS, "--asynccheck-unawaited=warn", "-p", "no:randomly")
    commands = [line for line in result.outlines if line.startswith("::")]
    assert len(commands) == 2
    error, warning = sorted(commands)
    assert error.startswith(
        "::error file=test_mod.py,line=7,title=asynccheck blocking in "
        "test_mod.py%3A%3Atest_blocking::blocking call time.sleep() held the event loop for "
    )
    assert warning.startswith(
        "::warning file=test_mod.py,line=11,title=asynccheck unawaited in "
        "test_mod.py%3A%3Atest_unawaited::coroutine 'sleep' was never awaited (fix: await it"
    )


@pytest.mark.parametrize("root", ["workspace", "git-directory", "git-file"])
def test_annotations_are_relative_to_the_repository_when_the_rootdir_is_below_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, root: str
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    if root == "workspace":
        monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    elif root == "git-directory":
        (pytester.path / ".git").mkdir()
    else:  # a submodule or a linked checkout has a .git file
        (pytester.path / ".git").write_text("gitdir: elsewhere\n")
    service = pytester.mkdir("fn")
    (service / "pytest.ini").write_text("[pytest]\n")
    (service / "test_x.py").write_text(
        "import time\n\nasync def test_it():\n    time.sleep(0.002)\n"
    )
    result = pytester.runpytest(*ARGS, "fn")
    result.stdout.fnmatch_lines(["rootdir: *fn*"])
    commands = [line for line in result.outlines if line.startswith("::")]
    assert len(commands) == 1
    assert commands[0].startswith(
        "::error file=fn/test_x.py,line=4,title=asynccheck blocking in test_x.py%3A%3Atest_it::"
    )


def test_without_a_repository_annotations_are_relative_to_the_rootdir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(*ARGS, "-k", "blocking")
    result.stdout.fnmatch_lines(["::error file=test_mod.py,line=7,title=*"])


def test_a_file_outside_the_workspace_keeps_its_path(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.mkdir("elsewhere")))
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(*ARGS, "-k", "blocking")
    result.stdout.fnmatch_lines(["::error file=test_mod.py,line=7,title=*"])


ODD_FINDING = """
from pytest_asynccheck import Detector, Finding


class Odd(Detector):
    def phase_finished(self, test, phase):
        if phase == "call":
            test.add(
                Finding(kind="blocking", message="100% stuck,\\r\\nsee: above", fix="a:b, c",
                        file="odd, name:1.py", line=3, function="f", call="odd")
            )


def pytest_asynccheck_detectors(config, settings):
    return [Odd()]
"""


def test_annotation_text_is_escaped_as_workflow_commands_ask(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    pytester.makeconftest(ODD_FINDING)
    pytester.makepyfile(**{"test_a%b": "def test_it():\n    pass\n"})
    result = pytester.runpytest(*ARGS, "--asynccheck-mode=warn", "-W", "ignore")
    commands = [line for line in result.outlines if line.startswith("::")]
    assert commands == [
        "::warning file=odd%2C name%3A1.py,line=3,title=asynccheck blocking in "
        "test_a%25b.py%3A%3Atest_it::100%25 stuck,%0D%0Asee: above (fix: a:b, c)"
    ]


def test_no_annotations_elsewhere(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(*ARGS)
    assert not [line for line in result.outlines if line.startswith("::")]


def test_junit_xml_carries_findings_and_budgets_as_properties(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    pytester.runpytest(*ARGS, "--junitxml=junit.xml")
    cases = {
        case.get("name"): case for case in ET.parse(pytester.path / "junit.xml").iter("testcase")
    }
    properties = {
        name: [(p.get("name"), p.get("value")) for p in case.iter("property")]
        for name, case in cases.items()
    }
    assert properties["test_unawaited"] == [
        (
            "asynccheck_finding",
            "unawaited error test_mod.py:11: coroutine 'sleep' was never awaited",
        )
    ]
    failure = cases["test_unawaited"].find("failure")
    assert failure is not None
    assert "asynccheck found 1 problem in test_mod.py::test_unawaited (call)" in (
        failure.get("message", "") + (failure.text or "")
    )
    assert [name for name, _ in properties["test_budgeted"]] == ["asynccheck_wall"]


def test_warn_mode_reports_everything_and_fails_nothing(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = default\n")
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(*ARGS, "--asynccheck-mode=warn", "--asynccheck-report=r.json")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=7, warnings=2)
    result.stdout.fnmatch_lines(["asynccheck: mode=warn, unawaited=warn, *"])
    assert load(pytester.path / "r.json")["totals"]["warnings"] == 2


def test_bad_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(*ARGS, "--asynccheck-mode=lenient")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: --asynccheck-mode='lenient' (from command line) is not valid; "
            "expected one of: error, warn"
        ]
    )


@pytest.mark.parametrize(
    "distribution",
    [("-n", "2"), ("-n", "auto"), ("-n", "2", "--dist", "loadfile")],
    ids=["n2", "auto", "loadfile"],
)
def test_xdist_reports_the_same_findings_as_a_serial_run(
    pytester: pytest.Pytester, distribution: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_mod=TESTS, test_other=TESTS)
    pytester.runpytest(*ARGS, "--asynccheck-report=serial.json")
    pytester.runpytest(*ARGS, "--asynccheck-report=xdist.json", "-p", "xdist", *distribution)
    serial, parallel = load(pytester.path / "serial.json"), load(pytester.path / "xdist.json")

    def key(data: dict[str, Any]) -> list[tuple[str, str, int]]:
        return sorted((f["kind"], f["nodeid"], f["line"]) for f in data["findings"])

    assert key(serial) == key(parallel) and len(key(serial)) == 4
    assert serial["totals"] == parallel["totals"]


def test_baseline_accepts_recorded_findings_fails_new_ones_and_lists_stale_ones(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mod=TESTS)
    update = pytester.runpytest(
        *ARGS, "--asynccheck-baseline=baseline.json", "--asynccheck-update-baseline"
    )
    update.stdout.fnmatch_lines(["asynccheck: baseline of 2 entries written to baseline.json"])
    assert update.ret == pytest.ExitCode.OK  # what it records does not fail the recording run
    entries = json.loads((pytester.path / "baseline.json").read_text())["entries"]
    assert [(e["kind"], e["file"], e["function"], e["call"]) for e in entries] == [
        ("blocking", "test_mod.py", "test_blocking", "time.sleep"),
        ("unawaited", "test_mod.py", "test_unawaited", "sleep()"),
    ]

    # Lines move, the blocking call is fixed, and a new problem appears.
    pytester.makepyfile(
        test_mod="# lines moved down\n\n"
        + TESTS.replace("time.sleep(0.002)", "await asyncio.sleep(0.002)")
        + "\n\nasync def test_new():\n    asyncio.create_task(asyncio.sleep(10))\n"
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-baseline=baseline.json", "-p", "no:randomly")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck: stale baseline entry (no longer found): blocking test_mod.py "
            "test_blocking time.sleep",
            "FAILED test_mod.py::test_new*",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(
        ["accepted unawaited       test_mod.py:14 in test_unawaited sleep()  x1"]
    )


def test_update_baseline_needs_a_path_and_a_bad_file_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(*ARGS, "--asynccheck-update-baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: asynccheck: --asynccheck-update-baseline needs *"])
    (pytester.path / "bad.json").write_text("[1, 2]")
    result = pytester.runpytest(*ARGS, "--asynccheck-baseline=bad.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: --asynccheck-baseline='bad.json' (from command line) is not a "
            "baseline file written by --asynccheck-update-baseline (TypeError: *)"
        ]
    )


LATE_CONFTEST = """
from pytest_asynccheck import Detector, Finding


class Late(Detector):
    def session_ending(self, session):
        session.report(
            Finding(kind="unawaited", message="coroutine 'kept' was never awaited",
                    file="test_mod.py", line=1, function="test_keeps", call="kept()"),
            nodeid="test_mod.py::test_keeps",
        )


def pytest_asynccheck_detectors(config, settings):
    return [Late()]
"""


def test_late_findings_of_xdist_workers_reach_the_controller(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(LATE_CONFTEST)
    pytester.makepyfile(test_mod="async def test_keeps():\n    pass\n")
    result = pytester.runpytest(*ARGS, "-p", "xdist", "-n", "2", "--asynccheck-report=r.json")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["error unawaited       test_mod.py:1 in test_keeps kept()  x*"])
    late = [f for f in load(pytester.path / "r.json")["findings"] if f["call"] == "kept()"]
    assert late and {f["nodeid"] for f in late} == {"test_mod.py::test_keeps"}


def test_a_crashed_worker_loses_nothing_of_the_others(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod=TESTS
        + """

def test_zz_crash():
    import os
    os._exit(1)
"""
    )
    result = pytester.runpytest_subprocess(
        *ARGS, "-p", "xdist", "-n", "2", "--asynccheck-report=r.json"
    )
    result.stdout.fnmatch_lines(["*test_zz_crash*"])  # the crash is reported by xdist
    data = load(pytester.path / "r.json")
    assert data["complete"] is False  # the crashed test did not run to its end
    assert (data["tests_collected"], data["tests_run"]) == (8, 7)
    assert sorted(f["nodeid"] for f in data["findings"]) == [
        "test_mod.py::test_blocking",
        "test_mod.py::test_unawaited",
    ]
