"""One interception of the loop's ``call_exception_handler`` per test, shared by every check
that reads what asyncio reports there (lost task exceptions, exceptions of callbacks).

For the test's duration a function of the plugin stands in front of that method, on the loop
instance: it hands the context to each reader, in the order they subscribed, then calls the
loop's method with the same context, which runs whatever handler is set at that moment
(anyio's, one the test sets) or asyncio's default handler, so every handler and log line is
as it would be without the plugin. The loop's handler itself is never replaced, so
``get_exception_handler`` and ``set_exception_handler`` behave as without the plugin. A
function the user put on the instance before the test is chained and put back afterwards; one
the test puts there meanwhile is left in place. A reader that raises is skipped for that
context. A loop whose class takes no instance attributes cannot be read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._session import TestCheck

Context = dict[str, Any]
Reader = Callable[[Context], None]
CallExceptionHandler = Callable[[Context], object]

#: ``test.data`` key: (loop, the function put on it, the user's own function or ``None``,
#: the readers).
KEY = "loop.exception-handler"


def read_contexts(test: TestCheck, loop: Any, reader: Reader) -> bool:
    """Have ``reader`` see every context that reaches ``loop.call_exception_handler`` until
    :func:`release`; whether the loop could be read."""
    saved = test.data.get(KEY)
    if saved is not None:
        if saved[0] is loop:
            saved[3].append(reader)
            return True
        return False  # one loop per test body; a second loop is not read
    forward: CallExceptionHandler = loop.call_exception_handler
    # One the user put on the instance (a mock, say) is put back when the test ends
    # (``_clock.set_on_instance``, inline on the method read: this runs at every test body).
    own = forward if getattr(forward, "__self__", None) is not loop else None
    readers: list[Reader] = [reader]

    def asynccheck_call_exception_handler(context: Context) -> object:
        for read in tuple(readers):  # empty once the test is over
            with contextlib.suppress(Exception):  # the loop's handler must still run
                read(context)
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
    # Unless the test put its own function there since; the method is looked up without
    # reading the loop's __dict__, which would slow every attribute read on the loop for the
    # rest of its life.
    if getattr(loop, "call_exception_handler", None) is reporting:
        if own is None:
            del loop.call_exception_handler
        else:
            loop.call_exception_handler = own
