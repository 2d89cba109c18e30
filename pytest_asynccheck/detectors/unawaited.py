"""Coroutines created and destroyed without ever being awaited.

CPython reports such a coroutine by calling ``warnings._warn_unawaited_coroutine(coro)`` when the
coroutine is destroyed; that function is looked up at every call, so while the checks run the
plugin puts its own in its place. It receives the coroutine itself, so the finding does not
depend on warning filters (``-W error`` turns Python's own warning into an unraisable exception
that lets the test pass) and Python's warning is not printed a second time.

Where the coroutine was created: Python records it only while coroutine origin tracking is on,
which costs 0.3 to 1.3 us for every coroutine created (the line number is decoded at each
creation), a tenth of a stream-heavy test's time. So by default the place comes from the
frame that dropped the coroutine: the same line for the usual bug (``asyncio.sleep(1)`` without
``await``), and otherwise the line in that function that calls the coroutine function without
awaiting it (``tasks = [fetch(u) for u in urls]`` dropped at the function's end), else where it
was dropped. Only frames inside the loop's current turn count as dropping it: whatever runs the
loop did not. A coroutine dropped outside the user's code (by a loop callback such as
``loop.call_soon(fetch, 1)``, by a worker thread of ``asyncio.to_thread(fetch)`` or
``run_in_executor``, or by the test's coroutine returning) is placed, at the drop, by the lines
the running test's tasks are paused at (innermost first), then by the test function's code: the
last line up to there that names the coroutine function without awaiting a call of it. The
finding belongs to the test running when the coroutine was destroyed.

``--asynccheck-coroutine-origin`` (ini ``asynccheck_coroutine_origin``) sets origin tracking to
one frame while tests run: the creating call, exact wherever the coroutine is dropped, and a
coroutine created by test A's function and kept alive until test B is reported on A.

A coroutine dropped inside a reference cycle is destroyed when the garbage collector frees the
cycle: usually during the same test, sometimes during the next one, and at the latest by the
full collection at the session's end (made only while a coroutine that was never started still
exists: none other can be reported). Where it was dropped is then unknown, so the finding
names the coroutine's function and says so; one freed between tests, or by that last
collection, is reported after the run. Collecting after every test body would place it exactly
but costs about 20 us per test, so only ``--asynccheck-coroutine-origin`` does that.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import linecache
import re
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from .. import _frames as frames
from .._events import Detector
from .._findings import Finding, Kind, Severity
from .._options import Settings
from .._session import CheckSession, TestCheck, collect_young_once

FIX = (
    "await it, or run it concurrently with asyncio.create_task(...) / asyncio.gather(...) "
    "and keep a reference to the task until it is done"
)


CYCLE_NOTE = (
    "freed by the garbage collector from a reference cycle, so where it was dropped is not "
    "known: --asynccheck-coroutine-origin shows the line that created it"
)


class UnawaitedDetector(Detector):
    """Reports each never-awaited coroutine as it is destroyed; nothing to do per test."""

    name = "unawaited"
    phases: tuple[str, ...] = ("call",)

    def __init__(self) -> None:
        self._session: CheckSession | None = None
        self._previous_hook: Callable[[Any], None] | None = None

    def session_started(self, session: CheckSession) -> None:
        self._session = session
        self._previous_hook = getattr(warnings, "_warn_unawaited_coroutine", None)
        warnings._warn_unawaited_coroutine = self._destroyed  # type: ignore[attr-defined]

    def session_ending(self, session: CheckSession) -> None:
        if _unstarted_coroutines():
            gc.collect()

    def session_finished(self, session: CheckSession) -> None:
        if getattr(warnings, "_warn_unawaited_coroutine", None) == self._destroyed:
            if self._previous_hook is None:
                del warnings._warn_unawaited_coroutine  # type: ignore[attr-defined]
            else:
                warnings._warn_unawaited_coroutine = self._previous_hook  # type: ignore[attr-defined]
        self._session = None

    def _destroyed(self, coro: Any) -> None:
        session = self._session
        nodeid = self._created_by_a_test(coro) if session is not None else None
        # Freed by the collector between tests (or by the sweep at the end), a coroutine was
        # most likely dropped by a test that ran: reported after the run rather than lost.
        # Freed by the garbage collector: it was in a reference cycle.
        in_cycle = session is not None and threading.get_ident() in session.collector.running
        if session is None or (
            session.current is None and not nodeid and not (in_cycle and session.tests_checked)
        ):
            self._forward(coro)
            return
        try:
            finding = self._finding(coro, session, None if in_cycle else sys._getframe(1))
            if nodeid and (session.current is None or session.current.nodeid != nodeid):
                session.report(finding, nodeid=nodeid, phase="call")
            else:
                session.report(finding)
        except Exception:
            # Never lose the report: fall back to Python's own warning.
            self._forward(coro)

    def _forward(self, coro: Any) -> None:
        if self._previous_hook is not None:
            self._previous_hook(coro)

    def _created_by_a_test(self, coro: Any) -> str | None:
        """The node id of the test whose function created ``coro``: known only where
        coroutines record their origin."""
        return None

    def _finding(
        self, coro: Any, session: CheckSession, destroyed_in: types.FrameType | None
    ) -> Finding:
        name = frames.qualified_name(coro, default="?")
        short = name.rsplit(".", 1)[-1]
        stack: list[str] = []
        origin = [
            (filename, line, function)
            for filename, line, function in getattr(coro, "cr_origin", None) or ()
            if frames.is_user_file(filename)
        ]
        dropped = frames.user_frame(_inside_the_loop(destroyed_in)) if destroyed_in else None
        code = getattr(coro, "cr_code", None)
        if origin:
            filename, line, function = origin[0]
        elif dropped is not None:
            filename, function = dropped.f_code.co_filename, dropped.f_code.co_name
            line = creating_line(dropped.f_code, short, dropped.f_lineno) or dropped.f_lineno
        elif (found := _place_in_test(session.current, short)) is not None:
            filename, line, function = found
        elif destroyed_in is None and isinstance(code, types.CodeType):
            # Freed from a reference cycle: the code that dropped it is long gone.
            filename, line, function = code.co_filename, code.co_firstlineno, code.co_name
            stack.append(CYCLE_NOTE)
        else:
            filename, line, function = "", 0, ""
        if dropped is not None and (dropped.f_code.co_filename, dropped.f_lineno) != (
            filename,
            line,
        ):
            stack.append(f"dropped at {frames.describe(dropped, session.rootpath)}")
        return Finding(
            kind=Kind.UNAWAITED.value,
            message=f"coroutine '{short}' was never awaited",
            file=frames.relpath(filename, session.rootpath) if filename else "",
            line=line,
            function=function,
            call=f"{short}()",
            fix=FIX,
            stack=tuple(stack),
        )


_RUN_ONCE = asyncio.BaseEventLoop._run_once.__code__  # type: ignore[attr-defined]


def _inside_the_loop(frame: types.FrameType) -> Iterator[types.FrameType]:
    """``frame`` and its callers up to the event loop's turn: whatever called the loop (a
    test runner, an outer test) did not drop a coroutine that the loop's callback dropped."""
    for each in frames.walk(frame):
        if each.f_code is _RUN_ONCE:
            return
        yield each


