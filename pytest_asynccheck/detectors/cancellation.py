"""Cancellations a task swallowed (``swallowed-cancel``, Python 3.11+).

A task that was asked to cancel (``task.cancel()``) and then returned normally while nobody
called ``task.uncancel()``: a bare ``except asyncio.CancelledError: return ...``, or an
``except BaseException: continue`` in a consumer loop. Such a task breaks ``asyncio.timeout``
(the timeout never fires), ``TaskGroup`` and shutdown code that waits for its tasks to end
cancelled. The rule is read off the task when it is done: not ``cancelled()``, no exception,
and ``cancelling() > 0``. A task that turned its cancellation into another exception is left
alone. Whatever catches a cancellation it asked for itself uncancels it (``asyncio.timeout``,
``wait_for``, ``TaskGroup``, anyio's cancel scopes and task groups), and a cancellation caught,
cleaned up after and raised again ends the task cancelled: neither is flagged. A parent that
suppresses the ``CancelledError`` of a child it cancelled is not flagged either: the child ended
cancelled, and the parent was never cancelled itself. Never counted: a cancellation that
reached a task suspended on ``asyncio.shield(...)`` (the shielded work goes on, and the task
may wait for it and return its result), and, before Python 3.13, the cancellation a
``TaskGroup`` sends to its parent task for a failing child while the ``async with`` block is
already waiting for the children (that ``TaskGroup`` never takes it back), and one that reached
a task with no frame of the user's code on its stack: a library's own task (anyio's
``BlockingPortal`` call, which catches the cancellation its task group delivers, cancels the
caller's future and returns), whose handling of its cancellation is the library's contract.

How: the task checks (task_factory.py), as they note each task made while a step runs, put
``cancel`` here, bound to a weak reference to the task, on it as the task's own ``cancel``
attribute (the class and its method stay asyncio's; a C task takes instance attributes).
asyncio, ``TaskGroup``, ``timeout`` and anyio all call ``cancel`` by attribute, so the hook sees
every cancellation: one counted while none is pending notes the user line the task is suspended
at (where the cancellation reaches it), the line that called ``cancel()`` and the test running
then, and the first adds a done callback that applies the rule. The test's own task and each
async fixture step's task get the hook for the step, and are judged when the step returns. A
task nobody cancels costs one bound method, made without running Python code. Not checked:
tasks made while no test coroutine runs, tasks made by calling ``asyncio.Task(...)`` directly,
tasks of a factory whose tasks take no attributes, and everything on Python 3.10, which has no
``cancelling()`` (the summary says so unless the kind is off).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import sys
import types
import weakref
from collections.abc import Callable
from typing import Any

from .. import _frames as frames
from .._events import Detector
from .._findings import Finding, Kind, Severity
from .._frames import Site
from .._options import Settings
from .._session import CheckSession, TestCheck, active, in_fixture
from . import task_factory
from .task_findings import FIXTURE_ATTR, created_at

#: The loop's running task, asked at every step: ``asyncio.current_task`` is in C from 3.12; before,
#: a Python function, and its table is read directly.
_current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None] = (
    asyncio.current_task if sys.version_info >= (3, 12) else asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]
)

SUPPORTED = sys.version_info >= (3, 11)
UNSUPPORTED_NOTE = (
    "swallowed-cancel is not checked on Python "
    f"{sys.version_info.major}.{sys.version_info.minor}: it needs Task.cancelling(), new in "
    "Python 3.11 (--asynccheck-swallowed-cancel=off silences this note)"
)
FIX = (
    "re-raise the CancelledError after the cleanup (except asyncio.CancelledError: ...; raise), "
    "catch Exception rather than BaseException, or, if the task really means to go on, call "
    "asyncio.current_task().uncancel() where it catches the cancellation"
)

#: On a task cancelled at least once: its ``CancelNote``.
NOTE_ATTR = "_asynccheck_cancel_note"
#: The done callbacks ``asyncio.shield`` puts on the future it returns: a task waiting on
#: such a future when it is cancelled is waiting on shielded work.
SHIELD_CODES = frozenset(
    const for const in asyncio.shield.__code__.co_consts if isinstance(const, types.CodeType)
)
#: Before Python 3.13, a ``TaskGroup`` whose child fails while its ``async with`` block is
#: already waiting for the children cancels the parent task from here and never uncancels it.
UNRETRACTED_CANCEL: types.CodeType | None = (
    asyncio.TaskGroup._on_task_done.__code__  # type: ignore[attr-defined]
    if (3, 11) <= sys.version_info < (3, 13)
    else None
)


def _reached_at(task: asyncio.Task[Any], caller: types.FrameType) -> Site | None:
    """The line the cancellation reaches ``task`` at: the innermost user frame it is
    suspended in (the calling line when it cancels itself); ``None`` when no frame of the
    user's is on its stack."""
    if task is asyncio.current_task():
        return frames.user_site(caller)
    return frames.site(frames.user_frame(reversed(task.get_stack())))


