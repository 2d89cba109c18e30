"""A task that swallows its cancellation fails the test, at the line the cancellation reached;
structures that uncancel what they catch are never flagged (Python 3.11+)."""

from __future__ import annotations

import sys

import pytest

from pytest_asynccheck._findings import Kind, Severity
from pytest_asynccheck._options import Settings
from pytest_asynccheck.detectors import cancellation
from pytest_asynccheck.detectors.cancellation import FIX
from tests.helpers import ANYIO, ARGS, ASYNCIO, ASYNCIO_INI

needs_cancelling = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Task.cancelling() is new in Python 3.11"
)

RUNNERS = [
    pytest.param("standalone", id="standalone"),
    pytest.param("asyncio", id="pytest-asyncio"),
    pytest.param("anyio", id="anyio-asyncio"),
]


def run_with(pytester: pytest.Pytester, runner: str, source: str, *args: str) -> pytest.RunResult:
    """Run ``source`` as test_mod.py under ``runner``; lines keep their numbers (the anyio
    marker goes at the end of the module)."""
    extra: tuple[str, ...] = ()
    if runner == "asyncio":
        pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
        extra = ASYNCIO
    elif runner == "anyio":
        pytester.makeconftest(
            "import pytest\n\n\n@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n"
        )
        source += "\n\npytestmark = pytest.mark.anyio\n"
        extra = ANYIO
    pytester.makepyfile(test_mod=source)
    return pytester.runpytest(*ARGS, *extra, "-p", "no:randomly", *args)


SWALLOWS = """\
import asyncio
import pytest


async def consume(queue, seen):
    while True:
        try:
            item = await queue.get()
        except BaseException:
            continue
        if item is None:
            return seen
        seen.append(item)


async def test_consumer_loop_swallows_cancel():
    queue = asyncio.Queue()
    worker = asyncio.create_task(consume(queue, []), name="consumer")
    await asyncio.sleep(0)
    worker.cancel()
    await asyncio.sleep(0)
    queue.put_nowait(None)
    assert await worker == []


async def fetch():
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        return "partial"


async def test_return_in_except_cancelled_error():
    task = asyncio.create_task(fetch())
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "partial"


async def shutdown():
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        raise RuntimeError("stopped")


async def test_cancel_turned_into_another_error():
    task = asyncio.create_task(shutdown())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(RuntimeError):
        await task
"""


@needs_cancelling
@pytest.mark.parametrize("runner", RUNNERS)
def test_swallowed_cancellations_fail_at_the_line_the_cancel_reached(
    pytester: pytest.Pytester, runner: str
) -> None:
    result = run_with(pytester, runner, SWALLOWS)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_consumer_loop_swallows_cancel*",
            "?swallowed-cancel? task 'consumer' running consume() was cancelled while suspended "
            "here and returned normally, without uncancel(): the cancellation was swallowed",
            "  at test_mod.py:8 in consume",
            "  task created at test_mod.py:18",
            f"  fix: {FIX}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_return_in_except_cancelled_error*",
            "?swallowed-cancel? task '*' running fetch() was cancelled while suspended here and "
            "returned normally, *",
            "  at test_mod.py:28 in fetch",
            "  task created at test_mod.py:34",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_cancel_turned_into_another_error*",
            "?swallowed-cancel? task '*' running shutdown() was cancelled while suspended here "
            "and raised RuntimeError: stopped instead, *",
            "  at test_mod.py:42 in shutdown",
            "  task created at test_mod.py:48",
        ]
    )


LOOKALIKES = """\
import asyncio
import contextlib

import anyio
import pytest


async def slow():
    await asyncio.sleep(10)


async def cleanup_then_reraise():
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        await asyncio.sleep(0)
        raise


async def test_cleanup_and_reraise():
    task = asyncio.create_task(cleanup_then_reraise())
    await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def timeouts():
    try:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(10)
    except TimeoutError:
        pass
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(slow(), 0.01)
    return "ok"


async def test_timeout_and_wait_for():
    assert await asyncio.create_task(timeouts()) == "ok"


async def boom():
    await asyncio.sleep(0)
    raise ValueError("child failed")


async def task_groups():
    for pause in (0, 0.01):
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(slow())
                group.create_task(boom())
                await asyncio.sleep(pause)
        except* ValueError:
            pass
    return "handled"


async def test_task_group_with_a_failing_child():
    assert await asyncio.create_task(task_groups()) == "handled"


async def test_shield():
    inner = asyncio.create_task(asyncio.sleep(0.01, "r"))

    async def guarded():
        return await asyncio.shield(inner)

    outer = asyncio.create_task(guarded())
    await asyncio.sleep(0)
    outer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await outer
    assert await inner == "r"


async def canceller():
    child = asyncio.create_task(slow())
    await asyncio.sleep(0)
    child.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await child
    return "stopped"


async def test_canceller_suppresses_its_child():
    assert await asyncio.create_task(canceller()) == "stopped"


async def anyio_scopes():
    with anyio.move_on_after(0.01):
        await anyio.sleep(10)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await anyio.sleep(10)
    async with anyio.create_task_group() as group:
        group.start_soon(anyio.sleep, 10)
        await anyio.sleep(0)
        group.cancel_scope.cancel()
    return "done"


async def test_anyio_cancel_scopes_and_task_groups():
    assert await asyncio.create_task(anyio_scopes()) == "done"
"""


