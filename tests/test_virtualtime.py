"""Budgets in virtual loop time: timers fast-forward while the loop is idle, so the tutorial's
2-second downloads are checked exactly and in milliseconds; real work keeps real time."""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

import pytest

from pytest_asynccheck.detectors.budget.virtualtime import VirtualClock
from tests.helpers import (
    ANYIO,
    ARGS,
    ASYNCIO,
    ASYNCIO_INI,
    LOOP_SCOPE,
    SLOW_NOT_HUNG,
    anyio_module,
    pytest_asyncio_version,
)

TUTORIAL = """
import asyncio
import time
import pytest


def elapsed_property(request):
    return dict(request.node.user_properties)["asynccheck_wall"]


@pytest.mark.max_wall(2.1)
async def test_sequential_downloads():
    for _ in range(3):
        await asyncio.sleep(2)


@pytest.mark.max_wall(2.1)
async def test_gathered_downloads():
    await asyncio.gather(*(asyncio.sleep(d) for d in (2, 2, 2)))


@pytest.mark.max_wall(4.1)
async def test_semaphore_two_waves():
    semaphore = asyncio.Semaphore(2)

    async def job():
        async with semaphore:
            await asyncio.sleep(2)

    await asyncio.gather(*(job() for _ in range(4)))


@pytest.mark.max_wall(1)
async def test_timers_timeouts_and_cancellation():
    loop = asyncio.get_running_loop()
    fired = loop.create_future()
    loop.call_later(0.5, fired.set_result, "fired")
    assert await fired == "fired"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.sleep(3600), 0.2)
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
"""


def _virtual_figures(pytester: pytest.Pytester) -> dict[str, float]:
    return {name: virtual for name, (virtual, _) in _figures_and_real_times(pytester).items()}


def _figures_and_real_times(pytester: pytest.Pytester) -> dict[str, tuple[float, float]]:
    import ast
    import xml.etree.ElementTree as ET

    figures = {}
    for case in ET.parse(pytester.path / "junit.xml").iter("testcase"):
        for prop in case.iter("property"):
            if prop.get("name") == "asynccheck_wall":
                value = ast.literal_eval(prop.get("value", "{}"))
                assert value["clock"] == "virtual"
                figures[case.get("name", "")] = (value["wall"], float(case.get("time", "nan")))
    return figures


def _assert_exact(figure: tuple[float, float], timers: float) -> None:
    """A virtual figure is the timers' seconds plus the real time the test spent working, which
    cannot exceed the real time the whole test took (however loaded the machine)."""
    virtual, real = figure
    assert timers - 1e-6 <= virtual <= timers + real + 0.001, figure  # junit rounds to 1 ms


@pytest.mark.parametrize(
    "runner",
    [pytest.param((), id="standalone"), pytest.param(ASYNCIO, id="pytest-asyncio")],
)
def test_tutorial_timings_at_full_scale_are_exact_and_instant(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    if runner:
        pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makepyfile(test_mod=TUTORIAL)
    result = pytester.runpytest(
        *ARGS,
        *runner,
        *SLOW_NOT_HUNG,
        "--asynccheck-clock=virtual",
        "--junitxml=junit.xml",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck: mode=error, *, clock=virtual",
            "?max-wall? virtual time 6.0? s (real * ms) exceeded the max_wall budget of 2.10 s",
        ]
    )
    figures = _figures_and_real_times(pytester)
    _assert_exact(figures["test_sequential_downloads"], 6.0)
    _assert_exact(figures["test_gathered_downloads"], 2.0)
    _assert_exact(figures["test_semaphore_two_waves"], 4.0)
    _assert_exact(figures["test_timers_timeouts_and_cancellation"], 0.8)
    assert float(result.stdout.lines[-1].split(" in ")[-1].split("s")[0]) < 5  # real seconds


