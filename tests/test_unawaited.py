"""Never-awaited coroutines fail the test that created them, with the line that created them."""

from __future__ import annotations

import pytest

from pytest_asynccheck.detectors.unawaited import CYCLE_NOTE, FIX
from tests.helpers import (
    ANYIO,
    ARGS,
    ASYNCIO_INI,
    STANDALONE_AND_PYTEST_ASYNCIO,
    anyio_module,
)

HELPERS = """\
import asyncio

KEEP = []

async def fetch():
    await asyncio.sleep(0)
    return 1

def sync_helper():
    fetch()
"""

CASES = {
    "test_tutorial_sleep_without_await": ("    asyncio.sleep(1)\n", "sleep", 1),
    "test_helper_without_await": ("    fetch()\n", "fetch", 1),
    "test_list_dropped": ("    pending = [fetch(), fetch()]\n    del pending\n", "fetch", 1),
    "test_created_in_sync_helper": ("    sync_helper()\n", "fetch", None),
    "test_created_in_awaited_task": (
        "    async def inner():\n        fetch()\n    await asyncio.create_task(inner())\n",
        "fetch",
        2,
    ),
}


def _module() -> str:
    body = [HELPERS]
    for name, (code, _, _) in CASES.items():
        body.append(f"\nasync def {name}():\n{code}")
    return "".join(body)


def _line_of(source: str, name: str, offset: int) -> int:
    return source.splitlines().index(f"async def {name}():") + 1 + offset


@pytest.mark.parametrize("runner", STANDALONE_AND_PYTEST_ASYNCIO)
def test_each_never_awaited_coroutine_fails_its_test_with_name_line_and_fix(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    if runner:
        pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    source = _module()
    pytester.makepyfile(test_mod=source)
    result = pytester.runpytest(*ARGS, *runner, "-p", "no:randomly")
    result.assert_outcomes(failed=len(CASES))
    for name, (_, coroutine, offset) in CASES.items():
        where = (
            f"test_mod.py:{_line_of(source, name, offset)} in "
            + ("inner" if name == "test_created_in_awaited_task" else name)
            if offset
            else f"test_mod.py:{source.splitlines().index('    fetch()') + 1} in sync_helper"
        )
        result.stdout.fnmatch_lines(
            [
                f"asynccheck found 1 problem in test_mod.py::{name} (call):",
                f"?unawaited? coroutine '{coroutine}' was never awaited*",
                f"  at {where}",
            ]
        )
    result.stdout.fnmatch_lines([f"  fix: {FIX}"])
    result.stdout.no_fnmatch_line("*RuntimeWarning*")
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_anyio_tests_are_checked_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod=anyio_module(
            """
            @pytest.mark.anyio
            async def test_missing_await(anyio_backend):
                asyncio.sleep(1)
            """
        )
    )
    result = pytester.runpytest(*ARGS, *ANYIO)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "?unawaited? coroutine 'sleep' was never awaited",
            "  at test_mod.py:10 in test_missing_await",
        ]
    )


@pytest.mark.parametrize(
    "warning_args",
    [("-W", "error"), ("-W", "error::RuntimeWarning"), ("-o", "filterwarnings=error")],
    ids=["W-error", "W-error-RuntimeWarning", "filterwarnings-error"],
)
def test_warning_filters_do_not_hide_it(
    pytester: pytest.Pytester, warning_args: tuple[str, str]
) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio

        async def test_missing_await():
            asyncio.sleep(1)

        async def test_fine():
            await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest(*ARGS, *warning_args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["?unawaited? coroutine 'sleep' was never awaited"])
    result.stdout.no_fnmatch_line("*PytestUnraisableExceptionWarning*")


KEPT_ALIVE = """
import asyncio

KEEP = []

async def fetch():
    pass

async def test_a_creates():
    KEEP.append(fetch())

async def test_b_drops():
    KEEP.clear()
"""


def test_with_origin_tracking_a_coroutine_kept_into_a_later_test_is_reported_on_its_creator(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mod=KEPT_ALIVE)
    result = pytester.runpytest(*ARGS, "--asynccheck-coroutine-origin", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "asynccheck: mode=error, *, coroutine-origin",
            "*= asynccheck =*",
            "error unawaited       test_mod.py:9 in test_a_creates fetch()  x1",
            "        test_mod.py::test_a_creates",
        ]
    )
    result.stdout.no_fnmatch_line("*test_mod.py::test_b_drops")


def test_by_default_a_coroutine_kept_into_a_later_test_fails_the_test_that_drops_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasynccheck_coroutine_origin = false\n")
    pytester.makepyfile(test_mod=KEPT_ALIVE)
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_b_drops (call):",
            "?unawaited? coroutine 'fetch' was never awaited*",
            "  at test_mod.py:12 in test_b_drops",
        ]
    )
    result.stdout.no_fnmatch_line("*coroutine-origin*")


