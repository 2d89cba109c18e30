"""Where the ``unclosed`` check sees resources made, closed and freed: wrappers it puts on the
standard library's classes for the session, and the registry of what the tests made.

A resource is registered when its ``__init__`` (sockets, asyncio's selector and subprocess
transports, ``StreamWriter``, the standard library's event loops) or ``open()`` returns on the
thread of a running coroutine of the current test (its body, or a step of one of its async
fixtures) with a line of the user's code on the stack: that line is where a finding points, so
nothing is walked again later and ``tracemalloc`` is not needed. Every other creation costs one
wrapper call and a few attribute reads; nothing is added to a call on an open resource.

How a resource found open when it is freed is seen, without changing what user code sees (no
subclass, no proxy, every type as without the plugin):

- transports, writers, loops: the class's ``__del__`` is wrapped, and checks before asyncio's own;
  a ``StreamWriter`` of a Python without one (before 3.11.7) is found by a weak reference's
  callback, as its connection stays open on the loop after it;
- sockets: ``close()`` and ``detach()`` take a registered socket out of the registry, and a weak
  reference's callback finds one freed while still in it (Python's own finalizer closes it);
- files (text and buffered: what ``open()`` returns unless ``buffering=0``): freeing an open
  file makes its buffer call ``_dealloc_warn`` on the raw file by attribute, just before Python
  warns and closes it, so a registered file's raw ``FileIO`` gets that one method on the
  instance, which reports and hands on to the class's.

``open`` goes on top of the blocking check's own ``open`` wrapper, if any: ``builtins.open`` and
``io.open`` (``pathlib``, ``os.fdopen`` call the latter); other names bound to the original (a
module's ``from io import open``) are not followed. Its two functions' frames are named like
code compiled from a string, so that the blocking check still sees the user's line as the
caller.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import io
import socket
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

from .. import _frames as frames
from .. import _session as session_module
from .._frames import Site
from .._session import FIXTURE, TestCheck


class Entry:
    """A registered resource: a weak reference to it, the test that made it, where, and what it
    is (``label``, a key of ``FIXES``; ``what``, its name in the finding). A plain class with
    slots: one is made for every resource a test makes."""

    __slots__ = ("check", "fixture", "label", "ref", "site", "what")

    def __init__(
        self,
        ref: weakref.ref[Any],
        check: TestCheck,
        label: str,
        what: str,
        site: Site,
        fixture: tuple[str, str] | None,
    ) -> None:
        self.ref = ref
        self.check = check
        self.label = label
        self.what = what
        self.site = site
        #: (fixture name, step) when a step of an async fixture made it
        self.fixture = fixture


#: id of a registered resource -> its entry, until it is known closed or reported.
tracked: dict[int, Entry] = {}
#: Called with (entry, state) for a resource found open as it is freed.
on_freed_open: list[Callable[[Entry, str], None]] = []
#: Called with the check of a test each time it registers a resource.
on_registered: list[Callable[[TestCheck], None]] = []
FREED = "was freed while still open"
_get_running_loop = asyncio._get_running_loop
SOCKET = "socket"
SOCKETS = frozenset((SOCKET,))
FILES = frozenset(("file",))
#: What a finalizer of asyncio's judges: the object it finalizes.
ASYNCIO_OBJECTS = frozenset(("transport", "subprocess transport", "StreamWriter", "event loop"))


def owner() -> tuple[TestCheck, tuple[str, str] | None] | None:
    """The test whose coroutine runs on this thread now, and the fixture step it is in."""
    session = session_module._active
    check = session.current if session is not None else None
    if check is None or check.closed:
        return None
    step = FIXTURE.get()
    if step is not None:
        # A step's context is copied into threads it starts (asyncio.to_thread): only the
        # loop's thread is the step's own.
        if asyncio._get_running_loop() is None:
            return None
        return check, (step.run.name, step.phase)
    if check.phase == "call" and check.loop_thread == threading.get_ident():
        return check, None
    return None


def register(
    obj: Any, label: str, what: str, site: Site | None = None, depth: int = 2
) -> Entry | None:
    """Register ``obj`` if the current test's coroutine made it; returns its entry."""
    who = owner()
    if who is None:
        return None
    site = site or frames.user_site(sys._getframe(depth))
    if site is None:
        return None  # made by the loop or a library on its own (a server's accepted socket)
    key = id(obj)
    # Only a socket is judged when its weak reference dies. The others are judged in their
    # finalizers, which the collector runs after it has cleared the weak references of what it
    # frees: a dead reference under the same id is then taken for the object itself.
    callback = functools.partial(_gone, key) if label == SOCKET else None
    entry = tracked[key] = Entry(weakref.ref(obj, callback), who[0], label, what, site, who[1])
    for call in on_registered:
        call(entry.check)
    return entry


