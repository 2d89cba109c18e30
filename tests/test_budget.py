"""``@pytest.mark.max_wall``: budgets met and missed, where the time went, markers, factor, off."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import ANYIO, ARGS, ASYNCIO, ASYNCIO_INI, SLOW_NOT_HUNG, anyio_module

#: Inner runs measure with a fake clock that only moves when a test calls ``clock.advance``.
FAKE_CLOCK_CONFTEST = """
import pytest
from pytest_asynccheck import _clock


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


CLOCK = FakeClock()
REAL = _clock.perf_counter


def pytest_configure(config):
    _clock.perf_counter = CLOCK


def pytest_unconfigure(config):
    _clock.perf_counter = REAL


@pytest.fixture
def clock():
    return CLOCK


@pytest.fixture
def slow_setup(clock):
    clock.advance(3)
"""


@pytest.fixture
def fake(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(FAKE_CLOCK_CONFTEST)
    return pytester


def test_met_and_missed_budgets(fake: pytest.Pytester) -> None:
    fake.makepyfile(
        test_mod="""
        import pytest

        @pytest.mark.max_wall(2.1)
        def test_met(clock):
            clock.advance(2.0)

        @pytest.mark.max_wall(2.1)
        def test_missed(clock):
            clock.advance(6.0)

        def test_no_budget(clock):
            clock.advance(100)
        """
    )
    result = fake.runpytest(*ARGS, "--junitxml=report.xml")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_missed (call):",
            "?max-wall? wall time 6.00 s exceeded the max_wall budget of 2.10 s",
            "  at test_mod.py:7 in test_missed",
        ]
    )
    cases = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(fake.path / "report.xml").iter("testcase")
    }
    met = json.loads(cases["test_met"]["asynccheck_wall"].replace("'", '"'))
    assert met == {
        "clock": "wall",
        "wall": 2.0,
        "budget": 2.1,
        "factor": 1.0,
        "margin": pytest.approx(0.1),
    }
    assert "asynccheck_wall" not in cases["test_no_budget"]


def test_wall_factor_loosens_every_budget(fake: pytest.Pytester) -> None:
    fake.makepyfile(
        test_mod="""
        import pytest

        @pytest.mark.max_wall("2.1s")
        def test_a(clock):
            clock.advance(4.0)

        @pytest.mark.max_wall("500ms")
        def test_b(clock):
            clock.advance(1.5)
        """
    )
    result = fake.runpytest(*ARGS, "--asynccheck-wall-factor=2")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["?max-wall? wall time 1.50 s exceeded the max_wall budget of 500 ms x 2 = 1.00 s"]
    )


def test_off_disables_budgets_and_warn_only_warns(fake: pytest.Pytester) -> None:
    fake.makeini("[pytest]\nfilterwarnings = default\n")
    fake.makepyfile(
        test_mod="""
        import pytest

        @pytest.mark.max_wall(1)
        def test_slow(clock):
            clock.advance(5.0)
        """
    )
    fake.runpytest(*ARGS, "--asynccheck-max-wall=off").assert_outcomes(passed=1)
    warned = fake.runpytest(*ARGS, "--asynccheck-max-wall=warn")
    warned.assert_outcomes(passed=1, warnings=1)
    warned.stdout.fnmatch_lines(["*WallBudgetWarning: ?max-wall? wall time 5.00 s*"])


def test_closest_marker_wins(fake: pytest.Pytester) -> None:
    fake.makepyfile(
        test_mod="""
        import pytest

        pytestmark = pytest.mark.max_wall(1)

        def test_module_budget(clock):
            clock.advance(1.5)

        @pytest.mark.max_wall(5)
        class TestClass:
            def test_class_budget(self, clock):
                clock.advance(4)

            @pytest.mark.max_wall(2)
            def test_function_budget(self, clock):
                clock.advance(3)
        """
    )
    result = fake.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*wall time 1.50 s exceeded the max_wall budget of 1.00 s",
            "*wall time 3.00 s exceeded the max_wall budget of 2.00 s",
        ]
    )


def test_setup_counts_only_when_asked(fake: pytest.Pytester) -> None:
    fake.makepyfile(
        test_mod="""
        import pytest

        @pytest.mark.max_wall(1)
        def test_slow_fixture(slow_setup, clock):
            clock.advance(0.5)
        """
    )
    fake.runpytest(*ARGS).assert_outcomes(passed=1)
    result = fake.runpytest(*ARGS, "--asynccheck-wall-include-setup")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*wall time 3.50 s exceeded the max_wall budget of 1.00 s"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("max_wall('abc')", "'abc' is not a budget; expected a positive number of seconds*"),
        ("max_wall(0)", "0 is not a budget*"),
        ("max_wall(-1)", "-1 is not a budget*"),
        ("max_wall(float('nan'))", "nan is not a budget*"),
        ("max_wall(float('inf'))", "inf is not a budget*"),
        ("max_wall(True)", "True is not a budget*"),
        ("max_wall()", "expected exactly one budget*"),
        ("max_wall(1, 2)", "expected exactly one budget*"),
        ("max_wall(1, budget=2)", "unknown keyword budget; max_wall takes the budget*"),
        ("max_wall(1, clock='cpu')", "clock='cpu' is not valid; expected 'wall' or 'virtual'"),
        ("max_wall('1 minute')", "'1 minute' is not a budget*"),
    ],
)
def test_bad_markers_error_that_test_only(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        test_mod=f"""
        import pytest

        @pytest.mark.{marker}
        def test_marked():
            pass

        def test_other():
            pass
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"*test_mod.py::test_marked: @pytest.mark.max_wall(*): {message}"])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