def _place_in_test(test: TestCheck | None, name: str) -> tuple[str, int, str] | None:
    """Where the running ``test`` most likely created a coroutine of function ``name`` (or
    handed the function over: ``loop.call_soon(fetch, 1)``, ``asyncio.to_thread(fetch)``)
    that was dropped outside the user's code: by a loop callback, a worker thread, or the
    test's coroutine returning. First the lines its tasks are suspended at, innermost first,
    then the test function's own code."""
    if test is None:
        return None
    for frame in _suspended_user_frames(test.loop):
        line = creating_line(frame.f_code, name, frame.f_lineno)
        if line is not None:
            return frame.f_code.co_filename, line, frame.f_code.co_name
    function = inspect.unwrap(getattr(test.item, "function", None) or (lambda: None))
    code = getattr(function, "__code__", None)
    if isinstance(code, types.CodeType) and frames.is_user_file(code.co_filename):
        line = creating_line(code, name, sys.maxsize)
        if line is not None:
            return code.co_filename, line, code.co_name
    return None


def _suspended_user_frames(loop: Any) -> list[types.FrameType]:
    """The user frames of ``loop``'s unfinished tasks, each task's innermost first: each is
    paused at (or running) the line it has reached."""
    if not isinstance(loop, asyncio.AbstractEventLoop):
        return []
    try:
        tasks = list(asyncio.all_tasks(loop))
    except RuntimeError:  # pragma: no cover - the set changed while another thread copied it
        return []
    found: list[types.FrameType] = []
    for task in tasks:
        chain: list[types.FrameType] = []
        awaited: Any = task.get_coro()
        for _ in range(64):  # a bounded walk: an awaitable could await itself
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is None:
                break
            if frames.is_user_file(frame.f_code.co_filename):
                chain.append(frame)
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        found.extend(reversed(chain))
    return found


