"""Loop methods that are not thread-safe, called from another thread (``thread-unsafe``).

``loop.call_soon``, ``call_later``/``call_at``, ``create_task`` and ``add_reader``/
``add_writer`` may only be called on the loop's own thread: from another one they race with
the loop (a callback that runs late, or never, as the loop sleeps in its selector without
being woken). Completing or cancelling a future from another thread is the same bug in
disguise: the future schedules its callbacks (an awaiting task's wake-up, a done callback) with
``loop.call_soon``. asyncio checks the thread only in debug mode, which costs 25-65 times per
``call_soon``.

The plugin checks those methods on the standard library's loops through their classes
(``BaseEventLoop.call_soon`` and ``call_at``, through which ``call_later`` goes, and the
selector loop's private reader and writer methods, which ``add_reader`` and the transports
use), put in place at the first async test and put back when the session ends (replacing a
class attribute per test would invalidate the interpreter's attribute caches each time); on
other loops (uvloop) on the loop instance, for the test body. Each compares the calling thread
with the loop's (one ``threading.get_ident()`` per call, as asyncio's debug mode does) and, on
another thread during a test body, records a finding at the user's line in that thread, naming
the thread, what was called and the thread-safe call to use instead. The call itself still
runs. ``call_soon`` and ``call_at`` keep asyncio's own steps (the closed check, then
``_call_soon`` or the timer pushed on the heap; in debug mode asyncio's own method), so the
loop's hottest calls pay no extra frame. A standard library loop instance is never given
attributes of the plugin's: past a few dozen attributes Python drops an object's compact
layout, and every attribute read on the loop would be slower for the rest of its life.

Never flagged: ``call_soon_threadsafe`` and what goes through it (``run_coroutine_threadsafe``,
``to_thread``, ``run_in_executor``, anyio's worker threads), which use the loop's private
``_call_soon``. Not seen: a future completed from another thread before anything waits on it
or has added a done callback (it schedules nothing then); calls made before the test body
starts or after it returns; calls with no line of the user's on the thread's stack; a loop
whose class takes no instance attributes.
"""

from __future__ import annotations

import asyncio
import heapq
import linecache
import re
import sys
import threading
import types
from asyncio import selector_events
from collections.abc import Callable
from typing import Any

from .. import _clock
from .. import _frames as frames
from .._events import Detector
from .._findings import Finding, Kind, Severity
from .._options import Settings
from .._session import CheckSession, TestCheck
from . import callbacks

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