TUTORIAL = """
import asyncio
import pytest


async def download(delay):
    await asyncio.sleep(delay)


@pytest.mark.max_wall(0.45)
async def test_gathered():
    await asyncio.gather(download(0.2), download(0.2), download(0.2))


@pytest.mark.max_wall(0.45)
async def test_sequential():
    for _ in range(3):
        await download(0.2)
"""


@pytest.mark.parametrize(
    "runner",
    [
        pytest.param((), id="standalone"),
        pytest.param(ASYNCIO, id="pytest-asyncio"),
    ],
)
def test_real_time_gather_meets_the_budget_and_sequential_awaits_are_diagnosed(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    if runner:
        pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makepyfile(test_mod=TUTORIAL)
    # The sequential test takes 1.3 times its budget: on a loaded machine it may reach twice.
    result = pytester.runpytest(*ARGS, *runner, *SLOW_NOT_HUNG, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_sequential (call):",
            "?max-wall? wall time * exceeded the max_wall budget of 450 ms",
            "  loop time: blocked 0 ms, running callbacks and task steps * ms, idle waiting on "
            "timers/I/O * ms",
            "  3 awaits of about * ms ran one after another; asyncio.gather them:",
            "    test_mod.py:17 in test_sequential awaited download() for * ms",
            "    test_mod.py:17 in test_sequential awaited download() for * ms",
            "    test_mod.py:17 in test_sequential awaited download() for * ms",
            "*0s*s",
            "  test |*|",
            "  fix: run the independent awaits concurrently with asyncio.gather(...)",
        ]
    )
    # The test waited on its timers nearly all along; on a loaded machine its first steps can
    # take a column or two of the 60.
    (bar,) = [line for line in result.stdout.lines if line.startswith("  test |")]
    columns = bar[len("  test |") : -1]
    assert columns.count(".") >= 0.8 * len(columns), bar


def test_timelines_of_gathered_and_sequential_awaits_look_different(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mod=TUTORIAL.replace("max_wall(0.45)", "max_wall(0.1)"))
    result = pytester.runpytest(*ARGS, *SLOW_NOT_HUNG, "-p", "no:randomly")
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    gathered = text[text.index("test_gathered (call)") : text.index("test_sequential (call)")]
    sequential = text[text.index("test_sequential (call)") :]
    assert gathered.count("|\n") == 4  # the test and its three downloads, side by side
    assert sequential.count("|\n") == 1  # the test alone, awaiting one thing after another
    assert "ran one after another" not in gathered
    assert all(len(line) <= 100 for line in text.splitlines() if line.endswith("|"))


