"""Virtual loop time for budgets: while every task of the test's loop waits on a timer, the loop
jumps to the next timer instead of sleeping, so ``asyncio.sleep``, ``wait_for`` timeouts and
``call_later`` cost no real time and a budget is checked against exact virtual seconds.

The clock is put on one running loop instance (its ``time`` and its selector's ``select``), never
by swapping the loop's class, and taken off when the test body ends. Real work keeps real time:
while a file descriptor other than the loop's own wake-up pipe is registered (a socket, a
subprocess pipe) or executor work started with ``run_in_executor`` / ``asyncio.to_thread`` is in
flight, the loop waits for real and virtual time advances with it; a blocking call counts at its
real length. A loop without a selector (uvloop, trio) cannot be controlled: the budget then falls
back to wall time and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from ... import _clock

CANNOT_CONTROL = (
    "virtual time needs an event loop with a selector (the standard library's); "
    "this {loop} cannot be controlled, so the budget was checked in wall time"
)


class VirtualClock:
    """Fast-forwards one loop while it is idle on timers; ``elapsed`` is virtual seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.skipped = 0.0
        self.in_flight = 0
        self._selector: Any = getattr(loop, "_selector", None)
        self._real_time: Callable[[], float] = loop.time
        self._start = self._real_time()
        self._select: Callable[..., Any] | None = None
        self._own_fds = {
            getattr(getattr(loop, "_ssock", None), "fileno", lambda: -1)(),
        }
        self.controlled = self._selector is not None and not _clock.set_on_instance(
            self._selector, "select"
        )
        if not self.controlled:
            return
        selector = self._selector
        assert selector is not None
        self._select = selector.select
        selector.select = self._virtual_select
        loop.time = self.time  # type: ignore[method-assign]
        self._run_in_executor = loop.run_in_executor
        loop.run_in_executor = self._tracked_run_in_executor  # type: ignore[method-assign, assignment]

    @property
    def elapsed(self) -> float:
        return self.time() - self._start

    def time(self) -> float:
        return self._real_time() + self.skipped

    def close(self) -> None:
        """Take the clock off the loop; virtual time keeps what it had."""
        if not self.controlled:
            return
        self.controlled = False
        end = self.time()
        del self._selector.select
        for name in ("time", "run_in_executor"):
            with contextlib.suppress(AttributeError):
                delattr(self.loop, name)
        self._real_time = lambda: end - self.skipped

    def _real_work_pending(self) -> bool:
        if self.in_flight:
            return True
        registered = self._selector.get_map() or {}
        return any(key.fd not in self._own_fds for key in registered.values())

    def _virtual_select(self, timeout: float | None = None) -> Any:
        assert self._select is not None
        if timeout is None or timeout <= 0 or self._real_work_pending():
            return self._select(timeout)
        # The jump goes to the next timer's deadline, not by ``timeout``: real time passes
        # between the loop's reading of the clock and this jump (more on a loaded machine, where
        # the thread may wait for the CPU), and the real clock has counted it already.
        scheduled = getattr(self.loop, "_scheduled", None)
        deadline = scheduled[0].when() if scheduled else self.time() + timeout
        ready = self._select(0)
        if not ready:
            self.skipped += max(0.0, deadline - self.time())
        return ready

    def _tracked_run_in_executor(self, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        future = self._run_in_executor(executor, func, *args)
        self.in_flight += 1

        def done(_: object) -> None:
            self.in_flight -= 1

        future.add_done_callback(done)
        return future
