"""``python -m pytest_asynccheck``: merging the reports of a sharded run into one valid report,
and a baseline from a report; bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ARGS
from tests.test_ci import TESTS, load


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_asynccheck", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def keys(data: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    return sorted((f["kind"], f["nodeid"], f["line"], f["count"]) for f in data["findings"])


def test_merged_shards_equal_the_unsharded_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS, test_other=TESTS)
    pytester.runpytest(*ARGS, "--asynccheck-report=whole.json")
    pytester.runpytest(*ARGS, "--asynccheck-report=shard-1.json", "test_mod.py")
    pytester.runpytest(*ARGS, "--asynccheck-report=shard-2.json", "test_other.py")
    done = cli(pytester.path, "merge", "shard-1.json", "shard-2.json", "-o", "merged.json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "asynccheck: merged 2 reports (4 findings in 14 checked tests, complete) into merged.json\n"
    )
    whole, merged = load(pytester.path / "whole.json"), load(pytester.path / "merged.json")
    assert keys(merged) == keys(whole) and len(keys(whole)) == 4
    assert merged["totals"] == whole["totals"]
    assert (merged["complete"], merged["tests_collected"], merged["tests_run"]) == (True, 14, 14)
    assert sorted(b["nodeid"] for b in merged["budgets"]) == sorted(
        b["nodeid"] for b in whole["budgets"]
    )


def test_a_merge_is_complete_only_when_every_shard_is(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS, test_other=TESTS)
    pytester.runpytest(*ARGS, "--asynccheck-report=shard-1.json", "test_mod.py")
    pytester.runpytest(*ARGS, "--asynccheck-report=shard-2.json", "test_other.py", "-x")
    done = cli(pytester.path, "merge", "shard-1.json", "shard-2.json", "-o", "merged.json")
    assert done.returncode == 0, done.stderr
    assert "incomplete) into merged.json" in done.stdout
    merged = load(pytester.path / "merged.json")
    assert merged["complete"] is False
    assert merged["tests_collected"] == 14 and merged["tests_run"] < 14


def test_the_same_finding_in_two_shards_is_merged_by_its_key(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    pytester.runpytest(*ARGS, "--asynccheck-report=a.json", "-k", "blocking")
    pytester.runpytest(*ARGS, "--asynccheck-report=b.json", "-k", "blocking")
    done = cli(pytester.path, "merge", "a.json", "b.json", "-o", "merged.json")
    assert done.returncode == 0, done.stderr
    merged = load(pytester.path / "merged.json")
    assert [(f["nodeid"], f["count"]) for f in merged["findings"]] == [
        ("test_mod.py::test_blocking", 2)
    ]
    assert merged["totals"]["findings"] == merged["totals"]["by_kind"]["blocking"] == 2


def test_a_baseline_from_a_merged_report_accepts_its_findings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    pytester.runpytest(*ARGS, "--asynccheck-report=shard.json")
    assert cli(pytester.path, "merge", "shard.json", "-o", "merged.json").returncode == 0
    done = cli(pytester.path, "baseline", "merged.json", "-o", "ci/baseline.json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "asynccheck: baseline of 2 entries written to ci/baseline.json\n"
    result = pytester.runpytest(*ARGS, "--asynccheck-baseline=ci/baseline.json")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["accepted blocking *", "accepted unawaited *"])


def test_a_baseline_from_an_incomplete_report_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    pytester.runpytest(*ARGS, "--asynccheck-report=r.json", "-p", "no:randomly", "-x")
    done = cli(pytester.path, "baseline", "r.json", "-o", "b.json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "asynccheck: baseline of 1 entry written to b.json (the report is incomplete: only "
        "what ran is in it)\n"
    )


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({}, ["merge", "gone.json", "-o", "m.json"], "cannot read gone.json: No such file*"),
        ({"x.json": "{oops"}, ["merge", "x.json", "-o", "m.json"], "x.json is not JSON: *"),
        (
            {"x.json": "[1]"},
            ["baseline", "x.json", "-o", "b.json"],
            "x.json is not an asynccheck report: expected a JSON object, found list",
        ),
        (
            {"x.json": '{"schema_version": 7}'},
            ["merge", "x.json", "-o", "m.json"],
            "x.json is not an asynccheck report: schema_version is 7, expected 2",
        ),
        (
            {"x.json": '{"schema_version": 2, "complete": true}'},
            ["merge", "x.json", "-o", "m.json"],
            "x.json is not an asynccheck report: 'tests_collected' is missing or not an integer",
        ),
        (
            {"x.json": "{}", "d/": ""},
            ["merge", "x.json", "-o", "d"],
            "cannot write -o 'd': it is a directory",
        ),
        ({}, ["merge", "-o", "m.json"], "the following arguments are required: REPORT (see *"),
        ({}, [], "the following arguments are required: command (see * --help)"),
        ({}, ["split", "x"], "argument command: invalid choice: 'split' *"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    pytester: pytest.Pytester, files: dict[str, str], args: list[str], message: str
) -> None:
    for name, text in files.items():
        if name.endswith("/"):
            (pytester.path / name).mkdir()
        else:
            (pytester.path / name).write_text(text)
    done = cli(pytester.path, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    pytest.LineMatcher(lines).fnmatch_lines([f"python -m pytest_asynccheck: error: {message}"])


def test_a_report_with_a_malformed_finding_or_budget_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    pytester.runpytest(*ARGS, "--asynccheck-report=r.json")
    data = json.loads((pytester.path / "r.json").read_text())
    for broken, message in [
        ({**data, "findings": [{"kind": "blocking"}]}, "finding 0 lacks one of: kind, *"),
        ({**data, "findings": [{**data["findings"][0], "count": 0}]}, "finding 0 has count 0"),
        ({**data, "budgets": [{"wall": "slow"}]}, "budget 0 lacks a number wall, budget or factor"),
        ({**data, "totals": {}}, "'totals' has no integer checked_tests"),
    ]:
        (pytester.path / "bad.json").write_text(json.dumps(broken))
        done = cli(pytester.path, "merge", "bad.json", "-o", "m.json")
        assert done.returncode == 2
        pytest.LineMatcher(done.stderr.splitlines()).fnmatch_lines(
            [f"python -m pytest_asynccheck: error: bad.json is not an asynccheck report: {message}"]
        )


@pytest.mark.parametrize("command", ["merge", "baseline"])
def test_a_write_that_fails_is_one_line_and_exit_code_2(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    from pytest_asynccheck import __main__
    from pytest_asynccheck.reporting import baseline
    from pytest_asynccheck.reporting import json_report as jsonreport

    pytester.makepyfile(test_mod=TESTS)
    pytester.runpytest(*ARGS, "--asynccheck-report=r.json")
    capsys.readouterr()

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jsonreport, "write_atomically", full)
    monkeypatch.setattr(baseline, "write", full)
    assert __main__.main([command, "r.json", "-o", "out.json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err
        == "python -m pytest_asynccheck: error: cannot write out.json: No space left on device\n"
    )
