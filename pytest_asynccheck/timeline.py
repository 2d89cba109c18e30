"""Where a budgeted test's time went: the loop's idle waits, measured by timing the selector of
the test's loop, and which tasks were alive and waiting, sampled at each wait. Only tests with a
``max_wall`` budget are recorded, on loops with a selector (the standard library's): on others
(uvloop) ``measures`` is false, and neither the idle time nor a timeline may be shown."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _clock, frames

#: Waits shorter than this are not sampled: they are the loop polling between callbacks.
SAMPLE_MIN_WAIT = 0.001
WIDTH = 60


@dataclass
class Segment:
    """One stretch during which the test's own task awaited the same user coroutine."""

    awaiting: object  # the user coroutine awaited; held, so its id cannot be reused
    where: str
    start: float
    idle: float = 0.0
    end: float = 0.0


@dataclass
class TaskRow:
    name: str
    first: float
    last: float
    waits: list[tuple[float, float]] = field(default_factory=list)


class Recorder:
    """Times the loop's selector while a test runs and samples its tasks at each wait."""

    def __init__(self, loop: asyncio.AbstractEventLoop, rootpath: str) -> None:
        self.loop = loop
        self.rootpath = rootpath
        self.task = asyncio.current_task()
        self.start = _clock.perf_counter()
        self.end = self.start
        self.idle = 0.0
        self.segments: list[Segment] = []
        #: Keyed by the task itself: its id could be reused once it is collected.
        self.rows: dict[asyncio.Task[Any], TaskRow] = {}
        self.other_tasks_seen = False
        self._before = set(asyncio.all_tasks(loop))
        self._selector: Any = getattr(loop, "_selector", None)
        self._original: Callable[..., Any] | None = None
        self._stopped = False
        if self._selector is not None and not _clock.set_on_instance(self._selector, "select"):
            self._original = self._selector.select
            self._selector.select = self._select
        #: Whether the loop's waits are timed: without that, idle time is unknown, not zero.
        self.measures = self._original is not None

    @property
    def active(self) -> bool:
        return self._original is not None

    def stop(self) -> None:
        """Stop recording; the first call marks the end of the test body, later ones nothing."""
        if self._stopped:
            return
        self._stopped = True
        self.end = _clock.perf_counter()
        if self._original is not None:
            del self._selector.select
            self._original = None

    def _select(self, timeout: float | None = None) -> Any:
        assert self._original is not None
        began = _clock.perf_counter()
        try:
            return self._original(timeout)
        finally:
            ended = _clock.perf_counter()
            waited = ended - began
            self.idle += waited
            if waited >= SAMPLE_MIN_WAIT:
                self._sample(began, ended)

    def _sample(self, began: float, ended: float) -> None:
        for task in asyncio.all_tasks(self.loop):
            if task in self._before:
                continue
            if task is not self.task:
                self.other_tasks_seen = True
            row = self.rows.get(task)
            if row is None:
                row = self.rows[task] = TaskRow(task.get_name(), began, ended)
            row.last = ended
            row.waits.append((began, ended))
        if self.task is None or self.task.done():
            return
        inner, caller = self._innermost_user_coroutines(self.task.get_coro())
        if inner is None:
            return
        frame = (caller or inner).cr_frame
        where = frames.describe(frame, self.rootpath) if frame is not None else "?"
        if caller is not None:
            where += f" awaited {inner.cr_code.co_name}()"
        if self.segments and self.segments[-1].awaiting is inner:
            segment = self.segments[-1]
        else:
            segment = Segment(inner, where, began)
            self.segments.append(segment)
        segment.idle += ended - began
        segment.end = ended

    @staticmethod
    def _innermost_user_coroutines(
        coro: Any,
    ) -> tuple[
        types.CoroutineType[Any, Any, Any] | None, types.CoroutineType[Any, Any, Any] | None
    ]:
        """The innermost user coroutine the task is awaiting, and the user coroutine awaiting
        it (the line that wrote the ``await``)."""
        found: list[types.CoroutineType[Any, Any, Any]] = []
        while isinstance(coro, types.CoroutineType):
            if frames.is_user_file(coro.cr_code.co_filename):
                found.append(coro)
            coro = coro.cr_await
        if not found:
            return None, None
        return found[-1], (found[-2] if len(found) > 1 else None)

    # -- the explanation ------------------------------------------------------------------

    def sequential_awaits(self, budget: float) -> list[Segment]:
        """Long awaits of the test's own task that ran one after another, with nothing else
        waiting beside them: the pattern ``asyncio.gather`` would have run concurrently."""
        if self.other_tasks_seen:
            return []
        wall = max(self.end - self.start, 1e-9)
        long = [s for s in self.segments if s.idle >= max(0.1 * budget, 0.05 * wall)]
        if len(long) < 2 or sum(s.idle for s in long) < 0.5 * wall:
            return []
        return long

    def render(self) -> list[str]:
        """One row per task, time across: ``.`` waiting on timers or I/O, ``=`` alive while
        the loop was running (the task's own steps, other tasks' steps, or a blocked loop)."""
        wall = self.end - self.start
        if wall <= 0:
            return []
        step = wall / WIDTH
        test_waits = [(s.start, s.end) for s in self.segments]
        rows = [("test", self.start, self.end, test_waits)]
        others = sorted(self.rows.values(), key=lambda r: (r.first, r.name))
        rows += [(r.name, r.first, r.last, r.waits) for r in others]
        label = min(max(len(row[0]) for row in rows), 100 - WIDTH - 4)
        scale = f"{wall:.2f}s"
        lines = [f"{'':{label}}  0s{scale:>{WIDTH - 2}}"]
        for name, first, last, waits in rows[:12]:
            cells = []
            for i in range(WIDTH):
                t = self.start + (i + 0.5) * step
                if not first - step <= t <= last + step:
                    cells.append(" ")
                elif any(began <= t <= ended for began, ended in waits):
                    cells.append(".")
                else:
                    cells.append("=")
            lines.append(f"{name[:label]:{label}} |{''.join(cells)}|")
        if len(rows) > 12:
            lines.append(f"{'':{label}}  ... and {len(rows) - 12} more tasks")
        lines.append(f"{'':{label}}  = running or ready   . waiting on timers or I/O")
        return lines
