"""Under looptime's fake loop clock the wall-clock checks still see blocking calls and stalls
(asyncio's own slow-callback detection is blind there)."""

from __future__ import annotations

import pytest

from tests.helpers import ARGS, ASYNCIO, ASYNCIO_INI, pytest_asyncio_version

pytest.importorskip("looptime")
if pytest_asyncio_version() < (1, 0):
    pytest.skip("looptime 0.9 needs pytest-asyncio 1.x", allow_module_level=True)

LOOPTIME = ("-p", "looptime_plugin", "-p", "looptime_chronometers", "-p", "looptime_timeproxies")


def test_blocking_and_stalls_are_caught_on_a_looptime_loop(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n" + ASYNCIO_INI)
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import time
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.looptime
        async def test_sleep_blocks():
            await asyncio.sleep(10)  # compacted by looptime
            time.sleep(0.01)

        @pytest.mark.asyncio
        @pytest.mark.looptime
        async def test_stall():
            end = time.perf_counter() + 0.3
            while time.perf_counter() < end:
                pass

        @pytest.mark.asyncio
        @pytest.mark.looptime
        async def test_clean():
            start = time.perf_counter()
            await asyncio.sleep(100)
            assert time.perf_counter() - start < 5  # looptime still compacts time
        """
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO, *LOOPTIME, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "?blocking? blocking call time.sleep() held the event loop for * ms*",
            "  at test_mod.py:9 in test_sleep_blocks",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "?blocking? the event loop was stalled for at least * ms*",
            "  at test_mod.py:15 in test_stall",
        ]
    )
