"""The await tree of waits the hang tests do not make: ``async for``, ``asyncio.wait``, task
groups, plain futures, conditions, semaphores held through an attribute, a lock taken with a bare
``acquire()``, and code without source."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pytest_asynccheck import _frames as frames
from pytest_asynccheck.detectors.budget import awaittree, waits


def _tree_of(scenario: Callable[[], Any], settle: float = 0.1) -> list[str]:
    """Run ``scenario`` as the root task and return its tree once everything waits."""
    lines: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # Futures the cancellation leaves unretrieved are the scenario's, not a finding here.
        loop.set_exception_handler(lambda loop, context: None)
        root = asyncio.current_task()
        assert root is not None
        root.set_name("root")

        def capture() -> None:
            lines.extend(awaittree.capture(asyncio.all_tasks(loop), root, rootdir=""))
            root.cancel()

        loop.call_later(settle, capture)
        with contextlib.suppress(asyncio.CancelledError):
            await scenario()
        for task in asyncio.all_tasks(loop) - {root}:
            task.cancel()

    asyncio.run(main())
    return lines


async def _ticks() -> AsyncIterator[int]:
    yield 1
    await asyncio.Event().wait()
    yield 2  # pragma: no cover - never reached


class Account:
    def __init__(self) -> None:
        self.lock = asyncio.Semaphore(1)


def _line_of(lines: list[str], text: str) -> str:
    return next(line for line in lines if text in line)


def test_async_for_wait_future_condition_and_attribute_semaphore() -> None:
    async def consume() -> None:
        async for _ in _ticks():
            pass

    account = Account()

    async def holder() -> None:
        async with account.lock:
            await asyncio.Event().wait()

    async def blocked() -> None:
        async with account.lock:
            pass  # pragma: no cover - never reached

    async def on_condition(condition: asyncio.Condition) -> None:
        async with condition:
            await condition.wait()

    async def on_future(future: asyncio.Future[None]) -> None:
        await future

    async def scenario() -> None:
        condition = asyncio.Condition()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        tasks = [
            asyncio.create_task(consume(), name="consumer"),
            asyncio.create_task(holder(), name="holder"),
            asyncio.create_task(on_condition(condition), name="on-condition"),
            asyncio.create_task(on_future(future), name="on-future"),
        ]
        await asyncio.sleep(0.01)
        tasks.append(asyncio.create_task(blocked(), name="blocked"))
        await asyncio.wait(tasks)

    lines = _tree_of(scenario)
    assert lines[0] == (
        "task 'root' (the test) waits on asyncio.wait('blocked', 'consumer', 'holder', "
        "'on-condition', 'on-future')"
    )
    assert "  task 'consumer' waits on Event.wait() on Event at 0x" in _line_of(
        lines, "task 'consumer'"
    )
    assert any("in _ticks: await asyncio.Event().wait()" in line for line in lines)
    assert "waits on Semaphore.acquire() on Semaphore at 0x" in _line_of(lines, "task 'blocked'")
    assert _line_of(lines, "task 'blocked'").endswith("held by task 'holder'")
    assert "waits on Condition.wait() on condition" in _line_of(lines, "task 'on-condition'")
    assert _line_of(lines, "task 'on-future'").endswith(
        "waits on a future nobody has completed yet"
    )


def test_bare_acquire_has_no_known_holder_and_a_library_wait_is_named() -> None:
    lock = asyncio.Lock()

    async def takes() -> None:
        await lock.acquire()
        await asyncio.Event().wait()

    async def waits() -> None:
        await lock.acquire()

    async def scenario() -> None:
        taker = asyncio.create_task(takes(), name="takes")
        await asyncio.sleep(0.01)
        await asyncio.gather(taker, asyncio.create_task(waits(), name="waits"))

    lines = _tree_of(scenario)
    assert _line_of(lines, "task 'waits' waits").endswith(
        "waits on Lock.acquire() on lock, held by a task not inside `async with` on it"
    )


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in 3.11")
def test_task_group_children_are_below_their_parent() -> None:
    async def scenario() -> None:
        async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined,unused-ignore]
            group.create_task(asyncio.sleep(3600), name="sleeper")

    lines = _tree_of(scenario)
    assert lines[0] == "task 'root' (the test) waits on its task group: 'sleeper'"
    assert lines[-1].startswith("  task 'sleeper' waits on sleep(3600)")


def test_code_without_source_is_shown_without_its_line() -> None:
    namespace: dict[str, Any] = {}
    exec(  # a function whose file cannot be read
        "import asyncio\nasync def hidden(lock):\n    async with lock:\n"
        "        await asyncio.Event().wait()\n",
        namespace,
    )
    lock = asyncio.Lock()

    async def scenario() -> None:
        hidden = asyncio.create_task(namespace["hidden"](lock), name="hidden")
        await asyncio.sleep(0.01)
        assert not hidden.done()
        async with lock:
            pass  # pragma: no cover - never reached

    lines = _tree_of(scenario)
    assert lines[0].endswith("held by a task not inside `async with` on it")


def test_traceback_steps_and_paths_outside_the_rootdir() -> None:
    def fails() -> None:
        raise ValueError

    try:
        fails()
    except ValueError as exc:
        steps = waits.traceback_steps(exc.__traceback__)
    assert [frame.f_code.co_name for frame, _ in steps] == [
        "test_traceback_steps_and_paths_outside_the_rootdir",
        "fails",
    ]
    # The tree names files as findings do: outside the rootdir, as the interpreter does.
    assert frames.relpath(__file__, "/nonexistent") == __file__


GLOBAL_LOCK: asyncio.Lock | None = None


def test_socket_reads_wait_for_globals_and_expressions() -> None:
    global GLOBAL_LOCK
    GLOBAL_LOCK = asyncio.Lock()
    left, right = socket.socketpair()
    left.setblocking(False)

    async def raw_read() -> None:
        await asyncio.get_running_loop().sock_recv(left, 1)

    async def unattached_read() -> None:
        await asyncio.StreamReader().read(1)

    async def holds_global() -> None:
        assert GLOBAL_LOCK is not None
        async with GLOBAL_LOCK:
            await asyncio.Event().wait()

    async def waits_global() -> None:
        assert GLOBAL_LOCK is not None
        async with contextlib.nullcontext(), GLOBAL_LOCK:
            pass  # pragma: no cover - never reached

    async def scenario() -> None:
        others = [
            asyncio.create_task(raw_read(), name="raw"),
            asyncio.create_task(unattached_read(), name="unattached"),
            asyncio.create_task(holds_global(), name="holder"),
            asyncio.create_task(asyncio.sleep(0), name="done-soon"),
        ]
        await asyncio.sleep(0.01)
        assert others[-1].done()
        await asyncio.wait_for(
            asyncio.gather(asyncio.create_task(waits_global(), name="waiter")), 10
        )

    try:
        lines = _tree_of(scenario)
    finally:
        left.close()
        right.close()
    assert lines[0] == "task 'root' (the test) waits on gather('waiter')"
    assert _line_of(lines, "task 'waiter'").endswith(
        "waits on Lock.acquire() on GLOBAL_LOCK, held by task 'holder'"
    )
    # The class defining it on 3.11+, the loop's own class before (no ``co_qualname``).
    assert fnmatch.fnmatch(
        _line_of(lines, "task 'raw'"), "*waits on *SelectorEventLoop.sock_recv()"
    )
    assert _line_of(lines, "task 'unattached'").endswith(
        "waits on a socket read, StreamReader.read()"
    )
    assert not any("done-soon" in line for line in lines)


def test_a_root_that_ended_is_shown_by_its_traceback() -> None:
    async def main() -> list[str]:
        async def fails() -> None:
            raise ValueError

        task = asyncio.create_task(fails(), name="ended")
        try:
            await task
        except ValueError as exc:
            steps = waits.traceback_steps(exc.__traceback__)
        return awaittree.capture([], task, "", steps)

    lines = asyncio.run(main())
    assert lines[0] == "task 'ended' (the test) was stopped at"
    assert lines[-1].endswith("in fails: raise ValueError")
