"""The per-thread state that interception and the watchdog share, and ``allow_blocking``.

Interception writes it and the watchdog reads it, from its own thread, to drop the stalls a
catalogued call or an ``allow_blocking()`` block already accounts for. The dictionaries are
keyed by thread id and each key is written only by its own thread. Neither of the two modules
imports the other: both import this one.

Which thread is checked: a thread with a running asyncio loop, or the thread of a running test
whose loop is not asyncio's (``foreign_loop_thread``: trio, through anyio or pytest-trio), which
the detector sets while the test's coroutine runs and clears when it ends.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: Thread id -> name of the catalogued call in progress on it (or "" for an exempt one).
#: The watchdog reads it to drop stalls interception already reports.
in_progress: dict[int, str] = {}
#: Thread id -> depth of ``allow_blocking()`` blocks open on it (for the watchdog).
allowed_threads: dict[int, int] = {}
#: Whether the running code is inside ``allow_blocking()`` (a context variable: a task started
#: inside the block is allowed too).
allowed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "asynccheck_allow_blocking", default=False
)
_get_ident = threading.get_ident
#: The thread of a running test whose loop is not asyncio's (trio, through anyio or
#: pytest-trio), or ``None``: then only threads with a running asyncio loop are checked.
#: Written only through the two functions below; read as ``loopthread.foreign_loop_thread``.
foreign_loop_thread: int | None = None


def set_foreign_loop_thread(thread_id: int) -> None:
    global foreign_loop_thread
    foreign_loop_thread = thread_id


def clear_foreign_loop_thread() -> None:
    global foreign_loop_thread
    foreign_loop_thread = None


@contextlib.contextmanager
def allow_blocking() -> Iterator[None]:
    """Blocking calls and stalls inside this block are not reported (checks on or off)."""
    tid = _get_ident()
    token = allowed.set(True)
    allowed_threads[tid] = allowed_threads.get(tid, 0) + 1
    try:
        yield
    finally:
        depth = allowed_threads.get(tid, 1) - 1
        if depth:
            allowed_threads[tid] = depth
        else:
            allowed_threads.pop(tid, None)
        allowed.reset(token)


def in_trio_task() -> bool:
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def trio_token() -> Any:
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None
