"""The ``unclosed`` check's registry: what the tests made that is open, the line that made each,
and the bookkeeping of the finalizers that find one freed open.

A resource is registered (``register``) when it is made on the thread of a running coroutine of
the current test (its body, or a step of one of its async fixtures) with a line of the user's
code on the stack: that line is where a finding points, so nothing is walked again later and
``tracemalloc`` is not needed. It stays in ``tracked``, by id, until it is known closed or
handed to an owner that closes it (``forget``), or found freed open (``freed_open``, which
calls ``on_freed_open``); an owner made over it, a transport over its socket, takes over its
line (``take_over``: no second walk). An id may be reused once its object is freed: an entry
is a weak reference, and one whose object is gone or another is not the one asked about.

How a resource freed open is found here, whatever wrapper saw it made (``resource_patches.py``):

- sockets: a weak reference's callback (``_gone``) finds one freed while still registered
  (Python's own finalizer closes it);
- a ``StreamWriter`` of a Python without a finalizer of its own (before 3.11.7): a weak
  reference's callback (``writers``), as its connection stays open on the loop after it;
- files: the raw file's ``_dealloc_warn`` (``file_freed_open``), just before Python warns and
  closes it;
- transports, writers, loops: their finalizers, wrapped in ``resource_patches.py``, call
  ``freed_open``.

Limits: only the thread of the test's own coroutines registers (a step's thread, not the threads
it starts); a resource made by the loop or a library with no line of the user's on the stack (a
server's accepted socket) is not registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

from .. import _frames as frames
from .. import _session as session_module
from .._frames import Site
from .._session import FIXTURE, TestCheck


class Entry(weakref.ref[Any]):
    """A registered resource: a weak reference to it (calling the entry gives the resource,
    ``None`` once freed), its id (``key``), the test that made it, where, and what it is
    (``label``, a key of ``FIXES``; ``what``, its name in the finding). The weak reference itself
    with slots, filled by ``_enter`` without running an ``__init__``: one is made for every
    resource a test makes, and a socket's is given to its callback (no ``functools.partial``)."""

    __slots__ = ("check", "fixture", "key", "label", "site", "what")
    key: int
    check: TestCheck
    #: (fixture name, step) when a step of an async fixture made it
    fixture: tuple[str, str] | None
    label: str
    what: str
    site: Site


#: id of a registered resource -> its entry, until it is known closed or reported.
tracked: dict[int, Entry] = {}
#: Called with (entry, state) for a resource found open as it is freed.
on_freed_open: list[Callable[[Entry, str], None]] = []
#: Called with the check of a test each time it registers a resource.
on_registered: list[Callable[[TestCheck], None]] = []
FREED = "was freed while still open"
SOCKET = "socket"
SOCKETS = frozenset((SOCKET,))
FILES = frozenset(("file",))
#: What a finalizer of asyncio's judges: the object it finalizes.
ASYNCIO_OBJECTS = frozenset(("transport", "subprocess transport", "StreamWriter", "event loop"))


# Bound once: owner() runs for every resource a test makes.
_fixture_step = FIXTURE.get
_get_running_loop = asyncio._get_running_loop
_get_ident = threading.get_ident


def owner() -> tuple[TestCheck, tuple[str, str] | None] | None:
    """The test whose coroutine runs on this thread now, and the fixture step it is in."""
    session = session_module._active
    check = session.current if session is not None else None
    if check is None or check.closed:
        return None
    step = _fixture_step()
    if step is not None:
        # A step's context is copied into threads it starts (asyncio.to_thread): only the
        # loop's thread is the step's own.
        if _get_running_loop() is None:
            return None
        return check, (step.run.name, step.phase)
    if check.phase == "call" and check.loop_thread == _get_ident():
        return check, None
    return None