def _forgiven(task: asyncio.Task[Any], caller: types.FrameType) -> bool:
    """Whether this cancellation is one the task may swallow: it reaches the task on a
    shield, or is a ``TaskGroup``'s that is never taken back (before 3.13)."""
    if caller.f_code is UNRETRACTED_CANCEL and getattr(
        caller.f_locals.get("self"), "_exiting", False
    ):
        return True
    waiter = getattr(task, "_fut_waiter", None)
    callbacks = getattr(waiter, "_callbacks", None) or ()
    return any(getattr(cb, "__code__", None) in SHIELD_CODES for cb, _ in callbacks)


class CancelNote:
    """What the hook noted on one task, made at its first cancellation (a task nobody
    cancels has none)."""

    __slots__ = ("by", "forgiven", "reached", "test", "watched")

    def __init__(self) -> None:
        #: Cancellations the task may swallow (see ``_forgiven``).
        self.forgiven = 0
        #: The counted cancellation asked for while none was pending: where it reached the
        #: task, where ``cancel()`` was called, and the test running then.
        self.reached: Site | None = None
        self.by: Site | None = None
        self.test: TestCheck | None = None
        #: Whether the done callback that judges the task was added.
        self.watched = False

    def judge(self, task: asyncio.Task[Any]) -> None:
        """The done callback of a cancelled task (a step's own task is judged by its step)."""
        test = self.test
        if test is None or not swallowed(task, self.forgiven):
            return
        with contextlib.suppress(Exception):  # never disturb the loop's callbacks
            finding = self.finding(task, test.session.rootpath)
            made_in = getattr(task, FIXTURE_ATTR, None)
            # The fixture that made the task, if any; else the test's, whatever step runs.
            if made_in is not None:
                finding = in_fixture(finding, *made_in)
            else:
                finding = dataclasses.replace(finding, extra={"fixture": ""})
            test.session.report(finding, test.nodeid, test.phase)

    def finding(self, task: asyncio.Task[Any], root: str, coro: str | None = None) -> Finding:
        """``coro``: what the task ran, when not its coroutine (a runner's task that ran a
        test's step)."""
        coro = coro or frames.qualified_name(task.get_coro())
        stack: list[str] = []
        created = created_at(task, root)
        if created is not None:
            stack.append(f"task created at {created[0]}:{created[1]}")
        if self.by is not None:
            stack.append(
                f"cancel() called at {frames.relpath(self.by[0], root)}:{self.by[1]} "
                f"in {self.by[2]}"
            )
        at = self.reached
        if at is None:
            code = getattr(task.get_coro(), "cr_code", None)
            if code is not None:
                at = (code.co_filename, code.co_firstlineno, code.co_name)
        file, line, function = at or ("", 0, "")
        return Finding(
            kind=Kind.SWALLOWED_CANCEL.value,
            message=(
                f"task '{task.get_name()}' running {coro}() was cancelled while suspended here "
                "and returned normally, without uncancel(): the cancellation was swallowed"
            ),
            file=frames.relpath(file, root) if file else "",
            line=line,
            function=function,
            call=f"{coro}()",
            fix=FIX,
            stack=tuple(stack),
        )


def _note_of(task: asyncio.Task[Any]) -> CancelNote | None:
    note: CancelNote | None = getattr(task, NOTE_ATTR, None)
    return note


def cancel(ref: weakref.ref[asyncio.Task[Any]], *args: Any, **kwargs: Any) -> bool:
    """A task's ``cancel``, bound to a weak reference to the task (the task holds it, so a
    strong one would be a cycle): notes the cancellation, then calls the task's own method."""
    __tracebackhide__ = True  # a bad argument's TypeError is the caller's
    task = ref()
    if task is None:  # pragma: no cover - the caller holds the task
        return False
    if not task.done():
        with contextlib.suppress(Exception):  # the cancellation itself must go ahead
            _note(task, sys._getframe(1))
    result: bool = type(task).cancel(task, *args, **kwargs)
    return result


cancel.__qualname__ = "Task.cancel"  # as the bound method's repr names it