#: Called with the loop, the method and its arguments, on the other thread.
Note = Callable[[Any, str, tuple[Any, ...]], None]


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
    test_steps_only = True
    phases: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._rootpath = ""
        self._lock = threading.Lock()
        #: The test whose body runs now, checked through the loop classes.
        self._current: TestCheck | None = None
        #: The loop classes' checking methods, put in place at the first test and kept until
        #: the session ends: replacing a class attribute invalidates the interpreter's caches
        #: of every attribute lookup on the class and its subclasses, which costs more per test
        #: than the checks themselves.
        self._classes: Patched = []

    def session_started(self, session: CheckSession) -> None:
        self._rootpath = session.rootpath

    def session_finished(self, session: CheckSession) -> None:
        self._current = None
        _restore(self._classes)
        self._classes = []

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if loop is None or "threads.patched" in test.data:
            return
        if isinstance(loop, asyncio.BaseEventLoop):
            if not self._classes:
                self._classes = _patch_classes(self._note_current)
            self._current = test
            test.data["threads.patched"] = []
        else:
            test.data["threads.patched"] = _patch_instance(loop, self._noting(test))

    def task_exited(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        """The checking methods taken off for ``test``."""
        if self._current is test:
            self._current = None
        patched = test.data.get("threads.patched")
        if patched:
            test.data["threads.patched"] = []
            _restore(patched)

    def test_finished(self, test: TestCheck) -> None:
        if self._current is test or test.data.get("threads.patched"):
            self.task_exited(test, None, "test")  # the body did not return (cancelled, say)

    def _note_current(self, loop: Any, method: str, args: tuple[Any, ...]) -> None:
        test = self._current
        if test is not None:  # outside a test body nothing is reported
            self._note(test, loop, method, args)

    def _noting(self, test: TestCheck) -> Note:
        def note(loop: Any, method: str, args: tuple[Any, ...]) -> None:
            if test.data.get("threads.patched"):
                self._note(test, loop, method, args)

        return note

    def _note(self, test: TestCheck, loop: Any, method: str, args: tuple[Any, ...]) -> None:
        try:
            finding = self._finding(loop, method, args)
        except Exception:
            return  # the user's call must still run
        if finding is not None:
            with self._lock:  # threads may add at once
                test.add(finding, "call")

    def _finding(self, loop: Any, method: str, args: tuple[Any, ...]) -> Finding | None:
        caller = sys._getframe(4)  # this, _note(), a note function, the checking method
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


#: (where a function was put: a class or a loop, its name, the function, what was there)
Patched = list[tuple[Any, str, Any, Any]]


def _patch_classes(note: Note) -> Patched:
    """Put the checking methods on the standard library's loop classes; what was put where.

    Not on the loop instance: past a few dozen attributes Python drops an object's compact
    layout, which would slow every attribute read on the loop (``self._ready``,
    ``self._scheduled``) for the rest of its life."""
    get_ident = threading.get_ident
    base = asyncio.BaseEventLoop
    original_call_soon = base.__dict__["call_soon"]

    # asyncio's own steps, so the hottest call of the loop pays no extra frame.
    def call_soon(
        self: Any, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.Handle:
        thread = self._thread_id
        if thread != get_ident() and thread is not None:
            note(self, "call_soon", (callback, *args))
        if self._debug:  # asyncio's own checks
            return original_call_soon(self, callback, *args, context=context)  # type: ignore[no-any-return]
        if self._closed:
            self._check_closed()
        return self._call_soon(callback, args, context)  # type: ignore[no-any-return]

    original_call_at = base.__dict__["call_at"]  # call_later goes through it
    timer_handle, heappush = asyncio.TimerHandle, heapq.heappush

    # The same for the timers: asyncio's steps outside debug mode (its handle keeps no
    # traceback then), else asyncio's own method, which also refuses ``when=None`` on 3.12+.
    def call_at(
        self: Any,
        when: float | None,
        callback: Callable[..., object],
        *args: Any,
        context: Any = None,
    ) -> asyncio.TimerHandle:
        thread = self._thread_id
        if thread != get_ident() and thread is not None:
            note(self, "call_at", (when, callback, *args))
        if self._debug or when is None:
            return original_call_at(self, when, callback, *args, context=context)  # type: ignore[no-any-return]
        if self._closed:
            self._check_closed()
        timer = timer_handle(when, callback, args, self, context)
        heappush(self._scheduled, timer)
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    patched: Patched = [
        (base, "call_soon", call_soon, original_call_soon),
        (base, "call_at", call_at, original_call_at),
    ]
    selector = selector_events.BaseSelectorEventLoop
    for name in _FD_METHODS:  # the private ones: transports use them too
        original = selector.__dict__[f"_{name}"]
        patched.append((selector, f"_{name}", _checked_method(name, original, note), original))
    for owner, name, function, _ in patched:
        setattr(owner, name, function)
    return patched


def _checked_method(name: str, original: Callable[..., Any], note: Note) -> Callable[..., Any]:
    """The selector loop's private reader and writer method ``name``, checked: with the
    original's own parameters, as every loop calls two of them and each socket transport more
    (arguments packed into a tuple and a dictionary cost more than the check itself)."""
    get_ident = threading.get_ident

    if name.startswith("remove_"):

        def checked_remove(self: Any, fd: Any) -> Any:
            thread = self._thread_id
            if thread != get_ident() and thread is not None:
                note(self, name, (fd,))
            return original(self, fd)

        return checked_remove

    def checked(self: Any, fd: Any, callback: Any, *args: Any) -> Any:
        thread = self._thread_id
        if thread != get_ident() and thread is not None:
            note(self, name, (fd, callback, *args))
        return original(self, fd, callback, *args)

    return checked


def _patch_instance(loop: Any, note: Note) -> Patched:
    """Put the checking methods on a loop that is not the standard library's (uvloop, whose
    classes may be immutable); what was put there."""
    loop_thread = threading.get_ident()
    get_ident = threading.get_ident
    names = ["call_soon", "call_later", "call_at"]
    names += [name for name in _FD_METHODS if hasattr(loop, name)]
    patched: Patched = []
    for name in names:
        if _clock.set_on_instance(loop, name):
            continue  # the user's own function on the instance is left alone
        original = getattr(loop, name)

        def checked(
            *args: Any, __name: str = name, __original: Any = original, **kwargs: Any
        ) -> Any:
            if get_ident() != loop_thread:
                note(loop, __name, args)
            return __original(*args, **kwargs)

        try:
            setattr(loop, name, checked)
        except AttributeError:  # a loop class without instance attributes
            break
        patched.append((loop, name, checked, None))
    return patched


def _restore(patched: Patched) -> None:
    for owner, name, function, original in reversed(patched):
        if isinstance(owner, type):
            if owner.__dict__.get(name) is function:  # unless someone else patched it since
                setattr(owner, name, original)
        elif getattr(owner, name, None) is function:
            delattr(owner, name)


def thread_detector(settings: Settings) -> Detector | None:
    if settings.severity(Kind.THREAD_UNSAFE) is Severity.OFF:
        return None
    return ThreadSafetyDetector()
