"""The wrappers that replace catalogued callables (``_wrap``), and the checked ``sqlite3``
classes that ``sqlite3.connect`` hands out while checks run.

This is the measured hot path: every call of a catalogued callable, on any thread, passes
through ``asynccheck_blocking``, and every socket method call through its socket variant;
measure with ``benchmarks/blocking_hotpath.py`` and ``run.py hotpath`` (``benchmarks/README.md``)
before adding anything to it.

A patched call that does not run on a thread with a running asyncio loop costs one C call and
a comparison. On the test's loop thread, while a test runs (and inside a trio task of a trio
test), the call is timed, the user's line is found, and a ``blocking`` finding is recorded;
the call itself always proceeds unchanged, so nothing is raised into the code under test. The
wrapper calls the original from its own frame, one frame in all, marked ``__tracebackhide__``:
pytest shows an exception the call raises as it would without the plugin.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

from ... import _clock
from ..._parameters import compiled_with_parameters_of
from . import loopthread
from .catalogue import CATALOGUE, Blocker
from .nonblocking import SOCKET_PREDICATES

if TYPE_CHECKING:
    from .intercept import Interceptor

LOGGER = logging.getLogger("pytest_asynccheck")

_socket_getblocking = socket.socket.getblocking
_SQLITE_CONNECTION = ("commit", "rollback")
_SQLITE_CURSOR = ("execute", "executemany", "executescript", "fetchone", "fetchmany", "fetchall")
# The shared per-thread state under the names the wrappers read (their cost per call:
# benchmarks/blocking_hotpath.py).
_get_running_loop = asyncio.events._get_running_loop
_get_ident = threading.get_ident
in_progress = loopthread.in_progress
_allowed = loopthread.allowed
_in_trio_task = loopthread.in_trio_task


def _wrap(interceptor: Interceptor, blocker: Blocker, original: Any, depth: int = 2) -> Any:
    """The wrapper that replaces ``original``. It calls ``original`` itself, from its own
    frame, on every path: an exception from the call has one frame of the plugin's on its
    way to the user, and that frame is hidden from pytest's tracebacks."""
    nonblocking = blocker.nonblocking
    get_loop = _get_running_loop  # a closure cell, read by every call: blocking_hotpath.py
    allowed_by_name = blocker.name in interceptor.allowed_names
    name = blocker.name

    def watch(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, Any, bool] | None:
        """On a thread with a running loop: ``None`` when the call is not watched, else the
        thread, the caller's frame and whether the call is reported (not when exempt)."""
        if nonblocking is not None:
            try:
                cannot_block = nonblocking(*args, **kwargs)
            except Exception:
                cannot_block = True  # bad arguments: let the call itself say so
            if cannot_block:
                return None
        tid = _get_ident()
        session = interceptor.session
        test = session.current
        if (
            test is None
            or not interceptor.installed
            or tid != (test.loop_thread or session.main_thread)
            or tid in in_progress
            or _allowed.get()
        ):
            # Not the test's loop (a loop the test runs in a thread of its own is not what
            # the test awaits), or already inside a catalogued call, or allowed.
            return None
        if (
            loopthread.foreign_loop_thread is not None
            and get_loop() is None
            and not _in_trio_task()
        ):
            return None  # the runner driving trio, between its steps
        caller = sys._getframe(depth)
        report = not (allowed_by_name or interceptor.exempt(caller))
        in_progress[tid] = name if report else ""
        return tid, caller, report

    def done(watched: tuple[int, Any, bool], started: float) -> None:
        ended = _clock.perf_counter()
        tid, caller, report = watched
        try:
            if report:
                interceptor.record(blocker, caller, started, ended)
        except Exception as exc:  # never into the user's code
            LOGGER.error("asynccheck: recording %s failed: %s", name, exc)
        finally:
            in_progress.pop(tid, None)

    if nonblocking in SOCKET_PREDICATES:
        # Installed on ``socket.socket`` itself, so every socket pays this test first: the
        # loops' sockets are non-blocking, and for them it is one C call (blocking_hotpath.py:
        # "non-blocking socket send+recv").
        getblocking = _socket_getblocking

        @functools.wraps(original)
        def asynccheck_blocking(self: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            if not getblocking(self) or (
                get_loop() is None and loopthread.foreign_loop_thread is None
            ):
                return original(self, *args, **kwargs) if kwargs else original(self, *args)
            watched = watch((self, *args), kwargs)
            if watched is None:
                return original(self, *args, **kwargs)
            started = _clock.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                done(watched, started)
                del watched

    else:

        @functools.wraps(original)
        def asynccheck_blocking(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            if get_loop() is None and loopthread.foreign_loop_thread is None:
                # No keywords are passed on as an empty mapping, which costs a dictionary
                # built and read per call (benchmarks/README.md, "Calls passed on").
                return original(*args, **kwargs) if kwargs else original(*args)
            watched = watch(args, kwargs)
            if watched is None:
                return original(*args, **kwargs)
            started = _clock.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                done(watched, started)
                del watched

    asynccheck_blocking.__asynccheck_blocker__ = name  # type: ignore[attr-defined]
    return asynccheck_blocking


#: The entries whose wrapper takes the original's own parameters: the runners call
#: ``run_until_complete`` at each step of every test (pytest-asyncio five times a test), where
#: the packed call of ``asynccheck_blocking`` costs 860 instructions more (benchmarks/README.md,
#: "Tasks noted by the loop class"). Compiled once per session.
OWN_PARAMETERS = frozenset(("asyncio.BaseEventLoop.run_until_complete",))

_FRONT = """
def asynccheck_blocking({declared}):
    __tracebackhide__ = True
    if _asynccheck_get_loop() is None and _asynccheck_loopthread.foreign_loop_thread is None:
        return _asynccheck_original({passed})
    return _asynccheck_checked({passed})
"""


def _wrap_with_own_parameters(interceptor: Interceptor, blocker: Blocker, original: Any) -> Any:
    """``_wrap``'s wrapper, behind a front with ``original``'s own parameters that passes a call
    made with no loop running on this thread straight to ``original``, as ``_wrap``'s does."""
    namespace: dict[str, Any] = {
        "_asynccheck_original": original,
        "_asynccheck_checked": _wrap(interceptor, blocker, original, depth=3),
        "_asynccheck_get_loop": _get_running_loop,
        "_asynccheck_loopthread": loopthread,
    }
    compiled = compiled_with_parameters_of(
        original, _FRONT, "asynccheck_blocking", namespace, __file__
    )
    front: Any = functools.wraps(original)(compiled)
    front.__asynccheck_blocker__ = blocker.name
    return front


def _checked_connection_class(interceptor: Interceptor) -> type:
    """A ``sqlite3.Connection`` subclass whose SQL methods are checked, and whose cursors
    (``cursor()``, which ``execute`` also calls) are a checked ``Cursor`` subclass."""
    import sqlite3

    def checked(owner: type, methods: tuple[str, ...]) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__module__": "sqlite3", "__qualname__": owner.__name__}
        for method in methods:
            name = f"sqlite3.{owner.__name__}.{method}"
            blocker = next(b for b in CATALOGUE if b.name == name)
            namespace[method] = _wrap(interceptor, blocker, getattr(owner, method))
        return namespace

    cursor_class = type("Cursor", (sqlite3.Cursor,), checked(sqlite3.Cursor, _SQLITE_CURSOR))
    plain_cursor = sqlite3.Connection.cursor

    def cursor(self: Any, factory: Any = cursor_class) -> Any:
        return plain_cursor(self, factory)

    # The C ``execute`` shortcuts make a plain cursor without asking ``cursor()``: these do
    # what they do (a cursor, its method, the cursor returned), through the checked cursor.
    def execute(self: Any, sql: str, parameters: Any = _UNSET, /) -> Any:
        made = self.cursor()
        if parameters is _UNSET:
            made.execute(sql)
        else:
            made.execute(sql, parameters)
        return made

    def executemany(self: Any, sql: str, parameters: Any, /) -> Any:
        made = self.cursor()
        made.executemany(sql, parameters)
        return made

    def executescript(self: Any, script: str, /) -> Any:
        made = self.cursor()
        made.executescript(script)
        return made

    namespace = checked(sqlite3.Connection, _SQLITE_CONNECTION)
    namespace["cursor"] = functools.wraps(plain_cursor)(cursor)
    for shortcut in (execute, executemany, executescript):
        name = shortcut.__name__
        original = getattr(sqlite3.Connection, name)
        blocker = next(b for b in CATALOGUE if b.name == f"sqlite3.Connection.{name}")
        namespace[name] = _wrap(interceptor, blocker, functools.wraps(original)(shortcut))
    return type("Connection", (sqlite3.Connection,), namespace)


_UNSET: Any = object()


def _wrap_sqlite_connect(interceptor: Interceptor, blocker: Blocker, original: Any) -> Any:
    checked = _checked_connection_class(interceptor)
    inner = _wrap(interceptor, blocker, original, depth=3)

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        if len(args) < 6 and "factory" not in kwargs and interceptor.installed:
            kwargs["factory"] = checked
        return inner(*args, **kwargs)

    return connect
