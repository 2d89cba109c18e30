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
import logging
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import _clock, blocking, frames
from .findings import Finding, Kind

if TYPE_CHECKING:
    from .session import CheckSession, TestCheck

LOGGER = logging.getLogger("pytest_asynccheck")

THREAD_NAME = "asynccheck-watchdog"
STALL_CALL = "stall"
STALL_FIX = (
    "move CPU-bound or blocking work off the loop: await asyncio.to_thread(func, ...) or "
    "await loop.run_in_executor(None, func, ...)"
)


@dataclass
class Sample:
    """Where the loop thread was stuck, captured while it was."""

    file: str
    line: int
    function: str
    stack: tuple[str, ...]
    #: The file as the interpreter names it: its line is read once the stall is over, as
    #: reading a file while the loop thread holds the interpreter lock would wait for that
    #: lock at every system call.
    path: str
    #: When the stuck turn of the loop began, in loop time, where the loop says.
    turn_began: float | None = None

    @property
    def code(self) -> str:
        import linecache

        return linecache.getline(self.path, self.line).strip()


@dataclass
class Stall:
    """A stall seen while it lasts."""

    #: Estimated from heartbeats, in the plugin's clock.
    began: float
    sample: Sample | None
    #: When the heartbeat the loop has not answered was posted.
    posted: float