def test_the_creating_line_is_found_in_the_function_that_drops_the_coroutine(
    pytester: pytest.Pytester,
) -> None:
    source = """
import asyncio

async def fetch(n):
    return n

async def test_it():
    first = await fetch(0)
    pending = [fetch(n) for n in range(3)]
    await asyncio.sleep(0)
    assert first == 0
    del pending
"""
    pytester.makepyfile(test_mod=source)
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "?unawaited? coroutine 'fetch' was never awaited*",
            "  at test_mod.py:8 in test_it",
            "  dropped at test_mod.py:11 in test_it",
        ]
    )


def test_correct_code_is_not_flagged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        async def fetch():
            await asyncio.sleep(0)
            return 1

        async def test_awaited():
            assert await fetch() == 1

        async def test_task_that_completes():
            task = asyncio.create_task(fetch())
            assert await task == 1

        async def test_gathered():
            assert await asyncio.gather(fetch(), fetch()) == [1, 1]

        async def test_closed():
            coro = fetch()
            coro.close()

        def test_asyncio_run_in_a_sync_test():
            assert asyncio.run(fetch()) == 1

        async def test_fire_and_forget_that_completes():
            asyncio.create_task(fetch())
            await asyncio.sleep(0.01)
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["asynccheck: no findings in 5 checked tests"])  # 5 async


def test_warn_level_and_allow_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = default\n")
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        async def test_warned():
            asyncio.sleep(1)

        @pytest.mark.asynccheck(allow=["unawaited"])
        async def test_allowed():
            asyncio.sleep(1)
        """
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-unawaited=warn")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        ["*test_mod.py:5: UnawaitedCoroutineWarning: ?unawaited? coroutine 'sleep'*"]
    )


def test_under_xdist_findings_reach_the_controller(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        @pytest.mark.parametrize("n", range(4))
        async def test_missing_await(n):
            asyncio.sleep(n)
        """
    )
    result = pytester.runpytest(*ARGS, "-p", "xdist", "-n", "2")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(
        [
            "error unawaited       test_mod.py:6 in test_missing_await sleep()  x4",
            "asynccheck: 4 errors, 0 warnings in 4 of 4 checked tests",
        ]
    )


def test_off_leaves_pythons_own_warning(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = default\n")
    pytester.makepyfile(
        test_mod="""
        import asyncio

        async def test_missing_await():
            asyncio.sleep(1)
        """
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-unawaited=off")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*RuntimeWarning: coroutine 'sleep' was never awaited*"])


CYCLE = """\
import asyncio
import gc

async def fetch():
    return 1

class Holder:
    def __init__(self):
        self.me = self  # a reference cycle: only the garbage collector frees it
        self.coro = fetch()

async def test_drops_a_cycle():
    Holder()
{after}
async def test_next():
    await asyncio.sleep(0)
"""


def test_a_coroutine_freed_from_a_cycle_is_named_by_its_function(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mod=CYCLE.format(after="    gc.collect()  # the collector runs\n"))
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_drops_a_cycle (call):",
            "?unawaited? coroutine 'fetch' was never awaited",
            "  at test_mod.py:4 in fetch",
            f"  {CYCLE_NOTE}",
        ]
    )


def test_with_origin_tracking_a_cycle_is_collected_in_its_test_at_the_creating_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mod=CYCLE.format(after=""))
    result = pytester.runpytest(*ARGS, "--asynccheck-coroutine-origin", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_drops_a_cycle (call):",
            "?unawaited? coroutine 'fetch' was never awaited",
            "  at test_mod.py:10 in __init__",
        ]
    )


def test_a_cycle_the_collector_frees_only_at_the_end_is_reported_after_the_run(
    pytester: pytest.Pytester,
) -> None:
    # No collection runs during the tests: the one at the session's end frees the cycle.
    pytester.makeconftest("import gc\ngc.disable()\n")
    pytester.makepyfile(test_mod=CYCLE.format(after=""))
    result = pytester.runpytest_subprocess(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*= asynccheck =*",
            "error unawaited       test_mod.py:4 in fetch fetch()  x1",
        ]
    )


#: Counts the full collections made before the summary; automatic ones are off.
COUNT_FULL_COLLECTIONS = """\
import gc

gc.disable()
FULL = []

def count(phase, info):
    if phase == "start" and info["generation"] == 2:
        FULL.append(1)

gc.callbacks.append(count)

def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"full collections: {len(FULL)}")
"""

LEFT_ALIVE = """\
import asyncio

async def fetch():
    return 1

class Suspend:
    def __await__(self):
        yield

async def paused():
    await Suspend()

{kept}

async def test_one():
    await asyncio.sleep(0)
"""


