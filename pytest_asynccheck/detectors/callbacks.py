"""Exceptions of callbacks that the event loop caught and only logged (``callback-error``).

asyncio runs ``call_soon``/``call_later``/``call_at`` callbacks, done callbacks of futures and
tasks, reader, writer and signal handlers, and the methods of protocols (``data_received``,
``connection_lost``, ...) outside any task: when one raises, the loop hands the exception to
its ``call_exception_handler`` ("Exception in callback ...", "Fatal error:
protocol.data_received() call failed.") and goes on, so the test passes while the code under
test lost an error. For the test body's duration the plugin reads those contexts
(``loop_handler``, shared with the lost-task check) before the loop's own method runs, so the
user's handler and asyncio's log line are as without the plugin.

A context is a callback error when it carries an ``exception`` and a ``handle``, or a
``protocol`` or ``transport`` (a protocol method, a ``start_server`` callback), and the
exception's traceback passes through a line of the user's; the finding is at the innermost
such line, names the exception, the callback and, when the loop still knows it, what ran it (a
timer, a done callback of which task, a reader or writer, a signal handler). Contexts about
tasks and futures (lost exceptions) and about resources are left to their own checks. A
callback that keeps raising (a reader) is one finding with a count.

Not reported: a context the loop hands to an exception handler set with
``loop.set_exception_handler`` (the user's own, which decides what it means, or anyio's test
runner, which raises the exception in the test): only asyncio's default handler merely logs.
An ``OSError`` in ``data_received``, over which asyncio closes the transport without calling
the handler. Where a callback was scheduled: asyncio records it only in debug mode, at the
cost of a stack extraction per callback.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import types
from typing import Any

from .. import _frames as frames
from .._events import Detector
from .._findings import Finding, Kind, Severity
from .._options import Settings
from .._session import CheckSession, TestCheck
from . import loop_handler

CALLBACK_FIX = (
    "handle the exception inside the callback, or run the work in a task you await "
    "(asyncio.create_task + await) so its exception reaches your code: the loop only logs "
    "what a callback raises"
)
DONE_CALLBACK_FIX = (
    "in a done callback, check task.cancelled() and task.exception() before task.result(), "
    "and handle errors inside it: the loop only logs what a done callback raises"
)
_COROUTINE_FLAGS = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR

PROTOCOL_FIX = (
    "handle the error inside the protocol method (log it, answer the peer, or "
    "transport.abort()): the loop only logs what a protocol method raises"
)


def callable_name(callback: Any) -> str:
    """``boom``, ``Proto.connection_made``, ``functools.partial(boom)``: a callback as read."""
    func = getattr(callback, "func", None)  # functools.partial
    if func is not None and not hasattr(callback, "__qualname__"):
        return f"functools.partial({callable_name(func)})"
    return frames.qualified_name(callback)


def _user_frames(
    exc: BaseException,
) -> tuple[list[types.TracebackType], types.TracebackType | None]:
    """The traceback entries of ``exc`` in the user's code, outermost first, up to the frames of
    another task, and the entry where the exception came from in that task, if any.

    A callback runs no coroutine, so a coroutine's frame after the callback's own means the
    callback re-raised a task's exception (``task.result()`` of a failed task): the line that
    raised it in the callback is the bug, not the task's own ``raise``."""
    entries: list[types.TracebackType] = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if entries and code.co_flags & _COROUTINE_FLAGS:
            while tb.tb_next is not None:  # the innermost entry: where it was raised
                tb = tb.tb_next
            return entries, tb
        if frames.is_user_file(code.co_filename):
            entries.append(tb)
        tb = tb.tb_next
    return entries, None


def _code_of(callback: Any) -> types.CodeType | None:
    func = getattr(callback, "func", callback)  # functools.partial
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    return code if isinstance(code, types.CodeType) else None


def _qualname(code: types.CodeType) -> str:
    return str(getattr(code, "co_qualname", code.co_name))  # co_qualname: Python 3.11+


def _handler_consumes(loop: Any) -> bool:
    """Whether an exception handler is set on the loop (the user's, or anyio's test runner,
    which raises these exceptions in the test): it decides what an exception of a callback
    means, so it is not only logged."""
    return loop.get_exception_handler() is not None