def test_marker_clock_and_mixed_loop_scopes(pytester: pytest.Pytester) -> None:
    # pytest-asyncio before 1.0 cannot give a module-loop test a function-loop fixture.
    mixed = "function_loop_fixture" if pytest_asyncio_version() >= (1, 0) else ""
    pytester.makeini("[pytest]\n" + ASYNCIO_INI)
    pytester.makepyfile(
        test_mod=f"""
        import asyncio
        import pytest
        import pytest_asyncio

        @pytest_asyncio.fixture
        async def function_loop_fixture():
            return asyncio.get_running_loop()

        @pytest.mark.asyncio({LOOP_SCOPE}="module")
        @pytest.mark.max_wall(1.5, clock="virtual")
        async def test_module_loop_first({mixed}):
            await asyncio.sleep(1)

        @pytest.mark.asyncio({LOOP_SCOPE}="module")
        @pytest.mark.max_wall(1.5, clock="virtual")
        async def test_module_loop_second():
            loop = asyncio.get_running_loop()
            assert "time" in vars(loop)  # the clock is on while the test body runs
            await asyncio.sleep(1)

        @pytest.mark.asyncio
        @pytest.mark.max_wall(0.5, clock="virtual")
        async def test_function_loop_over_budget():
            await asyncio.sleep(1)

        @pytest.mark.asyncio({LOOP_SCOPE}="module")
        async def test_clock_is_off_again():
            loop = asyncio.get_running_loop()
            assert "time" not in vars(loop) and "run_in_executor" not in vars(loop)
            assert "select" not in vars(loop._selector)
        """
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO, *SLOW_NOT_HUNG, "-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    # The virtual clock runs on with real time between its jumps: a loaded machine reads 1.01 s.
    result.stdout.fnmatch_lines(["?max-wall? virtual time 1.0? s (real * ms) exceeded *500 ms"])


def test_real_io_and_threads_keep_real_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import time
        import pytest

        @pytest.mark.max_wall(10, clock="virtual")
        async def test_mixed(request):
            async def echo(reader, writer):
                await asyncio.sleep(0.05)
                writer.write(await reader.readline())
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(echo, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            start = time.perf_counter()
            writer.write(b"ping\\n")
            assert await reader.readline() == b"ping\\n"
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            await asyncio.to_thread(time.sleep, 0.05)
            # A timer pending while the thread works must not be jumped to: the thread would
            # then be timed out in virtual time before it had a real chance to finish.
            await asyncio.wait_for(asyncio.to_thread(time.sleep, 0.05), 3)
            assert time.perf_counter() - start >= 0.14  # all three really waited
            await asyncio.sleep(5)  # and this did not
        """
    )
    result = pytester.runpytest(*ARGS, "--junitxml=junit.xml")
    result.assert_outcomes(passed=1)
    virtual = _virtual_figures(pytester)["test_mixed"]
    assert 5.14 <= virtual < 6.5


def test_a_loop_that_cannot_be_controlled_falls_back_to_wall_time_and_says_so(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = default\n")
    pytester.makepyfile(
        test_mod=anyio_module(
            """
            @pytest.mark.anyio
            @pytest.mark.max_wall(5, clock="virtual")
            async def test_trio_one(anyio_backend):
                await trio.sleep(0.01)

            @pytest.mark.anyio
            @pytest.mark.max_wall(5, clock="virtual")
            async def test_trio_two(anyio_backend):
                await trio.sleep(0.01)
            """,
            backend="trio",
            imports=("trio",),
        )
    )
    result = pytester.runpytest(*ARGS, *ANYIO)
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        ["*AsynccheckWarning: asynccheck: virtual time needs an event loop with a selector*"]
    )


def test_anyio_asyncio_backend_runs_in_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod=anyio_module(
            """
            @pytest.mark.anyio
            @pytest.mark.max_wall(2.1, clock="virtual")
            async def test_gathered(anyio_backend):
                await asyncio.gather(*(asyncio.sleep(2) for _ in range(3)))
            """
        )
    )
    result = pytester.runpytest(*ARGS, *ANYIO, "--junitxml=junit.xml")
    result.assert_outcomes(passed=1)
    figure = _figures_and_real_times(pytester)["test_gathered"]
    _assert_exact(figure, 2.0)
    assert figure[1] < 1.5  # the two seconds were not waited for real


class _LoadedSelector(selectors.DefaultSelector):
    """Every look for events costs a quarter of a (fake) second: the thread waited for the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def select(self, timeout: float | None = None) -> list[Any]:
        self.now += 0.25
        return super().select(0)


class _LoadedLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.selector = _LoadedSelector()
        super().__init__(self.selector)

    def time(self) -> float:
        return self.selector.now


def test_real_time_passing_before_the_jump_is_not_counted_twice() -> None:
    # On a loaded machine the loop thread can wait for the CPU between reading the clock for its
    # select timeout and the jump; a jump by that timeout would then land past the timer.
    loop = _LoadedLoop()
    clock = VirtualClock(loop)
    try:
        assert clock.controlled
        start = loop.time()
        when = start + 2
        fired: asyncio.Future[float] = loop.create_future()
        loop.call_at(when, lambda: fired.set_result(loop.time()))
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.run_until_complete(fired) == when  # not when + 0.25
        assert 0 < clock.skipped < 2  # the jump was shortened by the real time that passed
    finally:
        clock.close()
        loop.close()


def test_bad_clock_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod="def test_it():\n    pass\n")
    result = pytester.runpytest(*ARGS, "--asynccheck-clock=cpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: --asynccheck-clock='cpu' (from command line) is not valid; "
            "expected one of: wall, virtual"
        ]
    )
