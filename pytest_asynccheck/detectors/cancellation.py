"""Cancellations a task swallowed (``swallowed-cancel``, Python 3.11+).

A task that was asked to cancel (``task.cancel()``) and then finished without ending
cancelled (it returned a value, or raised another exception) while nobody called
``task.uncancel()``: a bare ``except asyncio.CancelledError: return``, or an
``except BaseException: continue`` in a consumer loop. Such a task breaks ``asyncio.timeout``
(the timeout never fires), ``TaskGroup`` and shutdown code that waits for its tasks to end
cancelled. The rule is read off the task when it completes: ``task.cancelling() > 0`` and not
``task.cancelled()``. Whatever catches a cancellation it asked for itself uncancels it
(``asyncio.timeout``, ``wait_for``, ``TaskGroup``, anyio's cancel scopes and task groups), and a
cancellation caught, cleaned up after and raised again ends the task cancelled: neither is
flagged. A parent that suppresses the ``CancelledError`` of a child it cancelled is not flagged
either: the child ended cancelled, and the parent was never cancelled itself.

The task factory the plugin puts on the loop while the test body runs (see tasks.py; this
check puts one of its own there when the task checks are off) makes each task an instance of a
``Task`` subclass, named ``Task`` as asyncio shows it, whose ``cancel()`` notes, the first time,
the user line the task was suspended at (where the cancellation will reach it) and the test
running then, and adds a done callback that applies the rule. Tasks nobody cancels cost nothing
more than being of a subclass. Not checked: tasks made while another task factory is on the
loop (one the test or a library set), tasks made by calling ``asyncio.Task(...)`` directly, the
test's own task, and everything on Python 3.10, which has no ``cancelling()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

from .. import _frames as frames
from .._events import Detector
from .._findings import Finding, Kind, Severity
from .._options import Settings
from .._session import CheckSession, TestCheck, active
from . import tasks

SUPPORTED = sys.version_info >= (3, 11)

FIX = (
    "re-raise the CancelledError after the cleanup (except asyncio.CancelledError: ...; raise), "
    "catch Exception rather than BaseException, or, if the task really means to go on, call "
    "asyncio.current_task().uncancel() where it catches the cancellation"
)

Site = tuple[str, int, str]
#: On a cancelled task: the check of the test that was running when it was first cancelled.
TEST_ATTR = "_asynccheck_cancel_test"
#: On a task cancelled at least once: the first cancellation's target, the user line the task
#: was suspended at (``None`` when no user frame was on its stack).
CANCELLED_AT_ATTR = "_asynccheck_cancelled_at"
#: Where the leak detector notes a task's creation (see tasks.py).
CREATED_AT_ATTR = "_asynccheck_created_at"
#: On a task: how many of its cancellations a ``TaskGroup`` asked for and will not take back.
#: Before Python 3.13, a ``TaskGroup`` whose child fails while its ``async with`` block is
#: already waiting for the children cancels the parent task and never uncancels it.
UNRETRACTED_ATTR = "_asynccheck_unretracted"
UNRETRACTED_BY = (
    (os.path.join("asyncio", "taskgroups.py"), "_on_task_done")
    if sys.version_info < (3, 13)
    else None
)


def _suspension_point(task: asyncio.Task[Any]) -> Site | None:
    if task is asyncio.current_task():
        frame = frames.user_frame(frames.walk(sys._getframe(2)))
    else:
        stack = task.get_stack()
        frame = frames.user_frame(reversed(stack))
    if frame is None:
        return None
    return frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name


def _name(coro: Any) -> str:
    name = getattr(coro, "__qualname__", None) or getattr(coro, "__name__", None)
    return str(name or type(coro).__name__)


class CancelNotingTask(asyncio.Task):  # type: ignore[type-arg]
    """A task that notes where its first cancellation reached it, and checks at its end.

    Named ``Task`` where asyncio shows the class's name (its repr, "Task exception was never
    retrieved"), so every log line reads as without the plugin."""

    def cancel(self, msg: Any = None) -> bool:
        if UNRETRACTED_BY is not None and not self.done():
            caller = sys._getframe(1).f_code
            if caller.co_name == UNRETRACTED_BY[1] and caller.co_filename.endswith(
                UNRETRACTED_BY[0]
            ):
                setattr(self, UNRETRACTED_ATTR, getattr(self, UNRETRACTED_ATTR, 0) + 1)
                return super().cancel(msg)
        if not self.done() and not hasattr(self, CANCELLED_AT_ATTR):
            try:
                session = active()
                setattr(self, TEST_ATTR, session.current if session is not None else None)
                setattr(self, CANCELLED_AT_ATTR, _suspension_point(self))
                self.add_done_callback(_check_swallowed)
            except Exception:  # the cancellation itself must go ahead
                pass
        return super().cancel(msg)