def register(
    obj: Any, label: str, what: str, site: Site | None = None, depth: int = 2
) -> Entry | None:
    """Register ``obj`` if the current test's coroutine made it; returns its entry."""
    who = owner()
    if who is None:
        return None
    if site is None:
        site = frames.user_site(sys._getframe(depth))
        if site is None:
            return None  # made by the loop or a library on its own (a server's accepted socket)
    entry = _enter(obj, who[0], who[1], label, what, site)
    for call in on_registered:
        call(who[0])
    return entry


def take_over(entry: Entry, obj: Any, label: str, what: str) -> Entry | None:
    """``obj`` was made over the resource of ``entry``, forgotten, and owns it now (a transport
    closes its socket): registered in its place, at its line, as ``register`` would. Cheaper
    than ``register``: no walk, and the resource's test was told of it already."""
    who = owner()
    if who is None:
        return None
    new = _enter(obj, who[0], who[1], label, what, entry.site)
    if who[0] is not entry.check:
        for call in on_registered:
            call(who[0])
    return new


def _enter(
    obj: Any,
    check: TestCheck,
    fixture: tuple[str, str] | None,
    label: str,
    what: str,
    site: Site,
) -> Entry:
    # Only a socket is judged when its weak reference dies. The others are judged in their
    # finalizers, which the collector runs after it has cleared the weak references of what it
    # frees: a dead reference under the same id is then taken for the object itself.
    entry = Entry(obj, _gone if label == SOCKET else None)
    entry.key = key = id(obj)
    entry.check = check
    entry.fixture = fixture
    entry.label = label
    entry.what = what
    entry.site = site
    tracked[key] = entry
    return entry


def forget(obj: Any, labels: frozenset[str]) -> Entry | None:
    """``obj`` was closed, or handed to an owner that closes it: no longer checked. Returns its
    entry if it was registered with one of ``labels``."""
    key = id(obj)
    entry = tracked.get(key)
    if entry is None or entry.label not in labels:
        return None
    current = entry()
    if current is not obj and current is not None:
        return None  # another object had this id before
    del tracked[key]
    return entry


def report_freed(entry: Entry) -> None:
    for call in on_freed_open:
        with contextlib.suppress(Exception):  # a finalizer never fails over a finding
            call(entry, FREED)


def freed_open(obj: Any, labels: frozenset[str]) -> None:
    entry = forget(obj, labels)
    if entry is not None:
        report_freed(entry)


def _gone(entry: Entry) -> None:
    """A registered socket was freed while still registered: it was never closed."""
    if tracked.get(entry.key) is not entry:
        return
    del tracked[entry.key]
    report_freed(entry)


#: Whether asyncio closes the connection of a StreamWriter freed open (Python 3.11.7+).
WRITER_FINALIZES = "__del__" in vars(asyncio.StreamWriter)
#: Before that, weak references to the tracked writers, by id: a writer freed while its
#: connection is open is found by its reference's callback instead.
writers: dict[int, weakref.ref[Any]] = {}


def watch_writer(writer: Any, transport: Any) -> None:
    """Before Python 3.11.7: find ``writer`` freed while its connection is open."""
    callback = functools.partial(_writer_gone, id(writer), weakref.ref(transport))
    writers[id(writer)] = weakref.ref(writer, callback)


def _writer_gone(key: int, transport: weakref.ref[Any], ref: weakref.ref[Any]) -> None:
    if writers.get(key) is ref:
        del writers[key]
    connection = transport()
    if connection is not None and not connection.is_closing():
        freed_open(connection, ASYNCIO_OBJECTS)


def file_freed_open(key: int, raw: weakref.ref[Any], source: Any) -> Any:
    """The raw file's ``_dealloc_warn``: its file was freed open. ``source`` may be the buffer
    of the text file registered (the collector finalizes a cycle's objects in any order)."""
    entry = tracked.get(key)
    if entry is not None and entry.label in FILES:
        del tracked[key]
        report_freed(entry)
    target = raw()
    if target is None:
        return None
    return type(target)._dealloc_warn(target, source)
