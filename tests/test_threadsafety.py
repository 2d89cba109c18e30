"""Loop methods that are not thread-safe, called from another thread while the loop runs, fail
the test at the line in that thread (``thread-unsafe``); the thread-safe ways pass."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_asynccheck.detectors.threadsafety import (
    CALL_SOON_FIX,
    COMPLETE_FIX,
    CREATE_TASK_FIX,
    FD_FIX,
    ThreadSafetyDetector,
)
from tests.helpers import ANYIO, ARGS, ASYNCIO, write_for_runner

RUNNERS = [
    pytest.param((), id="standalone"),
    pytest.param(ASYNCIO, id="pytest-asyncio-auto"),
    pytest.param(ANYIO, id="anyio-asyncio"),
]


UNSAFE = """\
import asyncio
import socket
import threading
import pytest


async def in_thread(target, name):
    thread = threading.Thread(target=target, name=name)
    thread.start()
    await asyncio.to_thread(thread.join)


async def test_worker_calls_call_soon():
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def worker():
        loop.call_soon(done.set)

    await in_thread(worker, "poller")
    await asyncio.wait_for(done.wait(), 5)


async def test_worker_sets_a_future_result():
    loop = asyncio.get_running_loop()
    result = loop.create_future()

    def compute():
        result.set_result(sum(range(10)))

    thread = threading.Thread(target=compute, name="compute")
    loop.call_later(0.01, thread.start)  # once the test awaits the result
    assert await asyncio.wait_for(result, 5) == 45
    await asyncio.to_thread(thread.join)


async def refresh():
    await asyncio.sleep(0)


async def test_thread_calls_create_task():
    loop = asyncio.get_running_loop()
    tasks = []
    await in_thread(lambda: tasks.append(loop.create_task(refresh())), "scheduler")
    await asyncio.gather(*tasks)


async def test_thread_calls_call_later_and_add_reader():
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    fired = asyncio.Event()

    def worker():
        loop.call_later(0.001, fired.set)
        loop.add_reader(a.fileno(), lambda: None)
        loop.remove_writer(b.fileno())

    await in_thread(worker, "io")
    await asyncio.wait_for(fired.wait(), 5)
    loop.remove_reader(a.fileno())
    a.close()
    b.close()
"""


@pytest.mark.parametrize("runner", RUNNERS)
def test_thread_unsafe_calls_are_reported_in_the_thread_that_made_them(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    write_for_runner(pytester, runner, UNSAFE)
    result = pytester.runpytest(*ARGS, *runner, "-p", "no:randomly")
    result.assert_outcomes(failed=4)
    shift = 1 if runner == ANYIO else 0

    def line(n: int) -> int:
        return n + shift * sum(1 for start in (13, 24, 41, 48) if start < n)

    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_worker_calls_call_soon (call):",
            "?thread-unsafe? loop.call_soon() was called from thread 'poller', not the event "
            "loop's thread, while the loop ran; it is not thread-safe",
            f"  at test_mod.py:{line(18)} in worker",
            f"  fix: {CALL_SOON_FIX}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_worker_sets_a_future_result (call):",
            "?thread-unsafe? future.set_result() was called from thread 'compute', not the event "
            "loop's thread: the future scheduled its callback * with loop.call_soon, which is "
            "not thread-safe",
            f"  at test_mod.py:{line(29)} in compute",
            f"  fix: {COMPLETE_FIX}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_thread_calls_create_task (call):",
            "?thread-unsafe? loop.create_task() was called from thread 'scheduler', *",
            f"  at test_mod.py:{line(44)} in <lambda>",
            f"  fix: {CREATE_TASK_FIX}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 3 problems in test_mod.py::test_thread_calls_call_later_and_add_"
            "reader (call):",
            "?thread-unsafe? loop.call_later() was called from thread 'io', *",
            f"  at test_mod.py:{line(54)} in worker",
            f"  fix: {CALL_SOON_FIX}",
            "?thread-unsafe? loop.add_reader() was called from thread 'io', *",
            f"  at test_mod.py:{line(55)} in worker",
            f"  fix: {FD_FIX}",
            "?thread-unsafe? loop.remove_writer() was called from thread 'io', *",
            f"  at test_mod.py:{line(56)} in worker",
            f"  fix: {FD_FIX}",
        ]
    )


SAFE = """\
import asyncio
import threading
import pytest


async def test_call_soon_threadsafe_from_a_thread():
    loop = asyncio.get_running_loop()
    result = loop.create_future()

    def worker():
        loop.call_soon_threadsafe(result.set_result, 42)

    threading.Thread(target=worker).start()
    assert await asyncio.wait_for(result, 5) == 42


async def double(n):
    await asyncio.sleep(0)
    return 2 * n


async def test_run_coroutine_threadsafe_from_a_thread():
    loop = asyncio.get_running_loop()
    answers = []

    def worker():
        answers.append(asyncio.run_coroutine_threadsafe(double(21), loop).result(5))

    await asyncio.to_thread(worker)
    assert answers == [42]


async def test_to_thread_and_run_in_executor():
    loop = asyncio.get_running_loop()
    assert await asyncio.to_thread(sum, range(10)) == 45
    assert await loop.run_in_executor(None, max, 3, 7) == 7


async def test_a_future_completed_on_the_loop_thread():
    loop = asyncio.get_running_loop()
    result = loop.create_future()
    loop.call_later(0.001, result.set_result, 1)
    assert await result == 1