CancelNotingTask.__name__ = CancelNotingTask.__qualname__ = "Task"


def _check_swallowed(task: Any) -> None:
    if task.cancelled() or task.cancelling() <= getattr(task, UNRETRACTED_ATTR, 0):
        return
    test: TestCheck | None = getattr(task, TEST_ATTR, None)
    if test is None:
        return
    with contextlib.suppress(Exception):  # never disturb the loop's callbacks
        test.session.report(_finding(task, test.session.rootpath), test.nodeid, test.phase)


def _finding(task: asyncio.Task[Any], root: str) -> Finding:
    coro = _name(task.get_coro())
    # Read without task.exception(), which would mark the exception retrieved and silence
    # asyncio's "Task exception was never retrieved".
    exc: BaseException | None = getattr(task, "_exception", None)
    outcome = (
        f"raised {type(exc).__name__}: {exc} instead" if exc is not None else "returned normally"
    )
    stack: list[str] = []
    created = getattr(task, CREATED_AT_ATTR, None)
    if created is not None:
        stack.append(f"task created at {frames.relpath(created[0], root)}:{created[1]}")
    at: Site | None = getattr(task, CANCELLED_AT_ATTR, None)
    if at is None:
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None:
            at = (code.co_filename, code.co_firstlineno, code.co_name)
    file, line, function = at or ("", 0, "")
    return Finding(
        kind=Kind.SWALLOWED_CANCEL.value,
        message=(
            f"task '{task.get_name()}' running {coro}() was cancelled while suspended here and "
            f"{outcome}, without uncancel(): the cancellation was swallowed"
        ),
        file=frames.relpath(file, root) if file else "",
        line=line,
        function=function,
        call=f"{coro}()",
        fix=FIX,
        stack=tuple(stack),
    )


def cancel_noting_factory(
    loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
) -> asyncio.Task[Any]:
    return CancelNotingTask(coro, loop=loop, **kwargs)


class CancelDetector(Detector):
    """Has the leak detector's task factory make its tasks of the cancel-noting class."""

    name = "swallowed-cancel"

    def session_started(self, session: CheckSession) -> None:
        tasks.TASK_TYPE[0] = CancelNotingTask

    def session_finished(self, session: CheckSession) -> None:
        tasks.TASK_TYPE[0] = asyncio.Task


class OwnFactoryCancelDetector(Detector):
    """Without the leak detector (both its kinds off): puts a cancel-noting task factory on
    the test's loop for the test body."""

    name = "swallowed-cancel"

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if loop is None or where != "test" or loop.get_task_factory() is not None:
            return
        loop.set_task_factory(cancel_noting_factory)
        test.data["cancel.factory"] = loop

    def task_exited(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if where == "test":
            self.test_finished(test)

    def test_finished(self, test: TestCheck) -> None:
        loop = test.data.pop("cancel.factory", None)
        if loop is not None and loop.get_task_factory() is cancel_noting_factory:
            loop.set_task_factory(None)


def cancel_detector(settings: Settings) -> Detector | None:
    if not SUPPORTED or settings.severity(Kind.SWALLOWED_CANCEL) is Severity.OFF:
        return None
    if tasks.task_detector(settings) is None:
        return OwnFactoryCancelDetector()
    return CancelDetector()