@needs_cancelling
@pytest.mark.parametrize("runner", RUNNERS)
def test_structures_that_uncancel_and_reraised_cancellations_pass(
    pytester: pytest.Pytester, runner: str
) -> None:
    result = run_with(pytester, runner, LOOKALIKES)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["asynccheck: no findings in 6 checked tests"])


@needs_cancelling
def test_warn_level_allow_marker_and_off(pytester: pytest.Pytester) -> None:
    source = SWALLOWS.replace(
        "async def test_return_in_except_cancelled_error",
        "@pytest.mark.asynccheck(allow=['swallowed-cancel'])\n"
        "async def test_return_in_except_cancelled_error",
    )
    result = run_with(pytester, "standalone", source, "--asynccheck-swallowed-cancel=warn")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*SwallowedCancelWarning: ?swallowed-cancel? task 'consumer'*"])
    assert "fetch()" not in result.stdout.str()
    result = pytester.runpytest(*ARGS, "--asynccheck-swallowed-cancel=off")
    result.assert_outcomes(passed=3)


@needs_cancelling
def test_swallowed_cancellations_are_found_with_the_task_checks_off(
    pytester: pytest.Pytester,
) -> None:
    off = ("--asynccheck-leaked-task=off", "--asynccheck-never-retrieved=off")
    result = run_with(pytester, "standalone", SWALLOWS, *off)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        ["?swallowed-cancel? task 'consumer' running consume() *", "  at test_mod.py:8 in consume"]
    )
    pytester.makepyfile(test_mod=LOOKALIKES)
    pytester.runpytest(*ARGS, *off).assert_outcomes(passed=6)


def test_the_kind_is_inert_without_task_cancelling(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(enabled=True)
    monkeypatch.setattr(cancellation, "SUPPORTED", False)
    assert cancellation.cancel_detector(settings) is None
    monkeypatch.setattr(cancellation, "SUPPORTED", True)
    assert cancellation.cancel_detector(settings) is not None
    off = Settings(enabled=True, severities={kind: Severity.OFF for kind in Kind})
    assert cancellation.cancel_detector(off) is None
    task_checks_off = {kind: Severity.ERROR for kind in Kind}
    task_checks_off[Kind.LEAKED_TASK] = task_checks_off[Kind.NEVER_RETRIEVED] = Severity.OFF
    own = cancellation.cancel_detector(Settings(enabled=True, severities=task_checks_off))
    assert isinstance(own, cancellation.OwnFactoryCancelDetector)


SELF_CANCEL = """\
import asyncio

import pytest


async def stubborn():
    asyncio.current_task().cancel()
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:
        return "kept going"


@pytest.fixture
async def resource():
    yield "r"


async def test_task_cancels_itself_and_swallows_it(resource):
    assert await asyncio.create_task(stubborn()) == "kept going"


async def test_own_task_factory_is_left_alone():
    loop = asyncio.get_running_loop()
    loop.set_task_factory(lambda loop, coro, **kw: asyncio.Task(coro, loop=loop, **kw))
    try:
        assert await asyncio.create_task(stubborn()) == "kept going"
    finally:
        loop.set_task_factory(None)
"""


@needs_cancelling
@pytest.mark.parametrize("task_checks", ["on", "off"])
def test_a_task_that_cancels_itself_and_a_test_with_its_own_factory(
    pytester: pytest.Pytester, task_checks: str
) -> None:
    off = ("--asynccheck-leaked-task=off", "--asynccheck-never-retrieved=off")
    pytester.makepyfile(test_mod=SELF_CANCEL)
    result = pytester.runpytest(*ARGS, "-p", "no:randomly", *(off if task_checks == "off" else ()))
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "?swallowed-cancel? task '*' running stubborn() was cancelled while suspended here *",
            "  at test_mod.py:7 in stubborn",
        ]
    )
