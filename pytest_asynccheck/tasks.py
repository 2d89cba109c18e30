"""Tasks a test leaves behind: still pending when the test returns (``leaked-task``), or failed
with an exception nobody retrieved, or destroyed while pending (``never-retrieved``).

While the test body runs, the plugin puts a task factory on the loop, in front of the factory
the loop already had, if any. It sees each task the body makes and notes, on the task, the
first user frame that made it: a few microseconds per task, where tracking every coroutine's
origin would cost that per coroutine. Leaks are those tasks that are not done when the body
returns, so tasks of fixtures, of any scope, are never the test's. A task made by calling
``asyncio.Task(...)`` directly bypasses any factory and is not checked for leaks.

Lost exceptions reach the loop's ``call_exception_handler`` when the task is destroyed. For the
test's duration the plugin puts a function of its own in front of that method, on the loop
instance: it records the finding, then calls the loop's method with the same context, which
runs whatever handler is set at that moment (anyio's, one the test sets) or asyncio's default
handler, so every handler and log line ("Task exception was never retrieved") is as it would be
without the plugin. The loop's handler itself is never replaced, so ``get_exception_handler``
and ``set_exception_handler`` behave as without the plugin. A loop whose class takes no
instance attributes is not checked for lost exceptions. Two other checks ride on these hooks:
the factory makes its tasks of ``TASK_TYPE`` (the swallowed-cancel check's ``Task`` subclass),
and every context the handler sees also goes to the functions in ``HANDLER_OBSERVERS``
(libraries' "Unclosed client session" reports).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import weakref
from collections.abc import Callable
from typing import Any

from . import _clock, frames
from .config import Settings
from .detector import Detector
from .findings import Finding, Kind, Severity
from .session import CheckSession, TestCheck, collect_young_once

LEAK_FIX = (
    "await the task (or asyncio.gather the tasks) before the test returns, or cancel it and "
    "await the cancellation; a task meant to outlive the test belongs in a fixture"
)
LOST_FIX = (
    "await the task (or gather it) so its exception is raised, or add a done callback that "
    "calls task.exception()"
)
LOST_MESSAGES = ("Task exception was never retrieved", "Task was destroyed but it is pending!")

CallExceptionHandler = Callable[[dict[str, Any]], object]
#: Functions ``(test, context)`` that see every context a test's loop passes to its exception
#: handler while the test body runs; other detectors add theirs for the session.
HANDLER_OBSERVERS: list[Callable[[TestCheck, dict[str, Any]], None]] = []
#: The class the factory makes tasks of when the loop had no factory of its own (the
#: swallowed-cancel check puts its ``Task`` subclass here for the session).
TASK_TYPE: list[type[asyncio.Task[Any]]] = [asyncio.Task]


def _name(coro: Any) -> str:
    name = getattr(coro, "__qualname__", None) or getattr(coro, "__name__", None)
    return str(name or type(coro).__name__)


Site = tuple[str, int, str]
#: Where the task factory notes a task's creation, on the task itself: a table keyed by the
#: task would lose it when the collector frees a task from a cycle, as the collector clears
#: weak references before the task's finalizer reports its lost exception.
SITE_ATTR = "_asynccheck_created_at"
#: The tasks the factory made for a test, to tell whether any may still wait for the collector.
Made = list["weakref.ref[asyncio.Task[Any]]"]


def _created_at(task: asyncio.Task[Any], rootpath: str) -> Site | None:
    for filename, line, function in getattr(task.get_coro(), "cr_origin", None) or ():
        if frames.is_user_file(filename):
            return frames.relpath(filename, rootpath), line, function
    site = getattr(task, SITE_ATTR, None)
    if site is not None:
        filename, line, function = site
        return frames.relpath(filename, rootpath), line, function
    return None


def _noting_factory(
    made: Made, inner: Callable[..., asyncio.Task[Any]] | None
) -> Callable[..., asyncio.Task[Any]]:
    """A task factory that notes each task and where it was made, in front of ``inner``, the
    factory the loop had (``None``: the plain ``asyncio.Task``)."""

    def asynccheck_task_factory(
        loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        if inner is None:
            task = TASK_TYPE[0](coro, loop=loop, **kwargs)
        else:
            task = inner(loop, coro, **kwargs)
        try:
            made.append(weakref.ref(task))
            user = frames.user_frame(frames.walk(sys._getframe(1)))
            if user is not None:
                code = user.f_code
                setattr(task, SITE_ATTR, (code.co_filename, user.f_lineno, code.co_name))
        except (TypeError, AttributeError):
            pass  # another factory's task type that takes no weak reference or attribute
        return task

    return asynccheck_task_factory


def _may_hold_lost_tasks(test: TestCheck) -> bool:
    """Whether a task the test made is still alive when its body returns, and so may wait in
    a reference cycle for the collector. Most tests' tasks are freed as they finish, and then
    the collection is not needed."""
    return bool(test.data.get("tasks.alive"))


def _defined_at(task: asyncio.Task[Any], rootpath: str) -> Site | None:
    """Where the task's coroutine function is defined, for a task no user line made (a
    server's connection handler, made by asyncio's streams): the user's code it runs."""
    code = getattr(task.get_coro(), "cr_code", None)
    if code is None or not frames.is_user_file(code.co_filename):
        return None
    return frames.relpath(code.co_filename, rootpath), code.co_firstlineno, code.co_name


