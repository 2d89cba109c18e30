"""Findings where people look: pytest-html (extras, the drawn timeline, the summary), trace
files for Perfetto and chrome://tracing, the GitHub job summary, and budgets suggested from
measured runs."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_asynccheck.reporting.suggest import round_up
from tests.helpers import ARGS as CHECKED
from tests.helpers import REPORT_SCHEMA, SLOW_NOT_HUNG, UVLOOP_BACKEND, anyio_module

HTML = ("-p", "html", "-p", "metadata", "-W", "ignore::pytest.PytestAssertRewriteWarning")
#: A stall the loaded machine causes (a thread waiting for the CPU) is not what these tests see.
# These tests run over their budgets on purpose: to be measured, not cancelled as hung.
ARGS = (*CHECKED, *SLOW_NOT_HUNG)
RUN = (*ARGS, "--asynccheck-stall-threshold=5")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

TESTS = """
import asyncio
import time
import pytest


async def step(delay):
    await asyncio.sleep(delay)


@pytest.mark.max_wall(0.05)
async def test_sequential_and_blocking():
    for _ in range(3):
        await step(0.05)
    time.sleep(0.06)


@pytest.mark.max_wall(30)
async def test_gathered():
    await asyncio.gather(step(0.05), step(0.05), step(0.05))


async def test_unawaited():
    asyncio.sleep(1)


async def test_clean():
    await asyncio.sleep(0)
"""
#: Lines in TESTS of the blocking call and of the unawaited coroutine.
SLEEP_LINE = 14
UNAWAITED_LINE = 23


def html_tests(path: Path) -> dict[str, list[dict[str, Any]]]:
    """pytest-html's per-test data, from the JSON its page renders."""
    text = path.read_text(encoding="utf-8")
    match = re.search(r'data-jsonblob="([^"]*)"', text)
    assert match is not None
    data: dict[str, Any] = json.loads(html.unescape(match[1]))
    return data["tests"]


def extras_of(tests: dict[str, list[dict[str, Any]]], nodeid: str) -> list[str]:
    return [e["content"] for run in tests[nodeid] for e in run.get("extras", [])]


def test_html_report_shows_findings_timeline_and_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(
        *RUN, *HTML, "--html=report.html", "--self-contained-html", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2, failed=2)
    tests = html_tests(pytester.path / "report.html")

    extras = extras_of(tests, "test_mod.py::test_sequential_and_blocking")
    blocking = [e for e in extras if 'data-kind="blocking"' in e]
    assert len(blocking) == 1
    assert "blocking call time.sleep() held the event loop" in blocking[0]
    assert f'<code class="asynccheck-where">test_mod.py:{SLEEP_LINE} in' in blocking[0]
    assert '<span class="asynccheck-fix">await asyncio.sleep(...)</span>' in blocking[0]
    assert any('data-kind="max-wall"' in e and "exceeded the max_wall budget" in e for e in extras)
    svgs = [e for e in extras if e.startswith("<svg")]
    assert len(svgs) == 1
    assert svgs[0].count('<g class="asynccheck-lane"') == 1  # the test's own task only
    assert 'class="asynccheck-waiting"' in svgs[0] and 'class="asynccheck-running"' in svgs[0]
    blocked = re.findall(r'class="asynccheck-blocked"[^>]*><title>([^<]*)</title>', svgs[0])
    assert len(blocked) == 1
    assert blocked[0].startswith(f"blocked: time.sleep at test_mod.py:{SLEEP_LINE} (")

    gathered = [e for e in extras_of(tests, "test_mod.py::test_gathered") if e.startswith("<svg")]
    assert len(gathered) == 1
    assert gathered[0].count('<g class="asynccheck-lane"') == 4  # the test and its 3 tasks
    assert 'class="asynccheck-blocked"' not in gathered[0]

    unawaited = extras_of(tests, "test_mod.py::test_unawaited")
    assert len(unawaited) == 1  # no budget: the finding, no timeline
    assert f"test_mod.py:{UNAWAITED_LINE} in test_unawaited" in unawaited[0]
    assert extras_of(tests, "test_mod.py::test_clean") == []

    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    summary = page[page.index('<div class="asynccheck-summary">') :]
    assert "asynccheck: 3 errors, 0 warnings in 2 of 4 checked tests" in summary
    assert "<td>blocking</td><td>error</td><td>1</td>" in summary
    assert "2 budgeted tests, 1 over budget." in summary


