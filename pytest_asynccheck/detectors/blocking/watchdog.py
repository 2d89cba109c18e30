"""The watchdog: one daemon thread per check session that notices when the event loop of the
running test has not turned for longer than the stall threshold.

While a test's coroutine runs, the thread posts a heartbeat with ``call_soon_threadsafe`` (which
works on any asyncio loop: stdlib, uvloop, looptime; under trio, ``TrioToken.run_sync_soon``)
and waits for it. Tests shorter than one interval are never sent one. When the loop has not
answered for the threshold, the thread samples the loop thread's stack with
``sys._current_frames()`` while the loop is still stuck; when the loop answers, the stall has
ended.

On the standard library's loop running on real time, the stall's length is exact: the sample
reads when the stuck turn of the loop began (``end_time`` in ``BaseEventLoop._run_once``) and the
heartbeat reads when the next turn began, so heartbeats can be rare (two per threshold) and a
long turn under the threshold is told apart from a stall. Elsewhere (uvloop, trio, a virtual or
mocked clock) the start is only known to lie between the last answer and the unanswered
heartbeat, so heartbeats come every eighth of the threshold and the middle is taken.

Findings are handed to the test on the loop thread itself (at the end of the coroutine), so the
test's state is only touched from the thread that owns it. Within a second of the last test the
thread looks for the next one twice per threshold (cheaper than being woken by every test's
start); after that it sleeps on a condition and costs nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ... import _clock
from ... import _frames as frames
from ..._findings import Finding, Kind
from . import loopthread
from .chain import chain
from .stuck import (
    Sample,
    Stall,
    Watch,
    _in_turn,
    _just_started,
    _monotonic,
    _real_time,
    _returned_test,
    _turn_began,
    runqueue_wait,
    stuck_line,
)

if TYPE_CHECKING:
    from ..._session import CheckSession, TestCheck

LOGGER = logging.getLogger("pytest_asynccheck")
_T = TypeVar("_T")

THREAD_NAME = "asynccheck-watchdog"
STALL_CALL = "stall"
STALL_FIX = (
    "move CPU-bound or blocking work off the loop: await asyncio.to_thread(func, ...) or "
    "await loop.run_in_executor(None, func, ...)"
)


@dataclass
class _Look:
    """The loop thread as seen at one instant: its innermost frame, where each of its frames
    was (``f_lasti``, ``f_lineno`` by ``id``), when its turn of the loop began, and when
    (``perf_counter``)."""

    frame: types.FrameType | None
    where: dict[int, tuple[int, int]]
    turn_began: float | None
    at: float
    ours: bool = True


def _after(stall: Stall, answered: float, turn: float | None) -> bool:
    """Whether ``stall`` was seen in the turn of the loop that answered a heartbeat at
    ``answered`` (beginning at ``turn``), after the answer: the answer does not end it."""
    if stall.posted >= answered:
        return True
    return turn is not None and stall.sample is not None and stall.sample.turn_began == turn


class Watchdog:
    def __init__(self, session: CheckSession, threshold: float) -> None:
        self.session = session
        self.threshold = threshold
        # Without the loop's own turn times a stall's start is known to within one interval:
        # a short one keeps the reported length close (6 ms at the default threshold).
        self.interval = threshold / 8
        self.precise_interval = threshold / 2
        # The loop thread takes the lock itself (a C call) where waiting is not needed.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._watch: Watch | None = None
        self._stopping = False
        self._idle = False
        #: When the thread last saw a watch.
        self._last_watch = 0.0
        #: When the thread's current timed wait should end: woken much later, it was kept from
        #: the interpreter, most likely by the loop thread inside one long operation in C.
        self._wake_at = float("inf")
        #: This thread's time spent waiting for a CPU when its current wait began.
        self._own_wait: int | None = None
        #: When this thread last sampled the loop thread, and its own wait for a CPU then.
        self._observed: tuple[float, int | None] = (0.0, None)
        #: This thread's id for the kernel.
        self._native_id: int | None = None
        #: How late past ``_wake_at`` counts: the interpreter is handed over every 5 ms while
        #: Python code runs, and an operation as long as the threshold keeps this thread
        #: waiting for at least half of it, wherever its wait was when the operation began.
        self.late = threshold / 2
        self._thread: threading.Thread | None = None
        #: The garbage collector's pauses: a full collection of a large suite's heap (10,000
        #: tests) can hold the loop past the threshold, and that is not the code under test.
        self.pauses = session.collector
        # Started now, idle until the first test: a thread started by the first test would
        # begin only once that test's loop thread lets it, past a stall in its first step.
        with self._lock:
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    # driven from the loop thread

    def attach(
        self,
        test: TestCheck,
        loop: asyncio.AbstractEventLoop | object,
        post: Callable[[Callable[[], None]], object],
    ) -> None:
        """Watch ``loop`` (an asyncio loop, or a trio token) while ``test`` runs on it;
        ``post`` schedules a callback on it from another thread."""
        with self._lock:
            watch = self._watch
            if watch is not None and watch.loop is loop and watch.test is test:
                watch.depth += 1
                return
            # Opened now, on the loop thread, not while the watchdog reads it during a stall:
            # each system call lets the loop thread run on (see ``_io``).
            runqueue_wait(threading.get_native_id())
            self._watch = Watch(
                test,
                loop,
                post,
                threading.get_ident(),
                threading.get_native_id(),
                since=_clock.perf_counter(),
                precise=isinstance(loop, asyncio.BaseEventLoop) and _real_time(loop),
            )
            if self._thread is None or self._idle:
                # The thread should run now: if it gets the interpreter only much later, the
                # loop thread held it (see ``_wake_at``).
                self._wake_at, self._own_wait = _clock.perf_counter(), None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                self._thread.start()
            elif self._idle:
                # Only an idle thread needs waking; a thread in a timed wait picks the new
                # watch up on its next turn, so a run of short tests costs no wake-ups at all.
                self._cond.notify_all()

    def detach(self, test: TestCheck, force: bool = False) -> None:
        with self._lock:
            watch = self._watch
            if watch is None or watch.test is not test:
                return
            watch.depth -= 1
            if watch.depth > 0 and not force:
                return
            self._watch = None
            if watch.stalled is not None:
                self._close_stall(watch, _clock.perf_counter(), self._turn_now(watch))
            found, watch.done = watch.done, []
        for finding in found:
            self.session.report(finding(), nodeid=test.nodeid)

    def _turn_now(self, watch: Watch) -> float | None:
        """On the loop thread: when the stall pending on ``watch`` ended, in loop time (the
        start of this turn of the loop, or now when this is still the stuck turn)."""
        if watch.thread_id != threading.get_ident() or not isinstance(
            watch.loop, asyncio.AbstractEventLoop
        ):
            return None
        turn = _turn_began(sys._getframe(1))
        stall = watch.stalled
        if turn is not None and stall and stall.sample and stall.sample.turn_began == turn:
            return watch.loop.time()
        return turn

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._watch = None
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    # the thread

    def _run(self) -> None:
        self._native_id = threading.get_native_id()
        self._warm_up()
        try:
            while True:
                with self._cond:
                    while self._watch is None and not self._stopping:
                        if _clock.perf_counter() - self._last_watch < 1.0:
                            # Between tests of a run: look again soon rather than be woken by
                            # every test's start, a thread switch per test.
                            self._wait(self.precise_interval)
                            continue
                        self._idle = True
                        self._wake_at = float("inf")
                        self._cond.wait()
                        self._idle = False
                    self._last_watch = _clock.perf_counter()
                    if self._stopping:
                        return
                    watch = self._watch
                    assert watch is not None
                    interval = self.precise_interval if watch.precise else self.interval
                    young = watch.since + interval - _clock.perf_counter()
                    if young > 0:
                        # A test shorter than one interval is never sent a heartbeat, and a
                        # run of short tests wakes this thread once per interval at most.
                        self._wait(young)
                        continue
                self._beat(watch)
        except Exception as exc:  # pragma: no cover - a bug; never take the run down
            LOGGER.error("asynccheck: the watchdog stopped: %s", exc, exc_info=exc)

    def _warm_up(self) -> None:
        """Do once, before any test, what a look at a stuck loop thread does the first time
        (open this thread's scheduling figures, read code objects' instructions): the first
        time lets go of the interpreter at each file it reads, and the loop thread would run
        on past where it was stuck (see ``_io``)."""
        runqueue_wait(self._native_id)
        look = self._look(threading.get_ident())
        self._sample(look, late=True)
        stuck_line(self._warm_up.__code__, 0, 0)
        del look

    def _wait(self, timeout: float) -> None:
        """A timed wait on the condition (caller holds it), noting when it should end."""
        self._wake_at, self._own_wait = self._mark()
        self._wake_at += timeout
        self._cond.wait(timeout)

    def _mark(self) -> tuple[float, int | None]:
        """Now, and this thread's time spent waiting for a CPU so far."""
        return _clock.perf_counter(), self._io(lambda: runqueue_wait(self._native_id))

    def _io(self, step: Callable[[], _T]) -> _T:
        """``step``, which lets go of the interpreter (it reads a file): the loop thread runs
        on meanwhile and, in a long operation, gives the interpreter back only after it. When
        it did, the loop thread is looked at at once, where that operation has just ended, and
        what it was doing is kept (``_late_sample``)."""
        began = _clock.perf_counter()
        value = step()
        watch = self._watch
        if watch is not None and watch.precise and _clock.perf_counter() - began >= self.late:
            self._late_sample(watch, began, None, self._look(watch.thread_id))
        return value

    def _beat(self, watch: Watch) -> None:
        # Kept from the interpreter past the threshold: the loop thread has just come out of
        # one long operation, and the heartbeat would find the loop turning again.
        self._late_sample(watch, self._wake_at, self._own_wait)
        if watch.precise and watch.waited_for_cpu is None:
            watch.waited_for_cpu = self._io(lambda: runqueue_wait(watch.native_id))
        answered = threading.Event()
        answer: list[float | None] = []

        def heartbeat() -> None:
            answer.append(_clock.perf_counter())
            # When this turn began ends a stall; only then is it worth a look at the frames.
            stalled = watch.precise and watch.stalled is not None
            answer.append(_turn_began(sys._getframe(1)) if stalled else None)
            answered.set()

        with self._cond:
            last_turn = max(watch.answered_at, watch.since)
        posted = _clock.perf_counter()
        try:
            self._io(lambda: watch.post(heartbeat))
        except Exception:  # the loop is closed: nothing to watch until the next attach
            with self._cond:
                if self._watch is watch:
                    self._cond.wait(self.interval)
            return
        # With the turn times a stall is measured exactly once over, so it can be looked at as
        # soon as the loop has not answered for the threshold; otherwise the heartbeat itself
        # must have waited that long.
        deadline = (last_turn if watch.precise else posted) + self.threshold
        wait = max(deadline - _clock.perf_counter(), 0.0)
        since, own_wait = self._mark()
        if not answered.wait(wait):
            if watch.stalled is None:
                # Looked at before anything that lets go of the interpreter (see _late_sample).
                look = self._look(watch.thread_id)
                if watch.precise:
                    # Late when this thread was kept from the interpreter past the deadline.
                    if self._late_sample(watch, since + wait, own_wait, look, (last_turn, posted)):
                        return
                else:
                    sample = self._sample(look)
                    self._observed = self._mark()
                    with self._cond:
                        if self._watch is not watch:
                            return
                        # The loop stopped turning between its last answer and this heartbeat.
                        watch.stalled = Stall((last_turn + posted) / 2, sample, posted)
            # Kept from the interpreter anywhere since the loop thread was last seen (waiting,
            # or in this thread's own steps): one more long operation has just ended.
            seen, own_wait = self._observed
            while True:
                if answered.wait(self.interval):
                    break
                if self._late_sample(watch, seen + self.interval, own_wait) is None:
                    seen, own_wait = self._mark()
                else:
                    seen, own_wait = self._observed
                with self._cond:
                    if self._watch is not watch or self._stopping:
                        return
        # The loop answered; it may have begun a long operation right after, which kept this
        # thread from the interpreter until now: where it was is read before anything else.
        ended = answer[0]
        assert ended is not None
        after: _Look | None = None
        if watch.precise and _clock.perf_counter() - ended >= self.late:
            after = self._look(watch.thread_id)
        if after is not None and self._late_sample(watch, ended, own_wait, after):
            return
        waited_for_cpu = self._io(lambda: runqueue_wait(watch.native_id)) if watch.precise else None
        with self._cond:
            ended, turn = answer
            assert ended is not None
            stall = watch.stalled
            if stall is not None and not _after(stall, ended, turn):
                self._io(lambda: self._close_stall(watch, ended, turn, waited_for_cpu))
            watch.answered_at = ended
            watch.waited_for_cpu = waited_for_cpu
        # Kept from the interpreter since the answer: the next stall began right after it.
        self._late_sample(watch, ended, own_wait)
        with self._cond:
            if self._watch is watch and not self._stopping:
                self._wait(self.precise_interval if watch.precise else self.interval)

    def _late_sample(
        self,
        watch: Watch,
        since: float,
        own_wait: int | None,
        look: _Look | None = None,
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
                    watch.stalled = Stall(
                        (last_turn + posted) / 2, sample, posted, waited, turn=look.turn_began
                    )
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

    def _look_if_kept(self, watch: Watch, since: float) -> _Look | None:
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
        watch.stalled = Stall(now, sample, now, watch.waited_for_cpu)
        return True

    def _look(self, thread_id: int) -> _Look:
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
        return _Look(frame, where, _turn_began(frame), at, ours)

    def _sample(self, look: _Look, late: bool = False) -> Sample | None:
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
                test = self._watch.test if self._watch is not None else None
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
        waited_for_cpu: int | None = None,
    ) -> None:
        """Turn the pending stall, which ended at ``ended`` (and, in loop time, when the turn
        ``turn`` began), into findings (caller holds the lock). ``waited_for_cpu``: the loop
        thread's run-queue wait by then, when known."""
        stall, watch.stalled = watch.stalled, None
        if stall is None or stall.sample is None:
            return
        sample = stall.sample
        began = sample.turn_began
        # Time the loop thread spent runnable but not running (the machine's other work had
        # the CPUs) is not the code's, like the collector's pauses.
        scheduling = 0.0
        if waited_for_cpu is None and stall.waited_for_cpu is not None:
            waited_for_cpu = runqueue_wait(watch.native_id)
        if waited_for_cpu is not None and stall.waited_for_cpu is not None:
            scheduling = max(0, waited_for_cpu - stall.waited_for_cpu) / 1e9
        if (
            watch.precise
            and began is not None
            and turn is not None
            and turn > began
            and isinstance(watch.loop, asyncio.AbstractEventLoop)
            and _real_time(watch.loop)
        ):
            collector = self.pauses.within(watch.thread_id, began, turn, monotonic=True)
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
        waited -= self.pauses.within(watch.thread_id, stall.posted, ended) + scheduling
        if waited < self.threshold:
            return  # the loop answered a heartbeat within the threshold: no stall
        collector = self.pauses.within(watch.thread_id, stall.began, ended)
        duration = max(ended - stall.began - collector - scheduling, self.threshold)
        watch.done.append(functools.partial(self._stall_finding, sample, duration))

    def _stall_finding(self, sample: Sample, duration: float) -> Finding:
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
            fix=STALL_FIX,
            stack=sample.stack,
            duration=duration,
        )