@pytest.mark.parametrize(
    ("kept", "collections"),
    [
        pytest.param("", 0, id="no coroutine left"),
        pytest.param("STARTED = paused()\nSTARTED.send(None)", 0, id="a started coroutine"),
        pytest.param("NEVER_STARTED = fetch()", 1, id="a coroutine never started"),
    ],
)
def test_the_full_collection_at_the_end_is_made_only_while_a_coroutine_was_never_started(
    pytester: pytest.Pytester, kept: str, collections: int
) -> None:
    pytester.makeconftest(COUNT_FULL_COLLECTIONS)
    pytester.makepyfile(test_mod=LEFT_ALIVE.format(kept=kept))
    result = pytester.runpytest_subprocess(*ARGS, "-W", "ignore::RuntimeWarning")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"full collections: {collections}"])


SHAPES = """\
import asyncio
import functools

async def fetch(i=0):
    await asyncio.sleep(0)
    return i

async def test_appended_and_dropped():
    coros = []
    for i in range(2):
        coros.append(fetch(i))  # <- appended
    del coros

async def test_gather_of_a_list():
    coros = [fetch(i) for i in range(2)]  # <- gather
    try:
        await asyncio.gather(coros)
    except TypeError:
        pass

async def test_map():
    coros = list(map(fetch, [1, 2]))  # <- map
    del coros

async def test_dict_comprehension():
    pending = {i: fetch(i) for i in range(2)}  # <- dict
    del pending

async def test_call_soon():
    loop = asyncio.get_running_loop()
    loop.call_soon(fetch, 1)  # <- call_soon
    await asyncio.sleep(0.05)

async def schedule_later():
    asyncio.get_running_loop().call_soon(fetch, 2)  # <- helper
    await asyncio.sleep(0.05)

async def test_call_soon_in_a_helper():
    await schedule_later()

async def test_run_in_executor():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, fetch, 1)  # <- executor

async def test_to_thread():
    await asyncio.to_thread(fetch, 2)  # <- to_thread

async def test_partial():
    started = functools.partial(fetch, 3)  # <- partial made
    started()  # <- partial called
"""

SHAPE_MARKS = {
    "test_appended_and_dropped": "appended",
    "test_gather_of_a_list": "gather",
    "test_map": "map",
    "test_dict_comprehension": "dict",
    "test_call_soon": "call_soon",
    "test_call_soon_in_a_helper": "helper",
    "test_run_in_executor": "executor",
    "test_to_thread": "to_thread",
}


# The executor's worker thread lets go of the coroutine it returned only when it next runs: on
# a loaded machine that can come after the test's call phase, and the finding in its teardown.
@pytest.mark.flaky(reruns=2)
@pytest.mark.parametrize(
    "mode",
    [
        pytest.param((), id="default"),
        pytest.param(("--asynccheck-coroutine-origin",), id="origin"),
    ],
)
def test_coroutines_dropped_by_callbacks_threads_and_containers_are_placed_at_the_users_line(
    pytester: pytest.Pytester, mode: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_shapes=SHAPES)
    result = pytester.runpytest(*ARGS, *mode, "-p", "no:randomly")
    result.assert_outcomes(failed=len(SHAPE_MARKS) + 1)
    lines = SHAPES.splitlines()
    # The partial's coroutine is created by calling it: origin tracking names that call; by
    # default the line that handed the coroutine function over is named, then the drop.
    partial = "partial called" if mode else "partial made"
    for name, mark in {**SHAPE_MARKS, "test_partial": partial}.items():
        line = next(i for i, text in enumerate(lines, 1) if text.endswith(f"# <- {mark}"))
        result.stdout.fnmatch_lines(
            [
                f"asynccheck found 1 problem in test_shapes.py::{name} (call):",
                "?unawaited? coroutine 'fetch' was never awaited*",
                f"  at test_shapes.py:{line} in *",
            ]
        )
        result.stdout.fnmatch_lines([f"error unawaited * test_shapes.py:{line} in *"])
    result.stdout.no_fnmatch_line("*<unknown>*")
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_coroutine_functions_handed_over_correctly_are_not_flagged(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio

        async def fetch(i=0):
            await asyncio.sleep(0)
            return i

        def work(i):
            return i

        async def test_handed_over_correctly():
            loop = asyncio.get_running_loop()
            coros = [fetch(i) for i in range(2)]
            assert await asyncio.gather(*coros) == [0, 1]
            assert await asyncio.to_thread(work, 2) == 2
            assert await loop.run_in_executor(None, work, 3) == 3
            done = loop.create_future()
            loop.call_soon(done.set_result, 4)
            assert await done == 4
            assert await asyncio.to_thread(asyncio.run, fetch(5)) == 5
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["asynccheck: no findings in 1 checked test"])
