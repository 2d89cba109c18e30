"""Coroutines created and destroyed without ever being awaited.

CPython reports such a coroutine by calling ``warnings._warn_unawaited_coroutine(coro)`` when the
coroutine is destroyed; that function is looked up at every call, so while the checks run the
plugin puts its own in its place. It receives the coroutine itself, so the finding does not
depend on warning filters (``-W error`` turns Python's own warning into an unraisable exception
that lets the test pass) and Python's warning is not printed a second time.

Where the coroutine was created comes from ``cr_origin``: origin tracking is set to one frame
(the creating call, which is the line the user wrote in the common case) while tests run; more
frames would double the cost of every ``await asyncio.sleep(0)``. The finding belongs to the test
whose function created the coroutine when that function is in the origin, so a coroutine created
in test A and kept alive until test B is reported on A; otherwise to the test running when it
was destroyed. A collection of the youngest generation after each test body collects coroutines
held in fresh reference cycles while their test is still the current one, at a cost of
microseconds; older cycles are collected at the session's end and reported under their test.
"""

from __future__ import annotations

import gc
import os
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

from . import frames
from .config import Settings
from .detector import Detector
from .findings import Finding, Kind, Severity
from .session import CheckSession, TestCheck, collect_young_once

FIX = (
    "await it, or run it concurrently with asyncio.create_task(...) / asyncio.gather(...) "
    "and keep a reference to the task until it is done"
)


class UnawaitedDetector(Detector):
    name = "unawaited"

    def __init__(self) -> None:
        self._session: CheckSession | None = None
        self._previous_hook: Callable[[Any], None] | None = None
        self._previous_depth = 0
        #: (absolute file, function name) of each test function that ran -> its node id
        self._test_functions: dict[tuple[str, str], str] = {}

    def session_started(self, session: CheckSession) -> None:
        self._session = session
        self._previous_hook = getattr(warnings, "_warn_unawaited_coroutine", None)
        warnings._warn_unawaited_coroutine = self._destroyed  # type: ignore[attr-defined]

    def test_started(self, test: TestCheck) -> None:
        function = getattr(test.item, "function", None)
        code = getattr(function, "__code__", None)
        if code is not None:
            key = (os.path.abspath(code.co_filename), code.co_name)
            self._test_functions[key] = test.nodeid
        self._previous_depth = sys.get_coroutine_origin_tracking_depth()
        if self._previous_depth < 1:
            sys.set_coroutine_origin_tracking_depth(1)

    def phase_finished(self, test: TestCheck, phase: str) -> None:
        if phase == "call":
            collect_young_once(test)

    def test_finished(self, test: TestCheck) -> None:
        sys.set_coroutine_origin_tracking_depth(self._previous_depth)

    def session_ending(self, session: CheckSession) -> None:
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
        if session is None or (session.current is None and not nodeid):
            self._forward(coro)
            return
        try:
            finding = self._finding(coro, session, sys._getframe(1))
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
        for filename, _line, function in getattr(coro, "cr_origin", None) or ():
            nodeid = self._test_functions.get((os.path.abspath(filename), function))
            if nodeid:
                return nodeid
        return None

    def _finding(
        self, coro: Any, session: CheckSession, destroyed_in: types.FrameType | None
    ) -> Finding:
        name = str(getattr(coro, "__qualname__", None) or getattr(coro, "__name__", "?"))
        short = name.rsplit(".", 1)[-1]
        stack: list[str] = []
        origin = [
            (filename, line, function)
            for filename, line, function in getattr(coro, "cr_origin", None) or ()
            if frames.is_user_file(filename)
        ]
        if origin:
            filename, line, function = origin[0]
        else:
            user = frames.user_frame(frames.walk(destroyed_in))
            filename, line, function = (
                (user.f_code.co_filename, user.f_lineno, user.f_code.co_name)
                if user is not None
                else ("", 0, "")
            )
        dropped = frames.user_frame(frames.walk(destroyed_in))
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


def unawaited_detector(settings: Settings) -> Detector | None:
    if settings.severity(Kind.UNAWAITED) is Severity.OFF:
        return None
    return UnawaitedDetector()