def _ms_after(prefix: str, result: pytest.RunResult) -> int:
    """The milliseconds figure that follows ``prefix`` on the first output line holding it."""
    line = next(line for line in result.stdout.lines if prefix in line)
    return int(line.split(prefix, 1)[1].split(" ms", 1)[0])


def test_blocked_loop_is_named_in_the_breakdown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import time
        import pytest

        @pytest.mark.max_wall(0.05)
        async def test_blocked():
            time.sleep(0.15)
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 2 problems in test_mod.py::test_blocked (call):",
            "?blocking? blocking call time.sleep() held the event loop for * ms*",
            "?max-wall? wall time * exceeded the max_wall budget of 50 ms",
            "  loop time: blocked * ms, *",
            "    blocked * ms by time.sleep at test_mod.py:7",
            "  fix: move the blocking calls off the loop (await asyncio.to_thread(...))",
        ]
    )
    assert _ms_after("    blocked ", result) >= 150  # at least the sleep, however late it woke


def test_busy_loop_is_named_in_the_breakdown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import time
        import pytest

        @pytest.mark.asynccheck(allow=["stall"])
        @pytest.mark.max_wall(0.02)
        async def test_cpu():
            end = time.perf_counter() + 0.15
            while time.perf_counter() < end:
                pass
        """
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-blocking=off")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  loop time: blocked 0 ms, running callbacks and task steps * ms, idle *",
            "  fix: the loop was busy running code: move CPU-bound work off it*",
        ]
    )
    assert _ms_after("running callbacks and task steps ", result) >= 149


def test_semaphore_too_tight_and_anyio(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod=anyio_module(
            """
            async def limited(semaphore):
                async with semaphore:
                    await asyncio.sleep(0.1)

            @pytest.mark.anyio
            @pytest.mark.max_wall(0.15)
            async def test_two_waves(anyio_backend):
                semaphore = asyncio.Semaphore(2)
                await asyncio.gather(*(limited(semaphore) for _ in range(4)))
            """
        )
    )
    result = pytester.runpytest(*ARGS, *ANYIO)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["?max-wall? wall time * exceeded the max_wall budget of 150 ms"])
    assert "ran one after another" not in result.stdout.str()


def test_budgets_under_xdist(fake: pytest.Pytester) -> None:
    fake.makepyfile(
        test_mod="""
        import pytest

        @pytest.mark.max_wall(1)
        @pytest.mark.parametrize("n", range(4))
        def test_slow(clock, n):
            clock.advance(2)
        """
    )
    result = fake.runpytest(*ARGS, "-p", "xdist", "-n", "2")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["error max-wall        test_mod.py:3 in test_slow* max_wall  x4"])


def test_timelines_use_colour_when_pytest_does(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=TUTORIAL.replace("max_wall(0.45)", "max_wall(0.1)"))
    plain = pytester.runpytest(*ARGS, *SLOW_NOT_HUNG, "-k", "gathered")
    assert "\x1b[" not in plain.stdout.str()
    coloured = pytester.runpytest(*ARGS, *SLOW_NOT_HUNG, "-k", "gathered", "--color=yes")
    rows = [line for line in coloured.outlines if line.rstrip().endswith("|")]
    assert len(rows) == 4
    assert all("\x1b[33m." in row for row in rows)  # waiting stretches in yellow


@pytest.mark.parametrize("budgeted", [True, False])
def test_the_budget_detector_stays_only_when_a_test_has_a_budget(
    pytester: pytest.Pytester, budgeted: bool
) -> None:
    pytester.makeconftest(
        """
        import pytest_asynccheck

        def pytest_sessionfinish(session):
            names = [d.name for d in pytest_asynccheck.active().detectors]
            print(f"detectors: {' '.join(names)}")
        """
    )
    marker = "@pytest.mark.max_wall(5)\n" if budgeted else ""
    pytester.makepyfile(f"import asyncio, pytest\n\n{marker}async def test_it():\n    pass\n")
    result = pytester.runpytest(*ARGS, "-s")
    result.assert_outcomes(passed=1)
    expected = (
        "blocking unawaited swallowed-cancel tasks callbacks thread-safety"
        + (" max-wall" if budgeted else "")
        + " switch-interval unclosed"
    )
    result.stdout.fnmatch_lines([f"*.detectors: {expected}"])