@dataclass
class Watch:
    """One loop being watched for one test."""

    test: TestCheck
    loop: object
    post: Callable[[Callable[[], None]], object]
    thread_id: int
    since: float = 0.0
    #: When the loop last answered a heartbeat: it was turning then.
    answered_at: float = 0.0
    depth: int = 1
    #: Whether the loop tells when each of its turns began (the standard library's loop on
    #: real time).
    precise: bool = False
    #: A stall seen but not yet ended.
    stalled: Stall | None = None
    done: list[Finding] = field(default_factory=list)


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
        self._thread: threading.Thread | None = None
        #: The garbage collector's pauses: a full collection of a large suite's heap (10,000
        #: tests) can hold the loop past the threshold, and that is not the code under test.
        self.pauses = session.collector

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
            self._watch = Watch(
                test,
                loop,
                post,
                threading.get_ident(),
                since=_clock.perf_counter(),
                precise=isinstance(loop, asyncio.BaseEventLoop) and _real_time(loop),
            )
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
            self.session.report(finding, nodeid=test.nodeid)

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
        try:
            while True:
                with self._cond:
                    while self._watch is None and not self._stopping:
                        if _clock.perf_counter() - self._last_watch < 1.0:
                            # Between tests of a run: look again soon rather than be woken by
                            # every test's start, a thread switch per test.
                            self._cond.wait(self.precise_interval)
                            continue
                        self._idle = True
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
                        self._cond.wait(young)
                        continue
                self._beat(watch)
        except Exception as exc:  # pragma: no cover - a bug; never take the run down
            LOGGER.error("asynccheck: the watchdog stopped: %s", exc, exc_info=exc)

    def _beat(self, watch: Watch) -> None:
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
            watch.post(heartbeat)
        except Exception:  # the loop is closed: nothing to watch until the next attach
            with self._cond:
                if self._watch is watch:
                    self._cond.wait(self.interval)
            return
        # With the turn times a stall is measured exactly once over, so it can be looked at as
        # soon as the loop has not answered for the threshold; otherwise the heartbeat itself
        # must have waited that long.
        deadline = (last_turn if watch.precise else posted) + self.threshold
        if not answered.wait(max(deadline - _clock.perf_counter(), 0.0)):
            sample = self._sample(watch.thread_id)
            with self._cond:
                if self._watch is not watch:
                    return
                # The loop stopped turning between its last answer and this heartbeat.
                watch.stalled = Stall((last_turn + posted) / 2, sample, posted)
            while not answered.wait(self.interval):
                with self._cond:
                    if self._watch is not watch or self._stopping:
                        return
        with self._cond:
            ended, turn = answer
            assert ended is not None
            if watch.stalled is not None:
                self._close_stall(watch, ended, turn)
            watch.answered_at = ended
            if self._watch is watch and not self._stopping:
                self._cond.wait(self.precise_interval if watch.precise else self.interval)

    def _sample(self, thread_id: int) -> Sample | None:
        """The loop thread's user line now, or ``None`` when the stall is not ours to report."""
        if thread_id in blocking.in_progress or thread_id in blocking.allowed_threads:
            return None  # a catalogued call reports itself; an allowed block is allowed
        if thread_id in self.pauses.running:
            return None  # the garbage collector holds the loop, not the code under test
        frame: types.FrameType | None = sys._current_frames().get(thread_id)
        try:
            for each in frames.walk(frame):
                if each.f_code.co_filename.startswith("<frozen importlib"):
                    return None  # an import
            user = frames.user_frame(frames.walk(frame))
            if user is None:
                return None
            root = self.session.rootpath
            with self._cond:
                test = self._watch.test if self._watch is not None else None
            return Sample(
                file=frames.relpath(user.f_code.co_filename, root),
                line=user.f_lineno,
                function=user.f_code.co_name,
                stack=blocking.chain(user, root, test),
                path=user.f_code.co_filename,
                turn_began=_turn_began(frame),
            )
        finally:
            del frame

    def _close_stall(self, watch: Watch, ended: float, turn: float | None = None) -> None:
        """Turn the pending stall, which ended at ``ended`` (and, in loop time, when the turn
        ``turn`` began), into a finding (caller holds the lock)."""
        stall, watch.stalled = watch.stalled, None
        if stall is None or stall.sample is None:
            return
        sample = stall.sample
        began = sample.turn_began
        if (
            watch.precise
            and began is not None
            and turn is not None
            and turn > began
            and isinstance(watch.loop, asyncio.AbstractEventLoop)
            and _real_time(watch.loop)
        ):
            collector = self.pauses.within(watch.thread_id, began, turn, monotonic=True)
            duration = turn - began - collector
            if duration < self.threshold:
                return  # one long turn of the loop, under the threshold
        else:
            waited = ended - stall.posted
            waited -= self.pauses.within(watch.thread_id, stall.posted, ended)
            if waited < self.threshold:
                return  # the loop answered a heartbeat within the threshold: no stall
            collector = self.pauses.within(watch.thread_id, stall.began, ended)
            duration = max(ended - stall.began - collector, self.threshold)
        what = f" ({sample.code})" if sample.code else ""
        watch.done.append(
            Finding(
                kind=Kind.BLOCKING.value,
                message=(
                    f"the event loop was stalled for at least {duration * 1000:.0f} ms "
                    f"(threshold {self.threshold * 1000:g} ms) at this line{what}"
                ),
                file=sample.file,
                line=sample.line,
                function=sample.function,
                call=STALL_CALL,
                fix=STALL_FIX,
                stack=sample.stack,
                duration=duration,
            )
        )


_RUN_ONCE = asyncio.BaseEventLoop._run_once.__code__  # type: ignore[attr-defined]


def _turn_began(frame: types.FrameType | None) -> float | None:
    """When the standard library loop's current turn began (loop time), from the turn's own
    frame, found outwards from ``frame``; ``None`` for other loops."""
    try:
        for each in frames.walk(frame):
            if each.f_code is _RUN_ONCE:
                value = each.f_locals.get("end_time")
                return value if isinstance(value, float) else None
    finally:
        del frame
    return None


def _real_time(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop``'s clock is real time: not replaced on the instance (virtual time) and
    reading what the monotonic clock reads (not looptime, not a mock)."""
    if _clock.set_on_instance(loop, "time"):
        return False
    try:
        return abs(loop.time() - _monotonic()) < 1.0
    except Exception:
        return False


_monotonic = time.monotonic
