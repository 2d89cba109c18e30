"""Loop methods that are not thread-safe, called from another thread (``thread-unsafe``).

``loop.call_soon``, ``call_later``/``call_at``, ``create_task`` and ``add_reader``/
``add_writer`` may only be called on the loop's own thread: from another one they race with
the loop (a callback that runs late, or never, as the loop sleeps in its selector without
being woken). Completing or cancelling a future from another thread is the same bug in
disguise: the future schedules its callbacks (an awaiting task's wake-up, a done callback) with
``loop.call_soon``. asyncio checks the thread only in debug mode, which costs 25-65 times per
``call_soon``.

While the test body runs, the plugin puts its own ``call_soon`` and ``call_at`` (and
``call_later`` on loops whose ``call_later`` does not go through ``call_at``) and the
reader/writer methods on the loop instance; each compares the calling thread with the loop's
thread (one ``threading.get_ident()`` per call on the loop's thread) and, on another thread,
records a finding at the user's line in that thread, naming the thread, what was called and
the thread-safe call to use instead. The call itself still runs. On the standard library's
loop, ``call_soon`` keeps its own steps (the closed check, then ``_call_soon``), so it costs
the loop no extra frame. Everything is put back when the body returns.

Never flagged: ``call_soon_threadsafe`` and what goes through it (``run_coroutine_threadsafe``,
``to_thread``, ``run_in_executor``, anyio's worker threads), which use the loop's private
``_call_soon``. Not seen: a future completed from another thread before anything waits on it
or has added a done callback (it schedules nothing then); calls made before the test body
starts or after it returns; calls with no line of the user's on the thread's stack; a loop
whose class takes no instance attributes.
"""

from __future__ import annotations

import asyncio
import linecache
import re
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from . import _clock, callbacks, frames
from .config import Settings
from .detector import Detector
from .findings import Finding, Kind, Severity
from .session import CheckSession, TestCheck

CALL_SOON_FIX = (
    "from another thread, use loop.call_soon_threadsafe(callback, ...) (for a delay, "
    "call_soon_threadsafe a function that calls loop.call_later)"
)
CREATE_TASK_FIX = (
    "from another thread, use asyncio.run_coroutine_threadsafe(coro, loop) (it returns a "
    "concurrent.futures.Future to wait on)"
)
COMPLETE_FIX = (
    "from another thread, complete the future on its loop: "
    "loop.call_soon_threadsafe(fut.set_result, value), or return the value from a function "
    "run with asyncio.to_thread / loop.run_in_executor"
)
FD_FIX = (
    "from another thread, use loop.call_soon_threadsafe(loop.add_reader, fd, callback) (and "
    "the same for the other reader and writer methods)"
)
#: What a future's completion is called on the line that completed it.
_COMPLETION = re.compile(r"\.(set_result|set_exception|cancel)\s*\(")
_FD_METHODS = ("add_reader", "add_writer", "remove_reader", "remove_writer")

Note = Callable[[str, tuple[Any, ...]], None]


def _is_done_callback_schedule(args: tuple[Any, ...]) -> bool:
    """``call_soon(callback, future)`` as a future schedules its callbacks when it is done."""
    return len(args) == 2 and isinstance(args[1], asyncio.Future) and args[1].done()


def _called(
    loop: Any, method: str, args: tuple[Any, ...], caller: types.FrameType, user: types.FrameType
) -> str:
    """What the user's line called: the library function it called, or, when it called C code
    (a C future's ``set_result``) or the loop's method directly, the method itself.
    ``caller`` is the frame that called the checking method."""
    callee = None
    for frame in frames.walk(caller):
        if frame is user:
            break
        callee = frame
    if callee is not None:
        code = callee.f_code
        owner = callee.f_locals.get("self")
        if owner is loop:
            return f"loop.{code.co_name}"
        if isinstance(owner, asyncio.Future):
            return f"future.{code.co_name}"
        module = callee.f_globals.get("__name__", "?").partition(".")[0]
        if owner is not None:
            return f"{module}.{type(owner).__name__}.{code.co_name}"
        return f"{module}.{code.co_name}"
    if method == "call_soon" and _is_done_callback_schedule(args):
        text = linecache.getline(user.f_code.co_filename, user.f_lineno)
        match = _COMPLETION.search(text)
        return f"future.{match[1] if match else 'set_result'}"
    return f"loop.{method.lstrip('_')}"


def _fix(call: str) -> str:
    name = call.rpartition(".")[2]
    if name in ("create_task", "ensure_future"):
        return CREATE_TASK_FIX
    if call.startswith("future.") or name in ("set_result", "set_exception", "cancel"):
        return COMPLETE_FIX
    if name in _FD_METHODS:
        return FD_FIX
    if call.startswith("loop."):
        return CALL_SOON_FIX
    return (
        f"from another thread, hand the call to the loop: "
        f"loop.call_soon_threadsafe({call.rpartition('.')[0].rpartition('.')[2].lower()}.{name}, "
        "...)"
    )


