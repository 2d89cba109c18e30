"""Where a budgeted test's time went: the loop's idle waits, measured by timing the selector of
the test's loop, and which tasks were alive and waiting, sampled at each wait. Only tests with a
``max_wall`` budget are recorded, on loops with a selector (the standard library's): on others
(uvloop) ``measures`` is false, and neither the idle time nor a timeline may be shown. When
an output asks for it (``--asynccheck-trace``, ``--asynccheck-suggest-budgets``), the async
tests it covers.

``snapshot()`` gives the recording as builtins for the outputs (the HTML timeline, the trace
file), which travel on test reports. A task is known only at the loop's waits: between two
waits it is "running or ready" (its own steps, other tasks' steps, or a blocked loop), not
split into its steps. Blocked calls and stalls are placed from their findings: a finding seen
at a wait is drawn at the end of the latest stretch of running before it long enough to hold
it, so its place is exact to the loop turn, not to the microsecond.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ... import _clock
from ... import _frames as frames

if TYPE_CHECKING:
    from ..._findings import Finding

#: Waits shorter than this are not sampled: they are the loop polling between callbacks.
SAMPLE_MIN_WAIT = 0.001
WIDTH = 60
#: At most this many loop waits and task lanes are kept for the outputs: a long test with
#: thousands of waits still draws, coarser at its end.
MAX_WAITS = 5000
MAX_LANES = 50
#: The ``call`` of a watchdog stall finding (``monitor.STALL_CALL``).
STALL_CALL = "stall"


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

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rootpath: str,
        findings: list[Finding] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``findings``: the test's findings, watched for blocked calls and stalls to place.
        ``clock``: the time source, ``loop.time`` under the virtual clock (put on the loop
        first: the recorder then wraps its select)."""
        self.loop = loop
        self.rootpath = rootpath
        self.task = asyncio.current_task()
        self.now: Callable[[], float] = clock or _clock.perf_counter
        self.virtual = clock is not None
        self.start = self.now()
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
        #: Every wait of the loop (not only the test task's), for the outputs.
        self.waits: list[tuple[float, float]] = []
        #: Blocked calls and stalls: (start, end, "blocked" or "stall", call, location).
        self.blocked: list[tuple[float, float, str, str, str]] = []
        self._findings = findings
        self._seen: dict[tuple[str, str, int, str, str], tuple[int, float]] = {}
        self._stacked = False
        if self._selector is not None:
            on_instance = _clock.set_on_instance(self._selector, "select")
            if not on_instance or self.virtual:
                self._stacked = on_instance
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
        self.end = self.now()
        self._place_blocked(self.end)
        if self._original is not None:
            if self._stacked:
                self._selector.select = self._original
            else:
                del self._selector.select
            self._original = None

    def _select(self, timeout: float | None = None) -> Any:
        assert self._original is not None
        began = self.now()
        if self._findings:
            self._place_blocked(began)
        try:
            return self._original(timeout)
        finally:
            ended = self.now()
            waited = ended - began
            self.idle += waited
            if waited >= SAMPLE_MIN_WAIT:
                if len(self.waits) < MAX_WAITS:
                    self.waits.append((began, ended))
                self._sample(began, ended)

    def _place_blocked(self, now: float) -> None:
        """Blocked calls and stalls the test's findings gained since the last look."""
        if not self._findings:
            return
        for finding in self._findings:
            if finding.kind != "blocking":
                continue
            key = finding.key
            count, total = self._seen.get(key, (0, 0.0))
            if finding.count == count:
                continue
            self._seen[key] = (finding.count, finding.total_duration)
            length = max(finding.total_duration - total, 0.0) / (finding.count - count)
            for _ in range(finding.count - count):
                start, end = self._running_stretch(now, length)
                what = "stall" if finding.call == STALL_CALL else "blocked"
                self.blocked.append((start, end, what, finding.call, finding.location))

    def _running_stretch(self, before: float, length: float) -> tuple[float, float]:
        """Where a blocked span of ``length`` seconds noticed at ``before`` ran: the end of
        the latest stretch between two loop waits that holds it and no other span."""
        taken = [(s, e) for s, e, *_ in self.blocked]
        edges = [(self.start, self.start), *self.waits]
        for (_, gap_start), (gap_end, _) in zip(
            reversed(edges), reversed([*self.waits, (before, before)]), strict=True
        ):
            if gap_end > before:
                continue
            free_end = min([gap_end, *(s for s, e in taken if gap_start <= s < gap_end)])
            if free_end - gap_start >= 0.9 * length:
                return max(gap_start, free_end - length), free_end
        return max(self.start, before - length), before

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

    def snapshot(self, sequential: list[Segment] | None = None) -> dict[str, Any]:
        """The recording as builtins, in seconds from the start of the test body: one lane per
        task (the test's own first) with its ``running``/``waiting`` spans, the blocked spans,
        and the sequential awaits found (``sequential_awaits``)."""
        start = self.start
        wall = max(self.end - start, 0.0)
        rows = sorted(self.rows.values(), key=lambda r: (r.first, r.name))[: MAX_LANES - 1]
        lanes = [{"name": "test", "spans": _spans(0.0, wall, self.waits, start)}]
        lanes += [
            {"name": r.name, "spans": _spans(r.first - start, r.last - start, r.waits, start)}
            for r in rows
        ]
        return {
            "clock": "virtual" if self.virtual else "wall",
            "wall": round(wall, 6),
            "lanes": lanes,
            "more_lanes": max(len(self.rows) - len(rows), 0),
            "blocked": [
                {
                    "start": round(s - start, 6),
                    "end": round(e - start, 6),
                    "what": what,
                    "call": call,
                    "where": where,
                }
                for s, e, what, call, where in self.blocked
            ],
            "sequential": [
                {"where": s.where, "start": round(s.start - start, 6), "idle": round(s.idle, 6)}
                for s in sequential or ()
            ],
        }

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


def _spans(
    first: float, last: float, waits: list[tuple[float, float]], origin: float
) -> list[list[Any]]:
    """``[start, end, "running" | "waiting"]`` covering ``first``..``last`` (relative)."""
    spans: list[list[Any]] = []
    at = first
    for began, ended in waits:
        began, ended = max(began - origin, first), min(ended - origin, last)
        if ended <= began:
            continue
        if began > at:
            spans.append([round(at, 6), round(began, 6), "running"])
        spans.append([round(began, 6), round(ended, 6), "waiting"])
        at = ended
    if last > at:
        spans.append([round(at, 6), round(last, 6), "running"])
    return spans
