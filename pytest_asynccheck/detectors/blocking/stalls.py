"""Stall attribution: what the watchdog knows of the loop it watches and of the stall pending
on it, where it blames a stall, and how long it says the stall lasted (``StallSampler``, the
watchdog's base: its thread decides when to look, this decides what a look finds).

A look reads the stuck loop thread at once, before anything lets go of the interpreter: its
frames, where each was, when its turn began, whether what holds it is ours to report (not a
catalogued call, an ``allow_blocking()`` block or the garbage collector). A sample is the
user's line and the way to it; a late one, taken just after one long operation in C let go
of the interpreter, names that operation's line (``stuck.stuck_line``), or the test's last
step. Further lines of one turn are kept with the stall, which is shared among them when it
ends; its findings are made on the loop thread once the test ends.

A stall is measured without the garbage collector's full collections and without the loop
thread's waits for a CPU (Linux only). Its length is exact only on the standard library's loop
on real time, from the turn times; elsewhere its start is the middle of the heartbeat interval
that saw it begin. On the standard library's loop the waits are read at instants that bound
the stuck turn (when it is seen stuck, and by the loop thread itself in the heartbeat that
ends it), and before it was seen only what is certain is counted (``_own_time``): on a loaded
machine a starved loop thread waits most of a long turn, and figures that also covered the
turns around it would hide a stall or make one. Time the loop thread spent waiting for the
interpreter while another thread held it (one waiting for a CPU itself) is still counted.
Frames are only read, never changed.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ... import _clock
from ... import _frames as frames
from ..._findings import Finding, Kind
from . import loopthread
from .chain import chain
from .stuck import (
    Sample,
    Stall,
    Step,
    Watch,
    _in_turn,
    _just_started,
    _monotonic,
    _returned_test,
    _turn_began,
    asyncio_clock,
    runqueue_wait,
    stuck_line,
)

if TYPE_CHECKING:
    from ..._session import CheckSession

STALL_CALL = "stall"
STALL_FIX = (
    "move CPU-bound or blocking work off the loop: await asyncio.to_thread(func, ...) or "
    "await loop.run_in_executor(None, func, ...)"
)
#: ``STALL_FIX`` as said to a test running under trio (pytest-trio, anyio's trio backend).
STALL_FIX_TRIO = (
    "move CPU-bound or blocking work off the loop: await trio.to_thread.run_sync(func, ...) or "
    "await anyio.to_thread.run_sync(func, ...) with anyio"
)


def _own_time(stall: Stall, began: float, waiting: tuple[float, int]) -> float:
    """Seconds of the stuck turn that began at ``began`` (monotonic) that the loop thread
    spent at least not waiting for a CPU, up to ``waiting`` (when, and its wait so far, read
    as the stall ended): a lower bound, as a stall is reported "for at least" its length.

    From when the turn was seen stuck (``Stall.seen_waiting``) to that reading, the time and
    the wait are read at the same two instants: exact. Before it, the wait is known only
    since the loop last answered, which may have been turns earlier (then the waits of those
    turns are taken out of this one's too) or inside this turn (then the turn's start up to
    that reading is not counted). On a loaded machine a starved loop thread waits most of a
    long turn: figures that also covered the turns around it, read late by a watchdog that
    waited for a CPU itself, would hide a stall of its own, or make one."""
    assert stall.seen_waiting is not None
    seen_at, waited_then = stall.seen_waiting
    ended_at, waited_at_end = waiting
    own = max(0.0, ended_at - seen_at - max(0, waited_at_end - waited_then) / 1e9)
    if stall.waited_for_cpu is None or stall.waited_at is None:
        # Not read since the test's step began (it was seen before its first heartbeat): its
        # waits before it was seen are not known, and are taken as none, as where the kernel
        # gives no figures.
        return own + max(0.0, seen_at - began)
    since = max(began, stall.waited_at)
    waited_before = max(0, waited_then - stall.waited_for_cpu) / 1e9
    return own + max(0.0, seen_at - since - waited_before)


@dataclass
class Look:
    """The loop thread as seen at one instant: its innermost frame, where each of its frames
    was (``f_lasti``, ``f_lineno`` by ``id``), when its turn of the loop began, and when
    (``perf_counter``)."""

    frame: types.FrameType | None
    where: dict[int, tuple[int, int]]
    turn_began: float | None
    at: float
    ours: bool = True


class StallSampler:
    """The watched loop and its pending stall, under one lock (the loop thread takes it to
    attach and detach, the watchdog to keep what it saw), and the looks at the loop thread:
    at once, when the loop has not answered for the threshold, or late, just after one long
    operation kept the watchdog from the interpreter."""

    def __init__(self, session: CheckSession, threshold: float) -> None:
        self.session = session
        self.threshold = threshold
        # The loop thread takes the lock itself (a C call) where waiting is not needed.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._watch: Watch | None = None
        #: The step being watched, as ``Watchdog.attach`` noted it (``_watch`` is made from it
        #: when it outlives an interval).
        self._step: Step | None = None
        #: When this thread last sampled the loop thread, and its own wait for a CPU then.
        self._observed: tuple[float, int | None] = (0.0, None)
        #: This thread's id for the kernel.
        self._native_id: int | None = None
        #: How late past an expected wake-up counts: the interpreter is handed over every 5 ms
        #: while Python code runs, and an operation as long as the threshold keeps this thread
        #: waiting for at least half of it, wherever its wait was when the operation began.
        self.late = threshold / 2
        #: The garbage collector's pauses: a full collection of a large suite's heap (10,000
        #: tests) can hold the loop past the threshold, and that is not the code under test.
        self.pauses = session.collector

    def _late_sample(
        self,
        watch: Watch,
        since: float,
        own_wait: int | None,
        look: Look | None = None,
        pending: tuple[float, float] | None = None,
    ) -> bool | None:
        """When this thread was kept from the interpreter since ``since`` for more than half
        the threshold, sample the loop thread, which has just let go of it after one long
        operation: a stall of its own, or the next line of one pending. ``look``: the loop
        thread as already seen on waking; ``pending``: the last answer and the heartbeat
        posted since, when the loop has not answered for the threshold (then a stall begins
        here, late or not). ``None`` when it did not sample, else whether the watch ended.

        Whenever this thread lets go of the interpreter (reading a file), the loop thread
        runs on, perhaps into its next long operation, and gives the interpreter back only
        after it: each such step is timed, and when it took that long the loop thread is
        looked at again at once, before anything else, to see where that operation was."""
        if not watch.precise:
            return None
        if look is None:
            if _clock.perf_counter() - since < self.late:
                return None
            look = self._look(watch.thread_id)
        # Held until the samples are kept: the test can end while this thread reads a file,
        # and its end must find the stall.
        with self._cond:
            while True:
                step = _clock.perf_counter()
                own_now = runqueue_wait(self._native_id) if own_wait is not None else None
                following = self._look_if_kept(watch, step)
                at = look.at
                self._observed = (at, own_now)
                late_by = at - since
                if own_now is not None and own_wait is not None:
                    late_by -= (own_now - own_wait) / 1e9
                if pending is not None and watch.stalled is None:
                    # The loop has not answered for the threshold: a stall, however long this
                    # thread waited (for a CPU, say) before looking.
                    if self._watch is not watch:
                        return True
                    late = late_by >= self.late
                    step = _clock.perf_counter()
                    sample = self._sample(look, late=late)
                    last_turn, posted = pending
                    waited = watch.waited_for_cpu
                    watch.stalled = stall = Stall(
                        (last_turn + posted) / 2,
                        sample,
                        posted,
                        waited,
                        watch.waited_at,
                        turn=look.turn_began,
                    )
                    if look.turn_began is not None:
                        stall.seen_waiting = self._waiting_now(watch)
                    following = following or self._look_if_kept(watch, step)
                elif look.ours and late_by >= self.late:
                    # Else this thread waited for a CPU, not for the interpreter.
                    step = _clock.perf_counter()
                    sample = self._sample(look, late=True)
                    # This operation held the interpreter since this thread asked for it, at
                    # least: late_by before the look.
                    began = _monotonic() - (_clock.perf_counter() - look.at) - late_by
                    if not self._keep_late(watch, sample, began):
                        return True
                    following = following or self._look_if_kept(watch, step)
                if following is None:
                    return self._watch is not watch
                since, own_wait, look = at, own_now, following

    def _look_if_kept(self, watch: Watch, since: float) -> Look | None:
        """A look at the loop thread when this thread was kept from the interpreter for more
        than half the threshold since ``since`` (in its own steps)."""
        if _clock.perf_counter() - since < self.late:
            return None
        return self._look(watch.thread_id)

    def _keep_late(self, watch: Watch, sample: Sample | None, began: float) -> bool:
        """Keep ``sample``, whose operation began at ``began`` (loop time) at the latest
        (caller holds the lock): a stall of its own, or one more line of the pending one.
        Whether the watch is still current."""
        if sample is None or sample.turn_began is None:
            # Outside a turn of the loop (it has stopped): where it was stuck is not known.
            return True
        if self._watch is not watch:
            return False
        stall = watch.stalled
        if stall is not None:
            last = stall.more[-1][0] if stall.more else stall.sample
            if last is not None and (last.file, last.line, last.stack) == (
                sample.file,
                sample.line,
                sample.stack,
            ):
                return True
            last_turn = last.turn_began if last is not None else stall.turn
            if last_turn is None or sample.turn_began == last_turn:
                # The same turn: one more line of it (or, when what held it first was not
                # the code's, not a stall of ours).
                if last is not None:
                    stall.more.append((sample, began))
                return True
            # A later turn: the stuck one ended when it began, and this is a stall of its own
            # (a heartbeat posted before it began is answered only after it).
            self._close_stall(watch, _clock.perf_counter(), sample.turn_began)
        now = _clock.perf_counter()
        stall = Stall(now, sample, now, watch.waited_for_cpu, watch.waited_at)
        # Seen in its turn just now: the waits from here on are the turn's.
        stall.seen_waiting = self._waiting_now(watch)
        watch.stalled = stall
        return True

    @staticmethod
    def _waiting_now(watch: Watch) -> tuple[float, int] | None:
        """When (monotonic) and how long the loop thread has waited for a CPU so far, read
        while it is seen in a stuck turn: from here on its waits are that turn's."""
        waiting = runqueue_wait(watch.native_id)
        return None if waiting is None else (_monotonic(), waiting)

    def _look(self, thread_id: int) -> Look:
        """The loop thread's frames now, where each was, when its turn began, and whether what
        holds it is ours to report."""
        ours = not (
            # A catalogued call reports itself; an allowed block is allowed; the garbage
            # collector holds the loop, not the code under test.
            thread_id in loopthread.in_progress
            or thread_id in loopthread.allowed_threads
            or thread_id in self.pauses.running
        )
        at = _clock.perf_counter()
        frame: types.FrameType | None = sys._current_frames().get(thread_id)
        # The loop thread runs on as soon as this thread lets go of the interpreter (at any
        # call or loop here): where each frame was, and the turn, are read first, at once.
        where = {id(each): (each.f_lasti, each.f_lineno) for each in frames.walk(frame)}
        return Look(frame, where, _turn_began(frame), at, ours)

    def _sample(self, look: Look, late: bool = False) -> Sample | None:
        """The loop thread's user line as ``look`` saw it, or ``None`` when the stall is not
        ours to report. ``late``: the loop thread had just let go of the interpreter after one
        long operation, which was on the line before where it was, or in the test's last step."""
        if not look.ours:
            return None
        frame, where, turn_began = look.frame, look.where, look.turn_began
        stuck = frame
        try:
            for each in frames.walk(frame):
                if each.f_code.co_filename.startswith("<frozen importlib"):
                    return None  # an import
            if late:
                # Let go of at the start of a function: what held on was in its caller.
                while (
                    stuck is not None
                    and stuck.f_back is not None
                    and _just_started(stuck.f_code, where.get(id(stuck), (-1, 0))[0])
                ):
                    stuck = stuck.f_back
            user = frames.user_frame(_in_turn(stuck))
            root = self.session.rootpath
            if user is None:
                code = _returned_test(frame) if late else None
                if code is None:
                    return None
                # The test's coroutine returned right after the operation: its last step.
                line = max((line for *_, line in code.co_lines() if line), default=0)
                return Sample(
                    file=frames.relpath(code.co_filename, root),
                    line=line or code.co_firstlineno,
                    function=code.co_name,
                    stack=(),
                    path=code.co_filename,
                    turn_began=turn_began,
                    late=True,
                    test_ended=True,
                )
            with self._cond:
                step = self._step
                test = step[0] if step is not None else None
            if not late:
                return Sample(
                    file=frames.relpath(user.f_code.co_filename, root),
                    line=user.f_lineno,
                    function=user.f_code.co_name,
                    stack=chain(user, root, test),
                    path=user.f_code.co_filename,
                    turn_began=turn_began,
                )
            lasti, lineno = where.get(id(user), (user.f_lasti, user.f_lineno))
            line = stuck_line(user.f_code, lasti, lineno)
            callers = [
                f"{frames.relpath(each.f_code.co_filename, root)}:"
                f"{where.get(id(each), (0, each.f_lineno))[1]} in {each.f_code.co_name}"
                for each in _in_turn(user.f_back)
                if frames.is_user_file(each.f_code.co_filename)
            ][:7]
            innermost = f"{frames.relpath(user.f_code.co_filename, root)}:{line}"
            return Sample(
                file=frames.relpath(user.f_code.co_filename, root),
                line=line,
                function=user.f_code.co_name,
                stack=(*reversed(callers), f"{innermost} in {user.f_code.co_name}"),
                path=user.f_code.co_filename,
                turn_began=turn_began,
                late=True,
            )
        finally:
            del frame, stuck

    def _close_stall(
        self,
        watch: Watch,
        ended: float,
        turn: float | None = None,
        waiting: tuple[float, int] | None = None,
    ) -> None:
        """Turn the pending stall, which ended at ``ended`` (and, in loop time, when the turn
        ``turn`` began), into findings (caller holds the lock). ``waiting``: when (monotonic)
        the loop thread's run-queue wait was read as the stall ended, and that wait."""
        stall, watch.stalled = watch.stalled, None
        if stall is None or stall.sample is None:
            return
        sample = stall.sample
        began = sample.turn_began
        # Time the loop thread spent runnable but not running (the machine's other work had
        # the CPUs) is not the code's, like the collector's pauses.
        scheduling = 0.0
        if waiting is None and (stall.waited_for_cpu is not None or stall.seen_waiting):
            waited_now = runqueue_wait(watch.native_id)
            waiting = None if waited_now is None else (_monotonic(), waited_now)
        if waiting is not None:
            if began is not None and turn is not None and stall.seen_waiting is not None:
                scheduling = max(0.0, turn - began - _own_time(stall, began, waiting))
            elif stall.waited_for_cpu is not None:
                scheduling = max(0, waiting[1] - stall.waited_for_cpu) / 1e9
        if (
            watch.precise
            and began is not None
            and turn is not None
            and turn > began
            and asyncio_clock(watch.loop)  # not replaced since the watch began
        ):
            collector = self.pauses.within(began, turn, monotonic=True)
            whole = turn - began
            duration = whole - collector - scheduling
            if duration < self.threshold:
                return  # one long turn of the loop, under the threshold
            # One segment per line the loop was seen stuck at, each up to the next one's
            # start; the time taken out is shared in proportion.
            starts = [began] + [max(began, min(at, turn)) for _, at in stall.more]
            ends = [*starts[1:], turn]
            samples = [sample, *(more for more, _ in stall.more)]
            segments = [
                (each, (end - start) * duration / whole)
                for each, start, end in zip(samples, starts, ends, strict=True)
            ]
            reported = [(each, length) for each, length in segments if length >= self.threshold]
            for each, length in reported or [(sample, duration)]:
                watch.done.append(functools.partial(self._stall_finding, each, length))
            return
        waited = ended - stall.posted
        waited -= self.pauses.within(stall.posted, ended) + scheduling
        if waited < self.threshold:
            return  # the loop answered a heartbeat within the threshold: no stall
        collector = self.pauses.within(stall.began, ended)
        duration = max(ended - stall.began - collector - scheduling, self.threshold)
        # Not an asyncio loop: a trio run's token (``Watch.loop``).
        trio = not isinstance(watch.loop, asyncio.AbstractEventLoop)
        watch.done.append(functools.partial(self._stall_finding, sample, duration, trio))

    def _stall_finding(self, sample: Sample, duration: float, trio: bool = False) -> Finding:
        what = f" ({sample.code})" if sample.code else ""
        where = (
            "in the test's last step, after its last await" if sample.test_ended else "at this line"
        )
        return Finding(
            kind=Kind.BLOCKING.value,
            message=(
                f"the event loop was stalled for at least {duration * 1000:.0f} ms "
                f"(threshold {self.threshold * 1000:g} ms) {where}{what}"
            ),
            file=sample.file,
            line=sample.line,
            function=sample.function,
            call=STALL_CALL,
            fix=STALL_FIX_TRIO if trio else STALL_FIX,
            stack=sample.stack,
            duration=duration,
        )