def _ran_by(loop: Any, handle: asyncio.Handle) -> tuple[str, str]:
    """What ran the callback of ``handle``, and the fix for that kind of callback."""
    args: tuple[Any, ...] = getattr(handle, "_args", None) or ()
    if len(args) == 1 and isinstance(args[0], asyncio.Future):
        future = args[0]
        if isinstance(future, asyncio.Task):
            what = f"task '{future.get_name()}' running {callable_name(future.get_coro())}()"
        else:
            what = "a future"
        return f"a done callback of {what}", DONE_CALLBACK_FIX
    if isinstance(handle, asyncio.TimerHandle):
        return "a timer (loop.call_later or loop.call_at)", CALLBACK_FIX
    if handle in getattr(loop, "_signal_handlers", {}).values():
        return "a signal handler (loop.add_signal_handler)", CALLBACK_FIX
    selector = getattr(loop, "_selector", None)
    try:
        keys = list(selector.get_map().values()) if selector is not None else []
    except Exception:  # a closed selector
        keys = []
    for key in keys:
        reader, writer = key.data if isinstance(key.data, tuple) else (None, None)
        if handle is reader:
            return f"a reader of file descriptor {key.fd} (loop.add_reader)", CALLBACK_FIX
        if handle is writer:
            return f"a writer of file descriptor {key.fd} (loop.add_writer)", CALLBACK_FIX
    return "loop.call_soon (or a callback asyncio scheduled for your code)", CALLBACK_FIX


class CallbackErrorDetector(Detector):
    name = "callbacks"
    test_steps_only = True
    phases: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._rootpath = ""

    def session_started(self, session: CheckSession) -> None:
        self._rootpath = session.rootpath
        # The test's end only releases the loop's handler: dispatched there directly.
        session.detectors.rebind(self, "test_finished", loop_handler.release)

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if loop is None or "callbacks.reading" in test.data:
            return
        test.data["callbacks.reading"] = True

        def read(context: loop_handler.Context) -> None:
            finding = self._finding(loop, context)
            if finding is not None:
                test.add(finding)

        loop_handler.read_contexts(test, loop, read)

    def test_finished(self, test: TestCheck) -> None:
        """Handed to ``loop_handler.release`` once the session has started."""
        loop_handler.release(test)

    def _finding(self, loop: Any, context: loop_handler.Context) -> Finding | None:
        exc = context.get("exception")
        if not isinstance(exc, Exception) or "task" in context or "future" in context:
            return None  # lost exceptions of tasks and futures are never-retrieved's
        handle = context.get("handle")
        protocol = context.get("protocol")
        if handle is None and protocol is None and context.get("transport") is None:
            return None
        if _handler_consumes(loop):
            return None
        user, origin = _user_frames(exc)
        callback = getattr(handle, "_callback", None)
        code = _code_of(callback)
        own_callback = code is not None and frames.is_user_file(code.co_filename)
        if user:
            raised = user[-1]
            file = frames.relpath(raised.tb_frame.f_code.co_filename, self._rootpath)
            line, function = raised.tb_lineno, raised.tb_frame.f_code.co_name
            entry = _qualname(user[0].tb_frame.f_code)
        elif code is not None and own_callback:
            file = frames.relpath(code.co_filename, self._rootpath)
            line, function, entry = code.co_firstlineno, code.co_name, _qualname(code)
        else:
            return None  # nothing of the user's raised it
        stack: list[str] = []
        if handle is not None:
            ran_by, fix = _ran_by(loop, handle)
            # asyncio's own method may run the user's (a protocol's connection_lost).
            call = f"{callable_name(callback) if own_callback else entry}()"
            shown = re.sub(r" at \S+:\d+>$", ">", repr(handle))  # its definition: no news
            stack.append(f"run by {ran_by}: {shown}"[:300])
        elif protocol is not None:
            call = f"{type(protocol).__name__}.{entry.rsplit('.', 1)[-1]}()"
            fix = PROTOCOL_FIX
            stack.append(f"run by protocol {type(protocol).__name__}: {context.get('message')}")
        else:
            call = f"{entry}()"
            fix = CALLBACK_FIX
            stack.append(f"run by the event loop: {context.get('message')}")
        if origin is not None:
            code = origin.tb_frame.f_code
            shown = frames.relpath(code.co_filename, self._rootpath)
            stack.append(f"re-raised here; raised at {shown}:{origin.tb_lineno} in {code.co_name}")
        stack.extend(
            f"{frames.relpath(tb.tb_frame.f_code.co_filename, self._rootpath)}:{tb.tb_lineno} "
            f"in {tb.tb_frame.f_code.co_name}"
            for tb in user[:-1]
        )
        return Finding(
            kind=Kind.CALLBACK_ERROR.value,
            message=(
                f"callback {call} raised {type(exc).__name__}: {exc}; the event loop caught it "
                "and only logged it"
            ),
            file=file,
            line=line,
            function=function,
            call=call,
            fix=fix,
            stack=tuple(stack),
        )


def callback_detector(settings: Settings) -> Detector | None:
    if settings.severity(Kind.CALLBACK_ERROR) is Severity.OFF:
        return None
    return CallbackErrorDetector()
