"""What the watchdog reads of a stuck loop thread, and what it keeps of it: a sample of where
the thread was and a stall while it lasts; when the standard library loop's current turn began,
the line that held the interpreter, the test whose coroutine has just returned, the thread's
wait for a CPU, and whether a loop runs on real time. Frames are only read, never changed."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dis
import inspect
import os
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ... import _frames as frames
from ..._findings import Finding

if TYPE_CHECKING:
    from ..._session import TestCheck


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
    #: Taken once the loop thread let go of the interpreter after holding it past the
    #: threshold (one long operation in C): the line is the operation's, found before where
    #: the loop thread was seen.
    late: bool = False
    #: The stuck operation was in the last step of the test, whose coroutine had returned.
    test_ended: bool = False

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
    #: The loop thread's time spent waiting for a CPU up to the stall (see ``runqueue_wait``),
    #: and when it was read (monotonic).
    waited_for_cpu: int | None = None
    waited_at: float | None = None
    #: Further lines the loop was stuck at in the same turn, each with when (loop time) its
    #: stuck operation began at the latest: seen when the loop thread held the interpreter in
    #: one operation after another, without a turn of the loop between them.
    more: list[tuple[Sample, float]] = field(default_factory=list)
    #: When the stuck turn began (loop time), when known: also for a stall the code under test
    #: is not to blame for (no sample).
    turn: float | None = None
    #: When (monotonic) the loop thread was seen stuck in this turn, and its time spent waiting
    #: for a CPU read then: from there on, its waits are the turn's own.
    seen_waiting: tuple[float, int] | None = None


#: A step of a test as the loop thread notes it at its start, for the watchdog: the test, its
#: loop (or trio token), the loop thread's id and its id for the kernel, and when the step
#: began (the plugin's clock). Whether the loop tells when each of its turns began is asked by
#: the watchdog's thread when it looks at the step (``asyncio_clock``): most steps end before
#: it does.
Step = tuple["TestCheck", object, int, "int | None", float]


class Watch:
    """One loop being watched for one step of a test, made by the watchdog when the step has
    outlived an interval: a plain class with positional fields and its constant defaults on
    the class."""

    #: When the loop last answered a heartbeat: it was turning then.
    answered_at = 0.0
    #: The step this watches (``Watchdog.attach``).
    step: Step | None = None
    #: A stall seen but not yet ended.
    stalled: Stall | None = None
    #: The loop thread's time spent waiting for a CPU when it last answered, and when that
    #: was read (monotonic).
    waited_for_cpu: int | None = None
    waited_at = 0.0

    def __init__(
        self,
        test: TestCheck,
        loop: object,
        post: Callable[[Callable[[], None]], object],
        thread_id: int,
        native_id: int | None,
        since: float,
        precise: bool,
    ) -> None:
        self.test = test
        self.loop = loop
        self.post = post
        self.thread_id = thread_id
        #: The loop thread's id for the kernel (``/proc/self/task/<id>``).
        self.native_id = native_id
        self.since = since
        #: Whether the loop tells when each of its turns began (the standard library's loop
        #: on real time).
        self.precise = precise
        #: The stalls found, each made into a finding when the test ends, on the loop thread:
        #: its message quotes the line, and reading the file here would let the loop thread
        #: run on while the watchdog waits to look at it again.
        self.done: list[Callable[[], Finding]] = []


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


#: Instructions after which the loop thread always lets go of the interpreter when asked:
#: backward jumps, the start or resumption of a function. (A call does only when what it
#: calls is written in C.)
_HANDOVER_PREFIXES = ("JUMP_BACKWARD", "JUMP_ABSOLUTE", "RESUME", "YIELD_VALUE")
#: Instructions that can run for long in C without letting go of it: arithmetic on big
#: objects, membership, comparison, building, unpacking, slicing.
_LONG_PREFIXES = (
    "BINARY_",
    "INPLACE_",
    "CONTAINS_OP",
    "COMPARE_OP",
    "BUILD_",
    "LIST_",
    "SET_",
    "DICT_",
    "UNPACK_",
    "FORMAT_",
    "STORE_SUBSCR",
    "DELETE_SUBSCR",
)


#: Instructions after which the code does not go on to the next one.
_END_PREFIXES = ("RAISE_VARARGS", "RERAISE", "RETURN_")
_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)
#: Jumps that always jump (Python 3.10 to 3.13).
_ALWAYS_JUMPS = frozenset(
    ("JUMP_FORWARD", "JUMP_ABSOLUTE", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP")
)


def stuck_line(code: types.CodeType, lasti: int, lineno: int) -> int:
    """The line of ``code`` that held the interpreter, seen just after it let go (a frame of
    it at ``lasti``, on line ``lineno``): an operation in C that is not a call
    (``b"x" * n``, ``x in big``) only lets go at the next call, backward jump or function
    start, often on a later line. The last such operation on a way to ``lasti`` since the
    previous certain hand-over, else the line the frame is at (a long call in C: the call's
    own line). Code from which no way leads to ``lasti`` did not run: the message a failing
    ``assert`` builds (pytest's rewritten ones do, with ``%`` and dictionaries) ends in a raise,
    and was jumped over."""
    listed = list(frames.instruction_lines(code))
    index = {instruction.offset: number for number, (instruction, _) in enumerate(listed)}
    before: dict[int, list[int]] = {}  # instruction -> the ones that can run just before it
    for number, (instruction, _) in enumerate(listed):
        opname = instruction.opname
        jump = instruction.opcode in _JUMPS and isinstance(instruction.argval, int)
        if jump and instruction.argval in index:
            before.setdefault(index[instruction.argval], []).append(number)
        goes_on = not opname.startswith(_END_PREFIXES) and opname not in _ALWAYS_JUMPS
        if goes_on and number + 1 < len(listed):
            before.setdefault(number + 1, []).append(number)
    # ``f_lasti`` can point into an instruction's inline caches (a call's, on 3.11+).
    start = bisect.bisect_right([instruction.offset for instruction, _ in listed], lasti) - 1
    if start < 0:
        return lineno
    seen = {start}
    waiting = list(before.get(start, ()))
    latest: tuple[int, int] | None = None  # (offset, line) of the latest long operation
    while waiting:
        number = waiting.pop()
        if number in seen:
            continue
        seen.add(number)
        instruction, line = listed[number]
        if instruction.opname.startswith(_HANDOVER_PREFIXES):
            continue  # the interpreter was let go of here: what ran before it is not this
        if (
            instruction.opname.startswith(_LONG_PREFIXES)
            and instruction.offset < lasti
            and (latest is None or instruction.offset > latest[0])
        ):
            latest = (instruction.offset, line)
        waiting.extend(before.get(number, ()))
    return latest[1] if latest is not None else lineno


def _in_turn(frame: types.FrameType | None) -> Iterator[types.FrameType]:
    """``frame`` and its callers up to the standard library loop's turn, where there is one:
    what runs the loop (a test runner, an outer test) is not what stalled it."""
    for each in frames.walk(frame):
        if each.f_code is _RUN_ONCE:
            return
        yield each


def _just_started(code: types.CodeType, lasti: int) -> bool:
    """Whether a frame of ``code`` at ``lasti`` has run no instruction of its body yet: at its
    ``RESUME`` (3.11+), or before its first instruction (3.10, where a new frame's ``f_lasti``
    is -1 and its line the ``def``'s)."""
    if lasti < 0:
        return True
    for instruction in dis.get_instructions(code):
        if instruction.opname == "RESUME":
            return lasti <= instruction.offset
    return False


_TEST_WRAPPER = "asynccheck_wrapper"


def _returned_test(frame: types.FrameType | None) -> types.CodeType | None:
    """The test function whose coroutine has just returned (or raised), when the loop thread
    is in the plugin's wrapper around it, finishing the test."""
    try:
        for each in frames.walk(frame):
            code = each.f_code
            if code.co_name == _TEST_WRAPPER and code.co_filename == _RUNNER_FILE:
                function = each.f_locals.get("func")
                if callable(function):
                    function = inspect.unwrap(function)
                test_code = getattr(function, "__code__", None)
                return test_code if isinstance(test_code, types.CodeType) else None
    finally:
        del frame
    return None


#: Where the test wrapper is defined (``_standalone.checked_coroutine_function``): named by
#: path, as importing it from here would point a dependency upwards.
_RUNNER_FILE = os.path.join(frames.PLUGIN_DIR, "_standalone.py")


def runqueue_wait(native_id: int | None) -> int | None:
    """Nanoseconds the thread ``native_id`` of this process has spent runnable but waiting
    for a CPU (Linux's ``/proc/self/task/<id>/schedstat``); ``None`` elsewhere.

    Read with one system call on a file kept open: the watchdog lets go of the interpreter at
    each one, and the loop thread, running on meanwhile, can keep it for a whole long
    operation before giving it back (see ``Watchdog._io``)."""
    global _schedstat
    if native_id is None or not _schedstat:
        return None
    for _ in range(2):
        descriptor = _schedstat_files.get(native_id)
        try:
            if descriptor is None:
                descriptor = _open_schedstat(native_id)
            return int(os.pread(descriptor, 256, 0).split()[1])
        except (OSError, ValueError, IndexError):
            # The thread has ended (and its id may now be another's): opened again once.
            _forget_schedstat(native_id)
    _schedstat = os.path.exists("/proc/self/schedstat")
    return None


def _open_schedstat(native_id: int) -> int:
    if len(_schedstat_files) >= _SCHEDSTAT_FILES:
        _forget_schedstat(next(iter(_schedstat_files)))
    descriptor = _schedstat_files[native_id] = os.open(
        f"/proc/self/task/{native_id}/schedstat", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    )
    return descriptor


def _forget_schedstat(native_id: int) -> None:
    descriptor = _schedstat_files.pop(native_id, None)
    if descriptor is not None:
        with contextlib.suppress(OSError):
            os.close(descriptor)


#: Whether the kernel gives threads' scheduling figures (cleared on the first failure where it
#: does not).
_schedstat = True
#: Thread id -> its open ``schedstat`` file, the fewest that serve: the watchdog's and the
#: loop threads' of the latest tests.
_schedstat_files: dict[int, int] = {}
_SCHEDSTAT_FILES = 8


def asyncio_clock(loop: object) -> bool:
    """Whether ``loop`` is a standard library loop whose clock is asyncio's own method on the
    monotonic clock (so ``_run_once`` tells when each turn began, in real time). Only reads
    attributes, calling nothing of the loop's: the watchdog's thread asks it of the loop it
    looks at."""
    try:
        if not isinstance(loop, asyncio.BaseEventLoop):
            return False
        clock = loop.time
        return (
            getattr(clock, "__self__", None) is loop
            and getattr(clock, "__func__", None) is _ASYNCIO_TIME
            and _ASYNCIO_GLOBALS["time"].monotonic is _monotonic
        )
    except Exception:
        return False


_monotonic = time.monotonic
_ASYNCIO_TIME = asyncio.BaseEventLoop.time
#: What ``BaseEventLoop.time`` reads ``time.monotonic`` from (a test may patch it there).
_ASYNCIO_GLOBALS: dict[str, Any] = _ASYNCIO_TIME.__globals__