"""


@pytest.mark.parametrize("runner", RUNNERS)
def test_thread_safe_hand_overs_pass(pytester: pytest.Pytester, runner: tuple[str, ...]) -> None:
    write_for_runner(pytester, runner, SAFE)
    result = pytester.runpytest(*ARGS, *runner, "-p", "no:randomly")
    result.assert_outcomes(passed=4)


def test_anyio_worker_threads_pass(pytester: pytest.Pytester) -> None:
    write_for_runner(
        pytester,
        ANYIO,
        """\
import anyio
import anyio.from_thread
import anyio.to_thread
import pytest


async def double(n):
    return 2 * n


async def test_anyio_threads():
    def worker():
        return anyio.from_thread.run(double, 21)

    assert await anyio.to_thread.run_sync(worker) == 42
""",
    )
    result = pytester.runpytest(*ARGS, *ANYIO, "-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_warn_level_and_allow_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""\
import asyncio
import threading
import pytest


async def hand_over():
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    threading.Thread(target=lambda: loop.call_soon(done.set), name="w").start()
    await asyncio.wait_for(done.wait(), 5)


async def test_warned():
    await hand_over()


@pytest.mark.asynccheck(allow=["thread-unsafe"])
async def test_allowed():
    await hand_over()
"""
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-thread-unsafe=warn", "-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        ["*ThreadUnsafeCallWarning: ?thread-unsafe? loop.call_soon() was called from thread 'w'*"]
    )


def test_the_loop_classes_get_their_own_methods_back_when_the_session_ends() -> None:
    detector = ThreadSafetyDetector()
    added: list[Any] = []
    check: Any = SimpleNamespace(data={}, add=lambda finding, phase: added.append(finding))
    original = asyncio.BaseEventLoop.__dict__["call_soon"]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        detector.task_entered(check, loop, "test")
        assert asyncio.BaseEventLoop.__dict__["call_soon"] is not original
        ran: list[int] = []
        thread = threading.Thread(target=lambda: loop.call_soon(ran.append, 1))
        thread.start()
        await asyncio.to_thread(thread.join)
        await asyncio.sleep(0)
        detector.task_exited(check, loop, "test")
        detector.test_finished(check)
        assert ran == [1]

    asyncio.run(main())
    assert asyncio.BaseEventLoop.__dict__["call_soon"] is not original  # kept for the session
    detector.session_finished(check)
    assert asyncio.BaseEventLoop.__dict__["call_soon"] is original
    assert [finding.call for finding in added] == ["loop.call_soon()"]
    assert "call_soon" not in vars(asyncio.SelectorEventLoop)


def test_a_loop_own_call_soon_on_the_instance_is_left_alone() -> None:
    class OtherLoop:  # not a BaseEventLoop: checked on the instance
        def call_soon(self, *args: Any, **kwargs: Any) -> None:
            pass

        def call_at(self, *args: Any, **kwargs: Any) -> None:
            pass

        def call_later(self, *args: Any, **kwargs: Any) -> None:
            pass

    def own(*args: Any, **kwargs: Any) -> None:
        pass

    loop = OtherLoop()
    loop.call_soon = own  # type: ignore[method-assign]
    check: Any = SimpleNamespace(data={})
    detector = ThreadSafetyDetector()
    detector.task_entered(check, loop, "test")  # type: ignore[arg-type]
    assert loop.call_soon is own
    assert "call_at" in vars(loop)
    detector.test_finished(check)
    assert loop.call_soon is own
    assert "call_at" not in vars(loop)


UVLOOP = """\
import asyncio
import threading
import pytest


@pytest.fixture
def anyio_backend():
    return ("asyncio", {"use_uvloop": True})


@pytest.mark.anyio
async def test_on_uvloop():
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    thread = threading.Thread(target=lambda: loop.call_soon(done.set), name="w")
    thread.start()
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.to_thread(thread.join)


@pytest.mark.anyio
async def test_threadsafe_on_uvloop():
    loop = asyncio.get_running_loop()
    result = loop.create_future()
    threading.Thread(target=lambda: loop.call_soon_threadsafe(result.set_result, 1)).start()
    assert await asyncio.wait_for(result, 5) == 1
"""


def test_uvloop_is_checked_on_the_loop_instance(pytester: pytest.Pytester) -> None:
    pytest.importorskip("uvloop")
    pytester.makepyfile(test_mod=UVLOOP)
    result = pytester.runpytest(*ARGS, *ANYIO, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "?thread-unsafe? loop.call_soon() was called from thread 'w', *",
            "  at test_mod.py:16 in <lambda>",
        ]
    )


THROUGH_ASYNCIO = """\
import asyncio
import threading


async def refresh():
    await asyncio.sleep(0)


async def test_event_set_and_ensure_future_from_a_thread():
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    tasks = []

    def worker():
        ready.set()
        tasks.append(asyncio.ensure_future(refresh(), loop=loop))

    thread = threading.Thread(target=worker, name="w")
    loop.call_later(0.05, thread.start)  # once the waiter waits: else set() wakes nobody
    await asyncio.wait_for(ready.wait(), 5)
    await asyncio.to_thread(thread.join)
    await asyncio.gather(*tasks)
"""


def test_calls_through_asyncio_name_what_the_thread_called(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=THROUGH_ASYNCIO)
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "?thread-unsafe? asyncio.Event.set() was called from thread 'w', not the event "
            "loop's thread, while the loop ran; it is not thread-safe",
            "  at test_mod.py:15 in worker",
            "  fix: from another thread, hand the call to the loop: "
            "loop.call_soon_threadsafe(event.set, ...)",
            "?thread-unsafe? asyncio.ensure_future() was called from thread 'w', *",
            "  at test_mod.py:16 in worker",
            f"  fix: {CREATE_TASK_FIX}",
        ]
    )