class ThreadSafetyDetector(Detector):
    name = "thread-safety"
    phases: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._rootpath = ""
        self._lock = threading.Lock()

    def session_started(self, session: CheckSession) -> None:
        self._rootpath = session.rootpath

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if loop is None or where != "test" or "threads.patched" in test.data:
            return
        test.data["threads.patched"] = _patch(loop, self._noting(test, loop))

    def task_exited(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if where == "test":
            self._restore(test)

    def test_finished(self, test: TestCheck) -> None:
        self._restore(test)  # the body did not return (cancelled, say)

    def _restore(self, test: TestCheck) -> None:
        patched = test.data.get("threads.patched")
        if patched:
            loop, installed = patched
            for name, function in installed.items():
                # Unless the test put its own function there since.
                if getattr(loop, name, None) is function:
                    delattr(loop, name)
            test.data["threads.patched"] = ()

    def _noting(self, test: TestCheck, loop: Any) -> Note:
        def note(method: str, args: tuple[Any, ...]) -> None:
            try:
                finding = self._finding(loop, method, args)
            except Exception:
                return  # the user's call must still run
            if finding is not None and test.data.get("threads.patched"):
                with self._lock:  # threads may add at once
                    test.add(finding, "call")

        return note

    def _finding(self, loop: Any, method: str, args: tuple[Any, ...]) -> Finding | None:
        caller = sys._getframe(3)  # this, note(), the checking method, its caller
        user = frames.user_frame(frames.walk(caller))
        if user is None:
            return None
        call = _called(loop, method, args, caller, user)
        thread = threading.current_thread().name
        callback = args[1] if method == "call_at" else args[0] if args else None
        name = callbacks.callable_name(callback)
        if call.startswith("future."):
            message = (
                f"{call}() was called from thread '{thread}', not the event loop's thread: "
                f"the future scheduled its callback {name} with loop.call_soon, which is not "
                "thread-safe"
            )
        else:
            message = (
                f"{call}() was called from thread '{thread}', not the event loop's thread, "
                "while the loop ran; it is not thread-safe"
            )
        return Finding(
            kind=Kind.THREAD_UNSAFE.value,
            message=message,
            file=frames.relpath(user.f_code.co_filename, self._rootpath),
            line=user.f_lineno,
            function=user.f_code.co_name,
            call=f"{call}()",
            fix=_fix(call),
            stack=frames.user_chain(user, self._rootpath)[:-1],
        )


def _patch(loop: Any, note: Note) -> tuple[Any, dict[str, Any]] | tuple[()]:
    """Put the checking methods on ``loop``; the loop and what was put there, or ``()``."""
    loop_thread = threading.get_ident()
    get_ident = threading.get_ident
    installed: dict[str, Any] = {}
    cls = type(loop)
    base = isinstance(loop, asyncio.BaseEventLoop)

    def checked(name: str) -> Any:
        # Forwarding *args costs a little, on calls far rarer than call_soon.
        original = getattr(loop, name)

        def asynccheck_checked(*args: Any, **kwargs: Any) -> Any:
            if get_ident() != loop_thread:
                note(name, args)
            return original(*args, **kwargs)

        return asynccheck_checked

    if base and cls.call_soon is asyncio.BaseEventLoop.call_soon:
        original = loop.call_soon
        check_closed = loop._check_closed
        call_soon = loop._call_soon

        def asynccheck_call_soon(
            callback: Callable[..., object], *args: Any, context: Any = None
        ) -> asyncio.Handle:
            if get_ident() != loop_thread:
                note("call_soon", (callback, *args))
            if loop._debug:  # asyncio's own checks
                return original(callback, *args, context=context)  # type: ignore[no-any-return]
            if loop._closed:
                check_closed()
            return call_soon(callback, args, context)  # type: ignore[no-any-return]

        installed["call_soon"] = asynccheck_call_soon
    else:
        installed["call_soon"] = checked("call_soon")
    names = ["call_at"]
    if not (base and cls.call_later is asyncio.BaseEventLoop.call_later):
        names.append("call_later")  # it does not go through call_at
    if hasattr(loop, "_add_reader"):  # selector loops: transports use these too
        names += [f"_{name}" for name in _FD_METHODS]
    else:
        names += [name for name in _FD_METHODS if hasattr(loop, name)]
    for name in names:
        installed[name] = checked(name)
    for name in list(installed):
        if _clock.set_on_instance(loop, name):
            del installed[name]  # the user's own function on the instance is left alone
    try:
        for name, function in installed.items():
            setattr(loop, name, function)
    except AttributeError:  # a loop class without instance attributes
        return ()
    return loop, installed


def thread_detector(settings: Settings) -> Detector | None:
    if settings.severity(Kind.THREAD_UNSAFE) is Severity.OFF:
        return None
    return ThreadSafetyDetector()
