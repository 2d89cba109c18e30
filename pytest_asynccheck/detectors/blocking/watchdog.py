"""The watchdog: one daemon thread per check session that notices when the event loop of the
running test has not turned for longer than the stall threshold.

While a test's coroutine runs, the thread posts a heartbeat with ``call_soon_threadsafe`` (which
works on any asyncio loop: stdlib, uvloop, looptime; under trio, ``TrioToken.run_sync_soon``)
and waits for it. Tests shorter than one interval are never sent one. When the loop has not
answered for the threshold, the thread samples the loop thread's stack with
``sys._current_frames()`` while the loop is still stuck; when the loop answers, the stall has
ended.

On the standard library's loop running on asyncio's own clock, the stall's length is exact: the
sample reads when the stuck turn of the loop began (``end_time`` in ``BaseEventLoop._run_once``)
and the heartbeat reads when the next turn began, so heartbeats can be rare (two per threshold)
and a long turn under the threshold is told apart from a stall. Elsewhere (uvloop, trio, a
virtual or mocked clock, a ``time()`` of the loop's class) the start is only known to lie
between the last answer and the unanswered heartbeat, so heartbeats come every eighth of the
threshold and the middle is taken. Which of the two a loop is, this thread reads from the
loop's attributes when it first looks at a step (``asyncio_clock``), not the loop thread at
every step.

Findings are handed to the test on the loop thread itself (at the end of the coroutine), so the
test's state is only touched from the thread that owns it. Within a second of the last test the
thread looks for the next one twice per threshold (cheaper than being woken by every test's
start); after that it sleeps on a condition and costs nothing.

This module is the thread and its heartbeats: when to look. What a look at the loop thread
finds, how a stall is blamed on lines and measured (without the garbage collector's pauses,
from ``_gc``), is its base class's, in ``stalls``; what is read of a stuck frame, in ``stuck``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ... import _clock
from . import loopthread
from .stalls import STALL_CALL as STALL_CALL  # the allow vocabulary names it from here
from .stalls import Look, StallSampler
from .stuck import (
    Stall,
    Step,
    Watch,
    _monotonic,
    _schedstat_files,
    _turn_began,
    asyncio_clock,
    runqueue_wait,
    stuck_line,
)

if TYPE_CHECKING:
    from ..._session import CheckSession, TestCheck

LOGGER = logging.getLogger("pytest_asynccheck")
_T = TypeVar("_T")

THREAD_NAME = "asynccheck-watchdog"
_get_ident = threading.get_ident
_get_native_id = threading.get_native_id


def _after(stall: Stall, answered: float, turn: float | None) -> bool:
    """Whether ``stall`` was seen in the turn of the loop that answered a heartbeat at
    ``answered`` (beginning at ``turn``), after the answer: the answer does not end it."""
    if stall.posted >= answered:
        return True
    return turn is not None and stall.sample is not None and stall.sample.turn_began == turn


class Watchdog(StallSampler):
    """The heartbeat thread, which decides when to look at the loop thread (what a look finds,
    and the stall it makes: ``StallSampler``)."""

    def __init__(self, session: CheckSession, threshold: float) -> None:
        super().__init__(session, threshold)
        # Without the loop's own turn times a stall's start is known to within one interval:
        # a short one keeps the reported length close (6 ms at the default threshold).
        self.interval = threshold / 8
        self.precise_interval = threshold / 2
        self._stopping = False
        self._idle = False
        #: When the thread last saw a watch.
        self._last_watch = 0.0
        #: When the thread's current timed wait should end: woken much later, it was kept from
        #: the interpreter, most likely by the loop thread inside one long operation in C.
        self._wake_at = float("inf")
        #: This thread's time spent waiting for a CPU when its current wait began.
        self._own_wait: int | None = None
        #: How many times the step being watched was attached to (a step inside a step of
        #: the same test on the same loop).
        self._depth = 1
        self._thread: threading.Thread | None = None
        # Started now, idle until the first test: a thread started by the first test would
        # begin only once that test's loop thread lets it, past a stall in its first step.
        with self._lock:
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    # driven from the loop thread

    def step_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str = "test"
    ) -> None:
        """A step of ``test`` begins on this thread (the blocking detector's ``task_entered``,
        dispatched here directly): its asyncio ``loop`` is watched, or under trio (``loop`` is
        ``None``) trio's token, this thread counting as the loop's for the catalogue meanwhile.

        This runs at every step of every test, and most steps end within one interval, before
        the thread would look at them: the step is only noted here, in one tuple, and the
        thread makes its ``Watch`` when the step has outlived an interval (``_watch_of``)."""
        watched: asyncio.AbstractEventLoop | object = loop
        if loop is None:
            watched = loopthread.trio_token()
            if watched is None:
                return  # no loop this check knows runs the step
            loopthread.set_foreign_loop_thread(_get_ident())
        step = self._step
        if step is not None and step[1] is watched and step[0] is test:
            self._depth += 1
            return
        native_id = _get_native_id()
        if native_id not in _schedstat_files:
            # Opened now, on the loop thread, not while the watchdog reads it during a
            # stall: each system call lets the loop thread run on (see ``_io``). Only
            # opened: a file whose thread has ended is opened again at its next read.
            runqueue_wait(native_id)
        self._depth = 1
        self._step = step = (test, watched, _get_ident(), native_id, _clock.perf_counter())
        if self._watch is not None:
            # A step that was never detached (its test or loop gave way to this one): its
            # watch ends here. After the new step is set, the thread makes no other.
            with self._lock:
                if self._watch is not None and self._watch.step is not step:
                    self._watch = None
        # Read after the step is set, as the thread sets ``_idle`` before it reads the step:
        # one of the two sees the other's write, so the thread never sleeps on a step.
        if self._idle or self._thread is None:
            with self._lock:
                # The thread should run now: if it gets the interpreter only much later, the
                # loop thread held it (see ``_wake_at``).
                self._wake_at, self._own_wait = _clock.perf_counter(), None
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                    self._thread.start()
                else:
                    # Only an idle thread needs waking; a thread in a timed wait picks the
                    # new step up on its next turn, so a run of short tests costs no
                    # wake-ups at all.
                    self._cond.notify_all()

    def step_exited(
        self,
        test: TestCheck,
        loop: asyncio.AbstractEventLoop | None = None,
        where: str | None = None,
    ) -> None:
        """A step of ``test`` ended (the blocking detector's ``task_exited``, dispatched here
        directly); or, called with the test alone (its ``test_finished``, dispatched here too),
        the test itself, whatever steps are still open. Its watch ends, and its findings go to
        the test. Under trio (``loop`` is ``None``) this thread is no longer the loop's."""
        if loop is None and loopthread.foreign_loop_thread is not None:
            loopthread.clear_foreign_loop_thread()
        force = where is None
        step = self._step
        if step is None or step[0] is not test:
            # Read without the lock: only a step of a test sets a watch for it, and one
            # starting meanwhile on another thread is as if it took the lock after this.
            return
        if self._depth > 1 and not force:
            self._depth -= 1
            return
        self._step = None
        watch = self._watch
        if watch is None or watch.step is not step:
            # Not watched yet; the thread, making its watch now, sees the step gone after it
            # set it and takes it back (``_watch_of``).
            return
        self._lock.acquire()
        try:
            if self._watch is not watch:
                return
            self._watch = None
            if watch.stalled is not None:
                self._close_stall(watch, _clock.perf_counter(), self._turn_now(watch))
        finally:
            self._lock.release()
        # Nothing adds to a watch no longer watched: its findings are all there.
        for finding in watch.done:
            self.session.report(finding(), nodeid=test.nodeid)

    def _watch_of(self, step: Step) -> Watch | None:
        """The thread's ``Watch`` of ``step``, made at its first look (caller holds the
        lock); ``None`` once the step has ended."""
        watch = self._watch
        if watch is not None and watch.step is step:
            return watch
        test, loop, thread_id, native_id, since = step
        post = getattr(loop, "call_soon_threadsafe", None) or loop.run_sync_soon  # type: ignore[attr-defined]
        watch = Watch(test, loop, post, thread_id, native_id, since, asyncio_clock(loop))
        watch.step = step
        self._watch = watch
        if self._step is not step:
            # Detached meanwhile, before it could see this watch (see ``detach``).
            self._watch = None
            return None
        return watch

    def _current_watch(self) -> Watch | None:
        """The watch of the step running now, made if it was not yet."""
        with self._lock:
            step = self._step
            return self._watch_of(step) if step is not None else None

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
            self._step = None
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
                    while self._step is None and not self._stopping:
                        if _clock.perf_counter() - self._last_watch < 1.0:
                            # Between tests of a run: look again soon rather than be woken by
                            # every test's start, a thread switch per test.
                            self._wait(self.precise_interval)
                            continue
                        self._idle = True
                        if self._step is not None:  # set before ``attach`` read ``_idle``
                            self._idle = False
                            continue
                        self._wake_at = float("inf")
                        self._cond.wait()
                        self._idle = False
                    self._last_watch = _clock.perf_counter()
                    if self._stopping:
                        return
                    step = self._step
                    if step is None:
                        continue
                    # Asked here, not at every step by the loop thread: most steps end
                    # before this thread looks at them.
                    interval = self.precise_interval if asyncio_clock(step[1]) else self.interval
                    young = step[4] + interval - _clock.perf_counter()
                    if young > 0:
                        # A test shorter than one interval is never sent a heartbeat, and a
                        # run of short tests wakes this thread once per interval at most.
                        self._wait(young)
                        continue
                    watch = self._watch_of(step)
                    if watch is None:
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
        if _clock.perf_counter() - began >= self.late:
            watch = self._current_watch()
            if watch is not None and watch.precise:
                self._late_sample(watch, began, None, self._look(watch.thread_id))
        return value

    def _beat(self, watch: Watch) -> None:
        # Kept from the interpreter past the threshold: the loop thread has just come out of
        # one long operation, and the heartbeat would find the loop turning again.
        self._late_sample(watch, self._wake_at, self._own_wait)
        if watch.precise and watch.waited_for_cpu is None:
            watch.waited_for_cpu = self._io(lambda: runqueue_wait(watch.native_id))
            watch.waited_at = _monotonic()
        answered = threading.Event()
        answer: list[float | None] = []
        #: The loop thread's wait for a CPU, read by itself as a stall ends: read here later,
        #: it would count the waits of the turns after the stall too.
        waited_then: list[tuple[float, int]] = []

        def heartbeat() -> None:
            answer.append(_clock.perf_counter())
            # When this turn began ends a stall; only then is it worth a look at the frames.
            stalled = watch.precise and watch.stalled is not None
            answer.append(_turn_began(sys._getframe(1)) if stalled else None)
            waiting = self._waiting_now(watch) if stalled else None
            if waiting is not None:
                waited_then.append(waiting)
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
        after: Look | None = None
        if watch.precise and _clock.perf_counter() - ended >= self.late:
            after = self._look(watch.thread_id)
        if after is not None and self._late_sample(watch, ended, own_wait, after):
            return
        waited_for_cpu = self._io(lambda: runqueue_wait(watch.native_id)) if watch.precise else None
        waited_at = _monotonic()
        with self._cond:
            ended, turn = answer
            assert ended is not None
            stall = watch.stalled
            if stall is not None and not _after(stall, ended, turn):
                waiting = waited_then[0] if waited_then else None
                if waiting is None and waited_for_cpu is not None:
                    waiting = (waited_at, waited_for_cpu)
                self._io(lambda: self._close_stall(watch, ended, turn, waiting))
            watch.answered_at = ended
            watch.waited_for_cpu = waited_for_cpu
            watch.waited_at = waited_at
        # Kept from the interpreter since the answer: the next stall began right after it.
        self._late_sample(watch, ended, own_wait)
        with self._cond:
            if self._watch is watch and not self._stopping:
                self._wait(self.precise_interval if watch.precise else self.interval)