def _unstarted_coroutines() -> bool:
    """Whether a coroutine that was never started exists anywhere: only such a coroutine is
    reported when it is destroyed, so without one the full collection at the session's end
    (the run's dearest single step on a large suite's heap) would find nothing. Looking for
    coroutines among the heap's objects is done in C, and costs a third of that collection:
    the set of the objects' types, as telling types apart by hash is cheaper than by
    comparison."""
    objects = gc.get_objects()  # freed with this frame, before any collection
    if types.CoroutineType not in set(map(type, objects)):
        return False
    return any(
        inspect.getcoroutinestate(o) == inspect.CORO_CREATED
        for o in objects
        if type(o) is types.CoroutineType
    )


class OriginTrackingDetector(UnawaitedDetector):
    """``--asynccheck-coroutine-origin``: coroutines record where they were created while each
    test runs, and the young generations are collected after each test body."""

    def __init__(self) -> None:
        super().__init__()
        self._previous_depth = 0
        #: (absolute file, function name) of each test function that ran -> its node id
        self._test_functions: dict[tuple[str, str], str] = {}

    def test_started(self, test: TestCheck) -> None:
        function = getattr(test.item, "function", None)
        code = getattr(function, "__code__", None)
        if code is not None:
            key = (frames.abspath(code.co_filename), code.co_name)
            self._test_functions[key] = test.nodeid
        self._previous_depth = sys.get_coroutine_origin_tracking_depth()
        if self._previous_depth < 1:
            sys.set_coroutine_origin_tracking_depth(1)

    def phase_finished(self, test: TestCheck, phase: str) -> None:
        collect_young_once(test)

    def test_finished(self, test: TestCheck) -> None:
        sys.set_coroutine_origin_tracking_depth(self._previous_depth)

    def _created_by_a_test(self, coro: Any) -> str | None:
        for filename, _line, function in getattr(coro, "cr_origin", None) or ():
            nodeid = self._test_functions.get((frames.abspath(filename), function))
            if nodeid:
                return nodeid
        return None


_LOADS = frozenset(
    {"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FAST", "LOAD_DEREF", "LOAD_ATTR", "LOAD_METHOD"}
)
_COMPREHENSIONS = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})


def creating_line(code: types.CodeType, name: str, dropped_at: int) -> int | None:
    """The line of ``code`` that most likely created a coroutine of function ``name`` which
    was dropped at line ``dropped_at``: a call of ``name`` that is not awaited, the last one up
    to the drop (the first one when all come after it). Comprehensions inside count too."""
    lines = sorted(_unawaited_calls(code, name))
    before = [line for line in lines if line <= dropped_at]
    if before:
        return before[-1]
    return lines[0] if lines else None


def _unawaited_calls(code: types.CodeType, name: str) -> set[int]:
    found: set[int] = set()
    awaited = re.compile(rf"\bawait\b[^=;]*\b{re.escape(name)}\s*\(")
    for instruction, line in frames.instruction_lines(code):
        if instruction.opname in _LOADS and instruction.argval == name:
            text = linecache.getline(code.co_filename, line)
            if not awaited.search(text):
                found.add(line)
    for const in code.co_consts:
        if isinstance(const, types.CodeType) and const.co_name in _COMPREHENSIONS:
            found |= _unawaited_calls(const, name)
    return found


def unawaited_detector(settings: Settings) -> Detector | None:
    if settings.severity(Kind.UNAWAITED) is Severity.OFF:
        return None
    return OriginTrackingDetector() if settings.coroutine_origin else UnawaitedDetector()