def _suspended_at(task: asyncio.Task[Any], rootpath: str) -> str:
    stack = task.get_stack()
    if not stack:
        return ""
    user = [f for f in stack if frames.is_user_file(f.f_code.co_filename)]
    return frames.describe((user or stack)[-1], rootpath)


class TaskDetector(Detector):
    name = "tasks"
    phases: tuple[str, ...] = ("call",)

    def __init__(self, leaks: bool, lost: bool) -> None:
        self.leaks = leaks
        self.lost = lost
        self._session: CheckSession | None = None

    def session_started(self, session: CheckSession) -> None:
        self._session = session

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if loop is None or where != "test":
            return
        inner: Any = loop.get_task_factory()
        made: Made = []
        factory = _noting_factory(made, inner)
        test.data["tasks.made"] = made
        test.data["tasks.factory"] = (loop, factory, inner)
        loop.set_task_factory(factory)
        if self.lost and "tasks.handler" not in test.data:
            forward = loop.call_exception_handler
            # One the user put on the instance (a mock, say) is put back when the test ends.
            own = forward if _clock.set_on_instance(loop, "call_exception_handler") else None
            reporting = self._reporting(test, forward)
            try:
                loop.call_exception_handler = reporting  # type: ignore[method-assign, assignment]
            except AttributeError:
                return  # a loop class without instance attributes
            test.data["tasks.handler"] = (loop, reporting, own)

    def task_exited(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if where != "test":
            return
        self._remove_factory(test)
        made: Made | None = test.data.pop("tasks.made", None)
        if not made:
            return
        tasks = [task for ref in made if (task := ref()) is not None]
        if tasks:
            test.data["tasks.alive"] = True
        if not self.leaks:
            return
        current = asyncio.current_task()
        for task in tasks:
            if task is not current and not task.done():
                test.add(self._leak(task))

    def _remove_factory(self, test: TestCheck) -> None:
        saved = test.data.pop("tasks.factory", None)
        if saved is not None:
            loop, factory, inner = saved
            if loop.get_task_factory() is factory:  # unless the test set its own since
                loop.set_task_factory(inner)

    def phase_finished(self, test: TestCheck, phase: str) -> None:
        if phase == "call" and "tasks.handler" in test.data and _may_hold_lost_tasks(test):
            collect_young_once(test)  # a failed task nobody holds is destroyed now, in its test

    def test_finished(self, test: TestCheck) -> None:
        if "tasks.factory" in test.data:  # the body did not return (cancelled, say)
            self._remove_factory(test)
            test.data.pop("tasks.made", None)
        saved = test.data.pop("tasks.handler", None)
        if saved is not None:
            loop, reporting, own = saved
            # Unless the test put its own function there since; the method is looked up
            # without reading the loop's __dict__, which would slow every attribute read on the
            # loop for the rest of its life.
            if getattr(loop, "call_exception_handler", None) is reporting:
                if own is None:
                    del loop.call_exception_handler
                else:
                    loop.call_exception_handler = own

    def _reporting(
        self, test: TestCheck, call_exception_handler: CallExceptionHandler
    ) -> CallExceptionHandler:
        """The loop's ``call_exception_handler``, reporting lost task exceptions first."""

        def asynccheck_call_exception_handler(context: dict[str, Any]) -> object:
            task = context.get("task") or context.get("future")
            if (
                context.get("message") in LOST_MESSAGES
                and isinstance(task, asyncio.Task)
                and "tasks.handler" in test.data  # not once the test is over
            ):
                with contextlib.suppress(Exception):  # the loop's handler must still run
                    test.add(self._lost(task, context))
            if HANDLER_OBSERVERS and "tasks.handler" in test.data:
                # Other checks read the same reports (libraries' "Unclosed client session").
                for observe in HANDLER_OBSERVERS:
                    with contextlib.suppress(Exception):
                        observe(test, context)
            return call_exception_handler(context)

        return asynccheck_call_exception_handler

    def _rootpath(self) -> str:
        return self._session.rootpath if self._session is not None else ""

    def _leak(self, task: asyncio.Task[Any]) -> Finding:
        root = self._rootpath()
        coro = _name(task.get_coro())
        created = _created_at(task, root)
        suspended = _suspended_at(task, root)
        stack = [f"suspended at {suspended}"] if suspended else []
        if created is None:
            created = _defined_at(task, root)
            if created is not None:
                stack.insert(0, "made by the event loop or a library, not by a line of yours")
        file, line, function = created or ("", 0, "")
        return Finding(
            kind=Kind.LEAKED_TASK.value,
            message=(
                f"task '{task.get_name()}' running {coro}() was still pending when the test "
                "returned"
            ),
            file=file,
            line=line,
            function=function,
            call=f"{coro}()",
            fix=LEAK_FIX,
            stack=tuple(stack),
        )

    def _lost(self, task: asyncio.Task[Any], context: dict[str, Any]) -> Finding:
        root = self._rootpath()
        exc = context.get("exception")
        coro = _name(task.get_coro())
        created = _created_at(task, root)
        stack: list[str] = []
        if created is not None:
            stack.append(f"task created at {created[0]}:{created[1]} in {created[2]}")
        if exc is not None:
            tb = exc.__traceback__
            raised = None
            while tb is not None:
                if frames.is_user_file(tb.tb_frame.f_code.co_filename):
                    raised = tb
                tb = tb.tb_next
            where = (
                (
                    frames.relpath(raised.tb_frame.f_code.co_filename, root),
                    raised.tb_lineno,
                    raised.tb_frame.f_code.co_name,
                )
                if raised is not None
                else created or _defined_at(task, root) or ("", 0, "")
            )
            message = (
                f"task '{task.get_name()}' running {coro}() raised {type(exc).__name__}: {exc}, "
                "and the exception was never retrieved"
            )
        else:
            where = created or _defined_at(task, root) or ("", 0, "")
            message = f"task '{task.get_name()}' running {coro}() was destroyed while pending"
        return Finding(
            kind=Kind.NEVER_RETRIEVED.value,
            message=message,
            file=where[0],
            line=where[1],
            function=where[2],
            call=f"{coro}()",
            fix=LOST_FIX,
            stack=tuple(stack),
        )


def task_detector(settings: Settings) -> Detector | None:
    leaks = settings.severity(Kind.LEAKED_TASK) is not Severity.OFF
    lost = settings.severity(Kind.NEVER_RETRIEVED) is not Severity.OFF
    return TaskDetector(leaks, lost) if leaks or lost else None
