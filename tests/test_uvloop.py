"""On uvloop (no selector to time, no Handle._run to patch) the catalogue and the watchdog
still see blocking, and virtual time falls back to wall time with one warning."""

from __future__ import annotations

import pytest

from tests.helpers import ANYIO, ARGS, SLOW_NOT_HUNG, UVLOOP_BACKEND, anyio_module

pytest.importorskip("uvloop")

UVLOOP_TESTS = anyio_module(
    """
@pytest.mark.anyio
async def test_cpu_stall(anyio_backend):
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        pass

@pytest.mark.anyio
async def test_short_sleep(anyio_backend):
    time.sleep(0.01)

@pytest.mark.anyio
@pytest.mark.max_wall(5, clock="virtual")
async def test_virtual_one(anyio_backend):
    await asyncio.sleep(0.01)

@pytest.mark.anyio
@pytest.mark.max_wall(5, clock="virtual")
async def test_virtual_two(anyio_backend):
    await asyncio.sleep(0.01)
""",
    backend=UVLOOP_BACKEND,
    imports=("asyncio", "time"),
)


def test_uvloop_blocking_stalls_and_virtual_time_fallback(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = default\n")
    pytester.makepyfile(test_mod=UVLOOP_TESTS)
    result = pytester.runpytest(*ARGS, *ANYIO, "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "?blocking? the event loop was stalled for at least * ms (threshold 100 ms) at this "
            "line*",
            "  at test_mod.py:13 in test_cpu_stall",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "?blocking? blocking call time.sleep() held the event loop for * ms*",
            "  at test_mod.py:18 in test_short_sleep",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*AsynccheckWarning: asynccheck: virtual time needs an event loop with a selector*Loop*"]
    )


UVLOOP_BUDGETS = anyio_module(
    """
@pytest.mark.anyio
@pytest.mark.max_wall(0.1)
async def test_only_sleeps(anyio_backend):
    await asyncio.sleep(0.3)

@pytest.mark.anyio
@pytest.mark.max_wall(0.1)
async def test_blocks(anyio_backend):
    time.sleep(0.3)
""",
    backend=UVLOOP_BACKEND,
    imports=("asyncio", "time"),
)


def test_uvloop_budget_breakdown_leaves_out_what_it_cannot_measure(
    pytester: pytest.Pytester,
) -> None:
    """uvloop has no selector to time: its idle time is unknown, so neither an idle figure, a
    running figure derived from it, nor a timeline (all "running") may be printed."""
    pytester.makepyfile(test_mod=UVLOOP_BUDGETS)
    result = pytester.runpytest(*ARGS, *ANYIO, *SLOW_NOT_HUNG, "-p", "no:randomly")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert out.count("exceeded the max_wall budget of 100 ms") == 2
    assert "running callbacks" not in out
    assert "idle waiting" not in out
    assert "test |" not in out
    result.stdout.fnmatch_lines(
        ["  loop time: blocked *s", "    blocked *s by time.sleep at test_mod.py:17"]
    )
    result.stdout.fnmatch_lines(
        ["  fix: move the blocking calls off the loop (await asyncio.to_thread(...))"]
    )