def forget(obj: Any, labels: frozenset[str]) -> Entry | None:
    """``obj`` was closed, or handed to an owner that closes it: no longer checked. Returns its
    entry if it was registered with one of ``labels``."""
    key = id(obj)
    entry = tracked.get(key)
    if entry is None or entry.label not in labels:
        return None
    current = entry.ref()
    if current is not obj and current is not None:
        return None  # another object had this id before
    del tracked[key]
    return entry


def _report_freed(entry: Entry) -> None:
    for call in on_freed_open:
        with contextlib.suppress(Exception):  # a finalizer never fails over a finding
            call(entry, FREED)


def freed_open(obj: Any, labels: frozenset[str]) -> None:
    entry = forget(obj, labels)
    if entry is not None:
        _report_freed(entry)


def _gone(key: int, ref: weakref.ref[Any]) -> None:
    """A registered socket was freed while still registered: it was never closed."""
    entry = tracked.get(key)
    if entry is None or entry.ref is not ref:
        return
    del tracked[key]
    _report_freed(entry)


class Patches:
    """Attributes replaced for the session, put back only where still ours."""

    def __init__(self) -> None:
        self.saved: list[tuple[Any, str, bool, Any, Any]] = []

    def wrap(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        had_own = name in vars(owner)
        original = getattr(owner, name, None) if not had_own else vars(owner)[name]
        if original is None or (isinstance(owner, type) and not had_own):
            return  # not on this version (StreamWriter.__del__ is new in 3.11.7)
        wrapper = functools.wraps(original)(make(original))
        setattr(owner, name, wrapper)
        self.saved.append((owner, name, had_own, original, wrapper))

    def undo(self) -> None:
        for owner, name, had_own, original, wrapper in reversed(self.saved):
            if vars(owner).get(name) is wrapper:
                if had_own:
                    setattr(owner, name, original)
                else:
                    delattr(owner, name)
        self.saved.clear()


def _may_be_a_tests() -> TestCheck | None:
    """The test running now, when a loop runs on this thread: two reads and one C call, the
    cost of most creations (the runners make their loops and self-pipes with no loop running)."""
    session = session_module._active
    if session is None or _get_running_loop() is None:
        return None
    return session.current


def _registering_init(register_made: Callable[[Any], None]) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            # _may_be_a_tests(), inline: this runs for every socket and loop.
            session = session_module._active
            if session is not None and _get_running_loop() is not None and session.current:
                register_made(self)

        return __init__

    return make


def _is_open(obj: Any) -> bool:
    if isinstance(obj, asyncio.AbstractEventLoop):
        return not obj.is_closed()
    return not obj.is_closing()


def _checking_del(original: Any) -> Any:
    def __del__(self: Any) -> None:
        if tracked:
            # try/except rather than contextlib.suppress, and the registry asked before the
            # object: this runs for every transport and writer freed while a test has
            # resources (benchmarks/README.md, "Unclosed resources").
            try:
                # A StreamWriter freed with its transport open closes it (Python 3.11.7+).
                resource = self.transport if isinstance(self, asyncio.StreamWriter) else self
                if id(resource) in tracked:
                    if _is_open(resource):
                        freed_open(resource, ASYNCIO_OBJECTS)
                    else:
                        forget(resource, ASYNCIO_OBJECTS)
            except Exception:  # asyncio's own finalizer must still run
                pass
        original(self)

    return __del__


def _forgetting(original: Any) -> Any:
    # socket.close() and detach() take no argument: no packing on every close of the session.
    def close(self: Any) -> Any:
        if tracked:
            forget(self, SOCKETS)
        return original(self)

    return close


def _transport_label(obj: Any) -> tuple[str, str]:
    if isinstance(obj, asyncio.SubprocessTransport):
        return "subprocess transport", "subprocess transport"
    return "transport", type(obj).__name__


def _track_transport(transport: Any) -> None:
    # A transport is made over a socket the same line made, most often: the transport owns it
    # now (it closes it), and its site is reused without a second walk.
    sock = getattr(transport, "_sock", None)
    entry = forget(sock, SOCKETS) if sock is not None else None
    label, what = _transport_label(transport)
    register(transport, label, what, entry.site if entry else None, depth=3)


#: Whether asyncio closes the connection of a StreamWriter freed open (Python 3.11.7+).
WRITER_FINALIZES = "__del__" in vars(asyncio.StreamWriter)
#: Before that, weak references to the tracked writers, by id: a writer freed while its
#: connection is open is found by its reference's callback instead.
writers: dict[int, weakref.ref[Any]] = {}


def _track_writer(writer: Any) -> None:
    transport = writer.transport
    entry = tracked.get(id(transport))
    if entry is not None and entry.ref() is transport and entry.label == "transport":
        # The writer is what the user holds: the finding names it and its fix.
        entry.label = entry.what = "StreamWriter"
        if not WRITER_FINALIZES:
            callback = functools.partial(_writer_gone, id(writer), weakref.ref(transport))
            writers[id(writer)] = weakref.ref(writer, callback)


def _writer_gone(key: int, transport: weakref.ref[Any], ref: weakref.ref[Any]) -> None:
    if writers.get(key) is ref:
        del writers[key]
    connection = transport()
    if connection is not None and not connection.is_closing():
        freed_open(connection, ASYNCIO_OBJECTS)


def _track_loop(loop: Any) -> None:
    if register(loop, "event loop", "event loop", depth=3) is not None:
        for sock in (getattr(loop, "_ssock", None), getattr(loop, "_csock", None)):
            if sock is not None:
                forget(sock, SOCKETS)  # its self-pipe: the loop closes it


def _track_socket(sock: Any) -> None:
    register(sock, "socket", "socket.socket", depth=3)


def _file_freed_open(key: int, raw: weakref.ref[Any], source: Any) -> Any:
    """The raw file's ``_dealloc_warn``: its file was freed open. ``source`` may be the buffer
    of the text file registered (the collector finalizes a cycle's objects in any order)."""
    entry = tracked.get(key)
    if entry is not None and entry.label in FILES:
        del tracked[key]
        _report_freed(entry)
    target = raw()
    if target is None:
        return None
    return type(target)._dealloc_warn(target, source)


#: The functions beneath this module's ``builtins.open`` and ``io.open``, kept as module
#: globals and read at each call: a wrapper beneath that is taken off while this one is on top
#: (the blocking check's, which puts its originals back into every module's globals, this
#: one's too) is skipped from then on, and never put back when this one comes off.
builtins_open_beneath: Any = None
io_open_beneath: Any = None


def _open_builtins(*args: Any, **kwargs: Any) -> Any:
    return _tracked_file(builtins_open_beneath(*args, **kwargs))


def _open_io(*args: Any, **kwargs: Any) -> Any:
    return _tracked_file(io_open_beneath(*args, **kwargs))


# Their frames pass for code compiled from a string: the blocking check's open() beneath them
# exempts a call whose caller is this plugin's own code, while it walks past such frames to the
# user's line, and leaves them out of the functions it names ("open()", not "_open_io -> open").
for _opener in (_open_builtins, _open_io):
    _opener.__code__ = _opener.__code__.replace(co_filename="<string: pytest-asynccheck open>")


def _tracked_file(opened: Any) -> Any:
    if _may_be_a_tests() is not None:
        with contextlib.suppress(Exception):
            _track_file(opened)
    return opened


def install_open() -> None:
    global builtins_open_beneath, io_open_beneath
    if builtins.open is not _open_builtins:
        builtins_open_beneath = builtins.open
        builtins.open = _open_builtins
    if io.open is not _open_io:
        io_open_beneath = io.open
        io.open = _open_io


def uninstall_open() -> None:
    """Take ``open`` off, where still this module's (a test's own patch on top stays)."""
    if builtins.open is _open_builtins:
        builtins.open = builtins_open_beneath
    if io.open is _open_io:
        io.open = io_open_beneath


def _track_file(opened: Any) -> None:
    raw = getattr(getattr(opened, "buffer", opened), "raw", None)
    if not isinstance(raw, io.FileIO) or owner() is None:
        return  # unbuffered: the raw file closes itself without calling _dealloc_warn
    if register(opened, "file", "open()", depth=4) is not None:
        hook = functools.partial(_file_freed_open, id(opened), weakref.ref(raw))
        raw._dealloc_warn = hook  # type: ignore[attr-defined]


def _reading_reports(read: Callable[[dict[str, Any]], None]) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def call_exception_handler(self: Any, context: dict[str, Any]) -> None:
            with contextlib.suppress(Exception):  # the loop's handler must still run
                read(context)
            original(self, context)

        return call_exception_handler

    return make


def install(patches: Patches, read_report: Callable[[dict[str, Any]], None]) -> None:
    """Put the wrappers on for the session."""
    from asyncio import base_subprocess, selector_events

    selector_transport: type = selector_events._SelectorTransport  # type: ignore[attr-defined]
    patches.wrap(socket.socket, "__init__", _registering_init(_track_socket))
    patches.wrap(socket.socket, "close", _forgetting)
    patches.wrap(socket.socket, "detach", _forgetting)
    for cls, track in (
        (selector_transport, _track_transport),
        (base_subprocess.BaseSubprocessTransport, _track_transport),
        (selector_events.BaseSelectorEventLoop, _track_loop),
        (asyncio.StreamWriter, _track_writer),
    ):
        patches.wrap(cls, "__init__", _registering_init(track))
    for cls in (
        selector_transport,
        base_subprocess.BaseSubprocessTransport,
        asyncio.BaseEventLoop,
        asyncio.StreamWriter,
    ):
        patches.wrap(cls, "__del__", _checking_del)
    patches.wrap(asyncio.BaseEventLoop, "call_exception_handler", _reading_reports(read_report))
    install_open()
