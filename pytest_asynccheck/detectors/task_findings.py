"""The findings about a test's tasks: a ``leaked-task`` still pending when the test returned or
its fixture was torn down, a ``never-retrieved`` exception (or a task destroyed while pending).

Each names the line of the user's code that made the task (noted on the task by the task
factory, or its coroutine's ``cr_origin`` when origin tracking is on), else, for a task made by
the loop or a library (a server's connection handler), where its coroutine function is
defined; a leak says where the task is suspended, a lost exception the user's line that raised
it. A finding about a task a fixture made is that fixture's (``in_fixture``).

Limits: only frames of the user's files are named; a task made in library code with no user
frame on the stack and a coroutine defined outside the user's files has no location of its
own, and the test's check places it at the test's (or fixture's) definition.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .. import _frames as frames
from .._findings import Finding, Kind
from .._frames import Site
from .._session import in_fixture

LEAK_FIX = (
    "await the task (or asyncio.gather the tasks) before the test returns, or cancel it and "
    "await the cancellation; a task meant to outlive the test belongs in a fixture"
)
LOST_FIX = (
    "await the task (or gather it) so its exception is raised, or add a done callback that "
    "calls task.exception()"
)
#: A fixture's task is the fixture's to stop: the test cannot await it.
FIXTURE_LEAK_FIX = (
    "cancel the task and await it in the fixture's teardown (after its yield), or await it "
    "before the fixture returns"
)
CANCELLED_NOTE = "cancelled and awaited where it was found (asynccheck_cancel_leaked)"
#: Which fixture made a task, and in which step, on the task itself.
FIXTURE_ATTR = "_asynccheck_fixture"

#: Where the task factory notes a task's creation, on the task itself: a table keyed by the
#: task would lose it when the collector frees a task from a cycle, as the collector clears
#: weak references before the task's finalizer reports its lost exception.
SITE_ATTR = "_asynccheck_created_at"


def created_at(task: asyncio.Task[Any], rootpath: str) -> Site | None:
    for filename, line, function in getattr(task.get_coro(), "cr_origin", None) or ():
        if frames.is_user_file(filename):
            return frames.relpath(filename, rootpath), line, function
    site = getattr(task, SITE_ATTR, None)
    if site is not None:
        filename, line, function = site
        return frames.relpath(filename, rootpath), line, function
    return None


def _defined_at(task: asyncio.Task[Any], rootpath: str) -> Site | None:
    """Where the task's coroutine function is defined, for a task no user line made (a
    server's connection handler, made by asyncio's streams): the user's code it runs."""
    code = getattr(task.get_coro(), "cr_code", None)
    if code is None or not frames.is_user_file(code.co_filename):
        return None
    return frames.relpath(code.co_filename, rootpath), code.co_firstlineno, code.co_name


def suspended_at(task: asyncio.Task[Any], rootpath: str) -> str:
    stack = task.get_stack()
    if not stack:
        return ""
    user = [f for f in stack if frames.is_user_file(f.f_code.co_filename)]
    return frames.describe((user or stack)[-1], rootpath)


def leak_finding(
    task: asyncio.Task[Any], when: str, root: str, cancelled: bool, fix: str = LEAK_FIX
) -> Finding:
    """``leaked-task``: ``task`` was still pending ``when`` (the test returned, a fixture was
    torn down); ``cancelled``: it is being cancelled (``asynccheck_cancel_leaked``)."""
    coro = frames.qualified_name(task.get_coro())
    created = created_at(task, root)
    suspended = suspended_at(task, root)
    stack = [f"suspended at {suspended}"] if suspended else []
    if created is None:
        created = _defined_at(task, root)
        if created is not None:
            stack.insert(0, "made by the event loop or a library, not by a line of yours")
    if cancelled:
        stack.append(CANCELLED_NOTE)
    file, line, function = created or ("", 0, "")
    return _owned(
        task,
        kind=Kind.LEAKED_TASK.value,
        message=(f"task '{task.get_name()}' running {coro}() was still pending when {when}"),
        file=file,
        line=line,
        function=function,
        call=f"{coro}()",
        fix=fix,
        stack=tuple(stack),
    )


def lost_finding(task: asyncio.Task[Any], context: dict[str, Any], root: str) -> Finding:
    """``never-retrieved``: ``task`` failed and nobody retrieved its exception, or was
    destroyed while pending, as the loop's exception handler was told in ``context``."""
    exc = context.get("exception")
    coro = frames.qualified_name(task.get_coro())
    created = created_at(task, root)
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
    return _owned(
        task,
        kind=Kind.NEVER_RETRIEVED.value,
        message=message,
        file=where[0],
        line=where[1],
        function=where[2],
        call=f"{coro}()",
        fix=LOST_FIX,
        stack=tuple(stack),
    )


def _owned(task: asyncio.Task[Any], **fields: Any) -> Finding:
    """A finding about ``task``, named as its fixture's when a fixture made it, and as the
    test's (whatever fixture step runs when it is found) otherwise."""
    made_in = getattr(task, FIXTURE_ATTR, None)
    if made_in is not None:
        return in_fixture(Finding(**fields), *made_in)
    return Finding(**fields, extra={"fixture": ""})