def test_without_pytest_html_nothing_of_it_is_imported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    pytester.makeconftest(
        """
        import sys

        def pytest_unconfigure(config):
            names = ("pytest_html", "pytest_asynccheck.reporting.html")
            seen = [name for name in names if name in sys.modules]
            plugin = config.pluginmanager.get_plugin("asynccheck-outputs")
            print("IMPORTED", seen, "OUTPUTS", plugin is not None)
        """
    )
    result = pytester.runpytest_subprocess(*RUN, "-p", "no:randomly", "-s")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["IMPORTED [[][]] OUTPUTS False"])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_timeline_renders_in_a_headless_browser(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(
        *RUN, *HTML, "--html=report.html", "--self-contained-html", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2, failed=2)
    dom = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--dump-dom",
            (pytester.path / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    # The page draws its rows from JSON in the browser: only a browser shows the SVGs.
    svgs = re.findall(r"<svg[^>]*asynccheck-timeline.*?</svg>", dom, re.DOTALL)
    lanes = sorted(svg.count('<g class="asynccheck-lane"') for svg in svgs)
    assert lanes == [1, 4]
    assert 'class="asynccheck-summary"' in dom


# -- trace files ---------------------------------------------------------------------------


def validate_trace(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks a trace-event viewer relies on; returns the events."""
    events: list[dict[str, Any]] = data["traceEvents"]
    assert events
    last: dict[tuple[int, int], float] = defaultdict(lambda: float("-inf"))
    open_slices: dict[tuple[int, int], list[str]] = defaultdict(list)
    for event in events:
        for name in ("ph", "ts", "pid", "tid", "name"):
            assert name in event, (name, event)
        assert isinstance(event["ts"], (int, float)) and event["ts"] >= 0
        track = (event["pid"], event["tid"])
        if event["ph"] == "M":
            continue
        assert event["ts"] >= last[track], ("not monotonic", event)
        last[track] = event["ts"]
        if event["ph"] == "X":
            assert event["dur"] >= 0
        elif event["ph"] == "B":
            open_slices[track].append(event["name"])
        elif event["ph"] == "E":
            assert open_slices[track], ("E without B", event)
            open_slices[track].pop()
        else:
            assert event["ph"] == "i", event
    assert not any(open_slices.values())
    return events


def test_trace_files_for_failing_and_budgeted_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(*RUN, "--asynccheck-trace=traces", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["asynccheck: 3 trace file(s) written to traces"])
    files = sorted(p.name for p in (pytester.path / "traces").iterdir())
    assert files == [
        "test_mod.py_test_gathered.trace.json",
        "test_mod.py_test_sequential_and_blocking.trace.json",
        "test_mod.py_test_unawaited.trace.json",
    ]
    traces = {
        name: validate_trace(json.loads((pytester.path / "traces" / name).read_text()))
        for name in files
    }
    events = traces["test_mod.py_test_sequential_and_blocking.trace.json"]
    names = {(e["tid"], e["args"]["name"]) for e in events if e["ph"] == "M"}
    assert (3, "task test") in names and (0, "test_mod.py::test_sequential_and_blocking") in names
    phases = [e["name"] for e in events if e["tid"] == 1 and e["ph"] == "X"]
    assert phases == ["setup", "call", "teardown"]
    blocked = [e for e in events if e["tid"] == 2 and e["ph"] == "X"]
    assert len(blocked) == 1
    assert blocked[0]["name"] == "blocked: time.sleep"
    assert blocked[0]["args"]["where"] == f"test_mod.py:{SLEEP_LINE}"
    assert blocked[0]["dur"] >= 60_000  # microseconds: the 60 ms sleep
    call = next(e for e in events if e["tid"] == 1 and e["name"] == "call")
    assert call["ts"] <= blocked[0]["ts"] <= call["ts"] + call["dur"]
    waits = [e for e in events if e["tid"] == 3 and e["name"] == "waiting on timers or I/O"]
    assert sum(e["dur"] for e in waits) >= 3 * 50_000 * 0.9
    gathered = traces["test_mod.py_test_gathered.trace.json"]
    assert len({e["tid"] for e in gathered if e["tid"] >= 3}) == 4
    unawaited = traces["test_mod.py_test_unawaited.trace.json"]
    instants = [e for e in unawaited if e["ph"] == "i"]
    assert [e["args"]["where"] for e in instants] == [f"test_mod.py:{UNAWAITED_LINE}"]


def test_trace_directory_that_cannot_be_made_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    (pytester.path / "afile").write_text("")
    result = pytester.runpytest(*RUN, "--asynccheck-trace=")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--asynccheck-trace='' (from command line) is not valid*"])
    result = pytester.runpytest(*RUN, "--asynccheck-trace=afile/traces")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*asynccheck: --asynccheck-trace='afile/traces' (from command line) is not valid*"]
    )
    pytester.makeini("[pytest]\nasynccheck_trace = afile\n")
    result = pytester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*asynccheck_trace='afile' (from ini file tox.ini) is not valid*"])


# -- the GitHub job summary ------------------------------------------------------------------


def test_step_summary_counts_places_baseline_and_budgets(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_mod=TESTS)
    pytester.runpytest(*RUN, "--asynccheck-baseline=base.json", "--asynccheck-update-baseline")
    summary = pytester.path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(test_new="import asyncio\n\nasync def test_new():\n    asyncio.sleep(1)\n")
    result = pytester.runpytest(*RUN, "--asynccheck-baseline=base.json", "-p", "no:randomly")
    result.assert_outcomes(passed=4, failed=1)
    text = summary.read_text()
    assert text.startswith("earlier step\n## asynccheck\n")
    assert "4 findings in 3 of 5 checked tests." in text
    assert "| blocking | accepted | 1 |" in text
    assert "| unawaited | accepted | 1 |" in text
    assert "| unawaited | error | 1 |" in text
    assert "New: 1, accepted by the baseline: 3." in text
    assert f"| blocking | `test_mod.py:{SLEEP_LINE} in test_sequential_and_blocking` |" in text
    assert re.search(
        r"\| `test_mod.py::test_gathered` \| \d+ ms \| 30.00 s \| \d+\.\d\d s \|", text
    )
    assert re.search(r"`test_mod.py::test_sequential_and_blocking` .* \(exceeded\) \|", text)


def test_outputs_are_written_once_by_the_controller_under_xdist(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_mod=TESTS)
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest_subprocess(
        *RUN, *HTML, "-p", "xdist", "-n", "2", "--asynccheck-trace=traces", "--html=report.html"
    )
    result.assert_outcomes(passed=2, failed=2)
    text = summary.read_text()
    assert text.count("## asynccheck") == 1
    assert "3 findings in 2 of 4 checked tests." in text
    # What the workers recorded reached the controller on the reports.
    assert len(list((pytester.path / "traces").iterdir())) == 3
    tests = html_tests(pytester.path / "report.html")
    svgs = [e for e in extras_of(tests, "test_mod.py::test_gathered") if e.startswith("<svg")]
    assert len(svgs) == 1 and svgs[0].count('<g class="asynccheck-lane"') == 4


def test_no_step_summary_without_the_variable(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    result = pytester.runpytest(*RUN)
    result.assert_outcomes(passed=2, failed=2)
    assert not list(pytester.path.glob("*.md"))


# -- suggested budgets -----------------------------------------------------------------------

TUTORIAL_TESTS = """
import pytest
from examples import downloads


async def test_sequential_downloads():
    await downloads.download_all_sequentially()


async def test_gathered_downloads():
    await downloads.download_all()


@pytest.mark.max_wall(10)
async def test_budgeted():
    await downloads.download_all()


async def test_failing():
    await downloads.download_all()
    assert False
"""


@pytest.fixture
def tutorial(pytester: pytest.Pytester) -> pytest.Pytester:
    """The examples next to a test file; run in a subprocess, as the suite itself may have
    imported the repository's ``examples`` already."""
    shutil.copytree(
        EXAMPLES, pytester.path / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    pytester.makepyfile(test_suggest=TUTORIAL_TESTS)
    pytester.syspathinsert()
    return pytester


def _suggestions(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    jsonschema.validate(data, json.loads(REPORT_SCHEMA.read_text()))
    return {s["nodeid"].rpartition("::")[2]: s for s in data["suggested_budgets"]}


def test_suggested_budgets_in_virtual_time(tutorial: pytest.Pytester) -> None:
    started = time.perf_counter()
    result = tutorial.runpytest_subprocess(
        *RUN,
        "test_suggest.py",
        "--asynccheck-clock=virtual",
        "--asynccheck-suggest-budgets",
        "--asynccheck-report=report.json",
        "-p",
        "no:randomly",
    )
    real = time.perf_counter() - started
    result.assert_outcomes(passed=3, failed=1)
    found = _suggestions(tutorial.path / "report.json")
    assert set(found) == {"test_sequential_downloads", "test_gathered_downloads"}
    sequential, gathered = found["test_sequential_downloads"], found["test_gathered_downloads"]
    # Virtual seconds are the timers' seconds, plus the real time the code ran: a few ms, at
    # most the real time of the whole run.
    assert 6.0 <= sequential["measured"] < 6.0 + real
    assert 2.0 <= gathered["measured"] < 2.0 + real
    assert sequential["clock"] == gathered["clock"] == "virtual"
    assert 6.6 <= sequential["suggested"] <= round_up((6.0 + real) * 1.1)
    assert 2.2 <= gathered["suggested"] <= round_up((2.0 + real) * 1.1)
    assert (
        gathered["marker"] == f'@pytest.mark.max_wall({gathered["suggested"]:g}, clock="virtual")'
    )
    assert [round(s["seconds"], 1) for s in sequential["sequential_awaits"]] == [2.0, 2.0, 2.0]
    assert gathered["sequential_awaits"] == []
    result.stdout.fnmatch_lines(
        [
            "*- asynccheck: suggested budgets -*",
            "budgets suggested from this run (measured x 1.5 (virtual time: x 1.1), rounded up):",
            '@pytest.mark.max_wall(2.*, clock="virtual")  test_suggest.py::test_gathered_downloads'
            "  (measured virtual 2.* s)",
            '@pytest.mark.max_wall(*, clock="virtual")  test_suggest.py::test_sequential_downloads'
            "  (measured virtual 6.* s)",
            "    3 awaits ran one after another; gathered (asyncio.gather) they would take about "
            "2.00 s:",
            "      examples/downloads.py:* in download_all_sequentially awaited download_file() "
            "for 2.00 s",
        ]
    )


def test_suggested_budgets_in_wall_time_with_a_wall_factor(tutorial: pytest.Pytester) -> None:
    (tutorial.path / "test_suggest.py").write_text(
        TUTORIAL_TESTS.replace("_sequentially()", "_sequentially(0.05)").replace(
            "download_all()", "download_all(0.05)"
        )
    )
    result = tutorial.runpytest_subprocess(
        *RUN,
        "test_suggest.py",
        "--asynccheck-suggest-budgets",
        "--asynccheck-wall-factor=2",
        "--asynccheck-report=report.json",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=3, failed=1)
    found = _suggestions(tutorial.path / "report.json")
    sequential, gathered = found["test_sequential_downloads"], found["test_gathered_downloads"]
    assert sequential["clock"] == "wall"
    assert sequential["measured"] >= 0.3 and gathered["measured"] >= 0.1
    for entry in (sequential, gathered):
        # x 1.5 headroom / 2 wall factor, rounded up to two digits
        assert entry["measured"] * 0.75 <= entry["suggested"] <= entry["measured"] * 0.75 * 1.1
    assert len(sequential["sequential_awaits"]) == 3
    result.stdout.fnmatch_lines(
        ["budgets suggested from this run (measured x 1.5 (virtual time: x 1.1) / wall factor 2*"]
    )


def test_no_suggestions_without_the_option(tutorial: pytest.Pytester) -> None:
    result = tutorial.runpytest_subprocess(
        *RUN, "test_suggest.py", "--asynccheck-clock=virtual", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=3, failed=1)
    assert "suggested budgets" not in result.stdout.str()


STALLS = """
import asyncio
import time
import pytest


@pytest.mark.max_wall(30)
async def test_blocks_twice_and_stalls():
    for _ in range(2):
        time.sleep(0.05)
        await asyncio.sleep(0.05)
    deadline = time.thread_time() + 0.4  # CPU time: waits for a CPU are not a stall
    while time.thread_time() < deadline:
        pass
    await asyncio.sleep(0.05)
"""


def test_trace_places_each_blocked_call_and_the_stall_in_its_own_turn(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mod=STALLS)
    result = pytester.runpytest(
        *ARGS, "--asynccheck-trace=traces", "--asynccheck-stall-threshold=0.2", "-p", "no:randomly"
    )
    result.assert_outcomes(failed=1)
    (path,) = (pytester.path / "traces").iterdir()
    events = validate_trace(json.loads(path.read_text()))
    blocked = [e for e in events if e["tid"] == 2 and e["ph"] == "X"]
    # A loaded machine may stall the loop elsewhere too: only these are certain.
    sleeps = [e for e in blocked if e["name"] == "blocked: time.sleep"]
    assert [e["args"]["where"] for e in sleeps] == ["test_mod.py:9", "test_mod.py:9"]
    loop = [e for e in blocked if e["args"]["where"] == "test_mod.py:12"]
    assert [e["name"] for e in loop] == ["stall: stall"]
    assert loop[0]["dur"] >= 0.2 * 1_000_000
    # Each in its own stretch of running, between the loop's waits of the test's task.
    waits = [
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if e["tid"] == 3 and e["name"] == "waiting on timers or I/O"
    ]
    for event in blocked:
        start, end = event["ts"], event["ts"] + event["dur"]
        assert not any(w_start < end - 1 and start + 1 < w_end for w_start, w_end in waits)
    assert sleeps[0]["ts"] + sleeps[0]["dur"] <= sleeps[1]["ts"] + 1
    assert sleeps[1]["ts"] + sleeps[1]["dur"] <= loop[0]["ts"] + 1


def test_svg_draws_blocked_spans_only_on_lanes_alive_then() -> None:
    from pytest_asynccheck.reporting.html import timeline_svg

    svg = timeline_svg(
        {
            "clock": "virtual",
            "wall": 2.0,
            "lanes": [
                {"name": "test", "spans": [[0.0, 2.0, "running"]]},
                {"name": "Task-2", "spans": [[1.5, 2.0, "waiting"]]},
                {"name": "Task-3", "spans": []},
            ],
            "more_lanes": 7,
            "blocked": [
                {"start": 0.5, "end": 1.0, "what": "stall", "call": "stall", "where": "t.py:3"}
            ],
            "sequential": [],
        }
    )
    assert svg.count("<title>stall: stall at t.py:3 (500 ms)</title>") == 1
    assert "2.00 s (virtual time)" in svg
    assert "7 more tasks not shown" in svg


def test_step_summary_and_suggestions_when_there_is_nothing_or_a_lot() -> None:
    from pytest_asynccheck.reporting import stepsummary, suggest

    budgets = [
        {"nodeid": f"t.py::test_{i}", "wall": 0.5, "budget": 1.0, "factor": 1.0, "margin": 0.5}
        for i in range(stepsummary.MAX_BUDGETS + 2)
    ]
    text = stepsummary.markdown([], budgets, 40, with_baseline=False)
    assert text.startswith("## asynccheck\n\nNo findings in 40 checked tests.\n")
    assert text.count("| `t.py::test_") == stepsummary.MAX_BUDGETS
    assert "... and 2 more budgeted tests" in text
    assert suggest.lines([], 1.0) == ["no async test without a budget passed: nothing to suggest"]
    assert [suggest.round_up(s) for s in (0.001, 0.0123, 0.101, 2.2, 6.6, 123.4)] == [
        0.01,
        0.013,
        0.11,
        2.2,
        6.6,
        130.0,
    ]


# -- the terminal summary at each verbosity --------------------------------------------------


def test_terminal_summary_follows_the_verbosity(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TESTS)
    quiet = pytester.runpytest(*RUN, "-q", "-p", "no:randomly")
    quiet.assert_outcomes(passed=2, failed=2)
    section = quiet.stdout.str().split("= asynccheck =")[1].splitlines()[1:4]
    assert section == [
        "error blocking        x1 at 1 place in 1 test",
        "error max-wall        x1 at 1 place in 1 test",
        "error unawaited       x1 at 1 place in 1 test",
    ]
    default = pytester.runpytest(*RUN, "-p", "no:randomly")
    default.stdout.fnmatch_lines(
        [
            "*= asynccheck =*",
            f"error blocking        test_mod.py:{SLEEP_LINE} in test_sequential_and_blocking "
            "time.sleep  x1",
            "        test_mod.py::test_sequential_and_blocking",
        ]
    )
    assert "budget ok" not in default.stdout.str()
    verbose = pytester.runpytest(*RUN, "-v", "-p", "no:randomly")
    verbose.stdout.fnmatch_lines(
        [
            "*= asynccheck =*",
            f"error blocking        test_mod.py:{SLEEP_LINE} in test_sequential_and_blocking "
            "time.sleep  x1",
            f"          test_mod.py:{SLEEP_LINE} in test_sequential_and_blocking",
            "        test_mod.py::test_sequential_and_blocking",
            "budget ok  test_mod.py::test_gathered: 0.* s of 30.000 s (wall), margin 29.* s",
            "asynccheck: 3 errors, 0 warnings in 2 of 4 checked tests",
        ]
    )
    assert "budget ok  test_mod.py::test_sequential_and_blocking" not in verbose.stdout.str()


UVLOOP_SUGGEST = anyio_module(
    """
@pytest.mark.anyio
async def test_on_uvloop(anyio_backend):
    await asyncio.sleep(0.05)
""",
    backend=UVLOOP_BACKEND,
)


def test_suggestions_on_a_loop_without_a_selector_are_in_wall_time(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("uvloop")
    pytester.makepyfile(test_mod=UVLOOP_SUGGEST)
    result = pytester.runpytest(
        *RUN,
        "-p",
        "anyio",
        "--asynccheck-clock=virtual",
        "--asynccheck-suggest-budgets",
        "--asynccheck-report=report.json",
    )
    result.assert_outcomes(passed=1)
    (entry,) = _suggestions(pytester.path / "report.json").values()
    assert entry["clock"] == "wall" and entry["measured"] >= 0.05
    assert entry["marker"] == f"@pytest.mark.max_wall({entry['suggested']:g})"


def test_suggestions_time_the_call_phase_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        @pytest.fixture
        async def slow_fixture():
            await asyncio.sleep(0.3)
            yield

        async def test_fast(slow_fixture):
            await asyncio.sleep(0.01)
        """
    )
    result = pytester.runpytest(
        *RUN,
        "--asynccheck-clock=virtual",
        "--asynccheck-suggest-budgets",
        "--asynccheck-report=r.json",
    )
    result.assert_outcomes(passed=1)
    (entry,) = _suggestions(pytester.path / "r.json").values()
    assert entry["clock"] == "virtual" and 0.01 <= entry["measured"] < 0.3
    assert entry["suggested"] < 0.3
