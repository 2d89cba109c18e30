"""The ``unclosed`` check's wrappers on the standard library, for the session: where it sees
resources made, closed and freed, and hands them to the registry (``resources.py``).

Made: the ``__init__`` of sockets, asyncio's selector and subprocess transports,
``StreamWriter`` and the standard library's event loops, and ``open()``, register what they
return if a test's coroutine made it. Every other creation costs one wrapper call and a few
attribute reads; nothing is added to a call on an open resource. A transport made over a
registered socket takes its place (it closes it), with its line; a ``StreamWriter`` renames its
transport's entry (the writer is what the user holds); a loop's self-pipe is the loop's.

Closed and freed, without changing what user code sees (no subclass, no proxy, every type as
without the plugin):

- transports, writers, loops: the class's ``__del__`` is wrapped, and checks before asyncio's own;
- sockets: ``close()`` and ``detach()`` take a registered socket out of the registry (a weak
  reference of the registry's finds one freed open);
- files (text and buffered: what ``open()`` returns unless ``buffering=0``): freeing an open
  file makes its buffer call ``_dealloc_warn`` on the raw file by attribute, just before Python
  warns and closes it, so a registered file's raw ``FileIO`` gets that one method on the
  instance, which reports and hands on to the class's;
- libraries' own reports of what they leaked go through the loop's ``call_exception_handler``,
  wrapped to read them first.

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
import weakref
from collections.abc import Callable
from typing import Any

from .. import _session as session_module
from .._parameters import compiled_with_parameters_of
from .._session import TestCheck
from .resources import (
    ASYNCIO_OBJECTS,
    SOCKETS,
    WRITER_FINALIZES,
    file_freed_open,
    forget,
    freed_open,
    owner,
    register,
    take_over,
    tracked,
    watch_writer,
)

_get_running_loop = asyncio._get_running_loop


class Patches:
    """Attributes replaced for the session, put back only where still ours."""

    def __init__(self) -> None:
        self.saved: list[tuple[Any, str, bool, Any, Any]] = []

    def wrap(self, target: Any, name: str, make: Callable[[Any], Any]) -> None:
        had_own = name in vars(target)
        original = getattr(target, name, None) if not had_own else vars(target)[name]
        if original is None or (isinstance(target, type) and not had_own):
            return  # not on this version (StreamWriter.__del__ is new in 3.11.7)
        wrapper = functools.wraps(original)(make(original))
        setattr(target, name, wrapper)
        self.saved.append((target, name, had_own, original, wrapper))

    def undo(self) -> None:
        for target, name, had_own, original, wrapper in reversed(self.saved):
            if vars(target).get(name) is wrapper:
                if had_own:
                    setattr(target, name, original)
                else:
                    delattr(target, name)
        self.saved.clear()


def _may_be_a_tests() -> TestCheck | None:
    """The test running now, when a loop runs on this thread: two reads and one C call, the
    cost of most creations (the runners make their loops and self-pipes with no loop running)."""
    session = session_module._active
    if session is None or _get_running_loop() is None:
        return None
    return session.current


def _registering_init(register_made: Callable[[Any], None]) -> Callable[[Any], Any]:
    return functools.partial(_init_with_parameters_of, register_made=register_made)


_INIT = """
def __init__({declared}):
    __tracebackhide__ = True
    _asynccheck_original({passed})
    # _may_be_a_tests(), inline: this runs for every socket and loop.
    _asynccheck_session = _asynccheck_module._active
    if (
        _asynccheck_session is not None
        and _asynccheck_running_loop() is not None
        and _asynccheck_session.current
    ):
        _asynccheck_register({first})
"""


def _init_with_parameters_of(
    original: Any, register_made: Callable[[Any], None]
) -> Callable[..., None]:
    """The registering ``__init__`` that calls ``original``, with ``original``'s own parameters
    where they can be read. Every socket, transport, writer and loop is made through one, and a
    call that packs its arguments into a tuple and a dictionary costs four times one that does
    not (benchmarks/README.md, "What each kind costs"); what the call does is the same."""
    namespace: dict[str, Any] = {
        "_asynccheck_original": original,
        "_asynccheck_module": session_module,
        "_asynccheck_running_loop": _get_running_loop,
        "_asynccheck_register": register_made,
    }
    return compiled_with_parameters_of(original, _INIT, "__init__", namespace, __file__)


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
                is_writer = isinstance(self, asyncio.StreamWriter)
                resource = self._transport if is_writer else self
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
    # socket.close() and detach() take no argument: no packing on every close of the session;
    # the registry asked first: most sockets closed are not in it (a transport's, adopted).
    def close(self: Any) -> Any:
        if tracked and id(self) in tracked:
            forget(self, SOCKETS)
        return original(self)

    return close


def _track_transport(transport: Any) -> None:
    if isinstance(transport, asyncio.SubprocessTransport):
        label = what = "subprocess transport"
    else:
        label, what = "transport", type(transport).__name__
    # A transport is made over a socket the same line made, most often: the transport owns it
    # now (it closes it), and takes its entry's line without a second walk.
    sock = getattr(transport, "_sock", None)
    entry = forget(sock, SOCKETS) if sock is not None else None
    if entry is None:
        register(transport, label, what, depth=3)
    else:
        take_over(entry, transport, label, what)


def _track_writer(writer: Any) -> None:
    transport = writer._transport  # as asyncio's own finalizer reads it: no property call
    entry = tracked.get(id(transport))
    if entry is not None and entry() is transport and entry.label == "transport":
        # The writer is what the user holds: the finding names it and its fix.
        entry.label = entry.what = "StreamWriter"
        if not WRITER_FINALIZES:
            watch_writer(writer, transport)


def _track_loop(loop: Any) -> None:
    if register(loop, "event loop", "event loop", depth=3) is not None:
        for sock in (getattr(loop, "_ssock", None), getattr(loop, "_csock", None)):
            if sock is not None:
                forget(sock, SOCKETS)  # its self-pipe: the loop closes it


def _track_socket(sock: Any) -> None:
    register(sock, "socket", "socket.socket", depth=3)


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
        hook = functools.partial(file_freed_open, id(opened), weakref.ref(raw))
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