def _note(task: asyncio.Task[Any], caller: types.FrameType) -> None:
    note = _note_of(task)
    if note is None:
        note = CancelNote()
        setattr(task, NOTE_ATTR, note)
    if _forgiven(task, caller):
        note.forgiven += 1
        return
    if note.test is not None and task.cancelling() > note.forgiven:  # type: ignore[attr-defined]
        return  # one is pending already: this one reaches the task at the same place
    session = active()
    test = session.current if session is not None else None
    if test is None or test.closed:
        return
    reached = _reached_at(task, caller)
    if reached is None:
        # No line of the user's code was suspended in the task: a library's own task (anyio's
        # portal call, say), whose handling of its cancellation is the library's contract.
        return
    note.test = test
    note.reached = reached
    note.by = frames.user_site(caller)
    step = test.data.get(STEP_KEY)
    if not note.watched and (step is None or step[0] is not task):
        note.watched = True
        task.add_done_callback(note.judge, context=contextvars.Context())


#: The ``cancel`` the task checks put on each task they note, from a weak reference to it:
#: ``cancel`` bound to it (the function's own binding, the cheapest way to make one).
hook: Callable[[weakref.ref[asyncio.Task[Any]]], Callable[..., bool]] = cancel.__get__


def swallowed(task: asyncio.Task[Any], forgiven: int = 0) -> bool:
    """The rule: done, not cancelled, no exception, and more cancellations asked for than
    were taken back (beyond those it may swallow). Reads the exception without
    ``task.exception()``, which would silence asyncio's "Task exception was never retrieved"."""
    return (
        task.done()
        and not task.cancelled()
        and getattr(task, "_exception", None) is None
        and task.cancelling() > forgiven  # type: ignore[attr-defined]
    )


def _test_name(test: TestCheck) -> str:
    return str(getattr(test.item, "originalname", None) or test.item.name)


#: ``TestCheck.data`` key of the step running (steps of one test never nest): its own task,
#: where it runs, and the task's ``cancelling()`` at the step's start.
STEP_KEY = "cancel.step"
StepEntry = tuple["asyncio.Task[Any]", str, int]


class CancelDetector(Detector):
    """Puts the hook in the task factory for the session, and on each test coroutine's own
    task for its step."""

    name = "swallowed-cancel"

    def session_started(self, session: CheckSession) -> None:
        task_factory.CANCEL_HOOK[:] = [hook]

    def session_finished(self, session: CheckSession) -> None:
        task_factory.CANCEL_HOOK.clear()

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        # Run for every test: kept to a few C calls. The hook goes on the step's task whatever
        # it had (the factory's is the same), and off at the step's end.
        task = _current_task(loop) if loop is not None else None
        if task is None:
            return
        try:
            task.cancel = hook(weakref.ref(task))  # type: ignore[method-assign]
        except (AttributeError, TypeError):
            return  # a task type that takes no attributes
        test.data[STEP_KEY] = (task, where, task.cancelling())  # type: ignore[attr-defined]

    def task_exited(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        entry: StepEntry | None = test.data.pop(STEP_KEY, None)
        if entry is None:
            return
        task, entered, cancelling = entry
        # Not contextlib.suppress: this runs for every test, and a try costs nothing.
        try:  # noqa: SIM105
            del task.cancel
        except AttributeError:  # the step deleted it itself
            pass
        if task.cancelling() == cancelling:  # type: ignore[attr-defined]
            return  # nothing cancelled it during the step, or what did took it back
        note = _note_of(task)
        raised = sys.exc_info()[1]
        if note is None or note.test is None or entered != where:
            return
        # A runner's task runs the next steps too: they count from here.
        forgiven, note.forgiven, note.test = note.forgiven, 0, None
        if raised is not None and not isinstance(raised, StopAsyncIteration):
            return  # the step raised (an async generator's last step ends so): not a return
        if task.cancelling() - cancelling > forgiven:  # type: ignore[attr-defined]
            step = where.removeprefix("fixture ") if where != "test" else _test_name(test)
            test.add(note.finding(task, test.session.rootpath, step))


class UnsupportedNote(Detector):
    """On Python 3.10: says in the summary that the kind is not checked."""

    name = "swallowed-cancel"

    def session_started(self, session: CheckSession) -> None:
        session.detectors.disabled.append(UNSUPPORTED_NOTE)


def cancel_detector(settings: Settings) -> Detector | None:
    if settings.severity(Kind.SWALLOWED_CANCEL) is Severity.OFF:
        return None
    return CancelDetector() if SUPPORTED else UnsupportedNote()
