"""One interception of the loop's ``call_exception_handler`` per test, shared by every check
that reads what asyncio reports there (lost task exceptions, exceptions of callbacks).

For the test's duration a function of the plugin stands in front of that method: it hands the
context to each reader, in the order they subscribed, then calls the loop's method with the same
context, which runs whatever handler is set at that moment
(anyio's, one the test sets) or asyncio's default handler, so every handler and log line is
as it would be without the plugin. The loop's handler itself is never replaced, so
``get_exception_handler`` and ``set_exception_handler`` behave as without the plugin. A
function the user put on the instance before the test is chained and put back afterwards; one
the test puts there meanwhile is left in place. A reader that raises is skipped for that
context. A loop whose class takes no instance attributes cannot be read.

On the standard library's loops the function is put on ``asyncio.BaseEventLoop`` itself, once,
while a check session uses it (``session_started``/``session_finished``), and a test only enters
its loop in a table that function reads: a function made, put on the loop instance and taken
off again at every test cost more (benchmarks/README.md, "Per test, once per session"), and
replacing a class attribute at every test would invalidate the interpreter's attribute caches
each time. On other loops, on a loop class that defines the method itself, and on a loop that
carries the user's own function, the function goes on the instance for the test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _clock

if TYPE_CHECKING:
    from .._session import TestCheck

Context = dict[str, Any]
Reader = Callable[[Context], None]
CallExceptionHandler = Callable[[Context], object]

#: ``test.data`` key: (loop, the function put on it, the user's own function or ``None``,
#: the readers).
KEY = "loop.exception-handler"


_BASE = asyncio.BaseEventLoop
#: id of a standard library loop -> (the loop, its readers), while a test reads it through the
#: function on the class
_reading: dict[int, tuple[Any, list[Reader]]] = {}
#: (the function put on ``BaseEventLoop``, what was there), while a session uses it
_patched: tuple[Callable[..., Any], Any] | None = None
#: Detectors of running sessions that read contexts (sessions nest under pytester).
_users = 0


def session_started() -> None:
    """A detector of a starting session will read contexts."""
    global _users
    _users += 1


def session_finished() -> None:
    """That detector's session ends: the class is as before once no session reads."""
    global _users, _patched
    _users = max(0, _users - 1)
    if _users or _patched is None:
        return
    function, original = _patched
    _patched = None
    _reading.clear()
    if _BASE.__dict__.get("call_exception_handler") is function:  # unless patched since
        _BASE.call_exception_handler = original  # type: ignore[method-assign]


def _read(readers: list[Reader], context: Context) -> None:
    for read in tuple(readers):  # empty once the test is over
        with contextlib.suppress(Exception):  # the loop's handler must still run
            read(context)


def _patch_class() -> tuple[Callable[..., Any], Any]:
    original = _BASE.__dict__["call_exception_handler"]

    def call_exception_handler(self: Any, context: Context) -> object:
        __tracebackhide__ = True
        entry = _reading.get(id(self))
        if entry is not None and entry[0] is self:
            _read(entry[1], context)
        return original(self, context)

    call_exception_handler.__qualname__ = original.__qualname__
    call_exception_handler.__doc__ = original.__doc__
    _BASE.call_exception_handler = call_exception_handler  # type: ignore[method-assign, assignment]
    return call_exception_handler, original


def _read_on_class(loop: Any) -> bool:
    """Whether ``loop`` is read through the function on its class (put there now, at the
    first standard library loop of a session)."""
    global _patched
    if not _users or not isinstance(loop, _BASE):
        return False
    if _patched is None:
        _patched = _patch_class()
    return type(loop).call_exception_handler is _patched[0] and not _clock.set_on_instance(
        loop, "call_exception_handler"
    )


def read_contexts(test: TestCheck, loop: Any, reader: Reader) -> bool:
    """Have ``reader`` see every context that reaches ``loop.call_exception_handler`` until
    :func:`release`; whether the loop could be read."""
    saved = test.data.get(KEY)
    if saved is not None:
        if saved[0] is loop:
            saved[3].append(reader)
            return True
        return False  # one loop per test body; a second loop is not read
    readers: list[Reader] = [reader]
    if _read_on_class(loop):
        _reading[id(loop)] = (loop, readers)
        test.data[KEY] = (loop, None, None, readers)
        return True
    forward: CallExceptionHandler = loop.call_exception_handler
    # One the user put on the instance (a mock, say) is put back when the test ends.
    own = forward if _clock.set_on_instance(loop, "call_exception_handler") else None

    def asynccheck_call_exception_handler(context: Context) -> object:
        _read(readers, context)
        return forward(context)

    try:
        loop.call_exception_handler = asynccheck_call_exception_handler
    except AttributeError:
        return False  # a loop class without instance attributes
    test.data[KEY] = (loop, asynccheck_call_exception_handler, own, readers)
    return True


def release(test: TestCheck) -> None:
    """Stop reading and put the loop's method back (a no-op when nothing is read)."""
    saved = test.data.pop(KEY, None)
    if saved is None:
        return
    loop, reporting, own, readers = saved
    readers.clear()  # someone may still hold the function: it only forwards from now on
    if reporting is None:  # read through the class
        entry = _reading.get(id(loop))
        if entry is not None and entry[1] is readers:
            del _reading[id(loop)]
        return
    # Unless the test put its own function there since; the method is looked up without
    # reading the loop's __dict__, which would slow every attribute read on the loop for the
    # rest of its life.
    if getattr(loop, "call_exception_handler", None) is reporting:
        if own is None:
            del loop.call_exception_handler
        else:
            loop.call_exception_handler = own
