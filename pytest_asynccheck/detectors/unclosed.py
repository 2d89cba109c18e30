"""Async resources the test body made and never closed (``unclosed``).

Tracked: asyncio's socket and datagram transports (a ``StreamWriter`` from
``asyncio.open_connection`` is reported as one, with the writer's fix), subprocess transports
(``loop.subprocess_exec``), the standard library's event loops, and ``socket.socket`` objects.
A resource is tracked when an async test's body (the call phase) makes it on the test's loop thread
and a line of the user's code is on the stack: that line is where the finding points. Creation
is seen by wrapping, for the session, the ``__init__`` of those classes: a few microseconds per
resource made, nothing per call on it (asyncio's own sockets, the loop's self-pipe, connections
a server accepts and fixtures' resources are never tracked). ``ResourceWarning``s are not used
to find leaks: Python ignores them by default, their location is where the object was freed,
not made, and they are left exactly as they are, so ``-W error::ResourceWarning`` and pytest's
unraisable-exception reports behave as without the plugin.

A resource is unclosed when it is freed while still open (checked in the wrapped ``__del__`` of
the transport, writer or loop, before asyncio's own, or from a weak reference for a socket whose
``close()`` or ``detach()`` was never called), or, at the test's end after its teardown (and a
collection of the young generations when it made any), when a transport's loop is closed and the
transport is not closing, or a loop it made is not closed. A socket still alive and open at the
end may belong to a pool and is reported only if it is freed open later (on the test that made
it). ``close()`` is enough: ``wait_closed()`` is not required.

Libraries report their own leaks through the loop's exception handler (aiohttp's "Unclosed
client session", "Unclosed connector", "Unclosed connection"): while the never-retrieved check
watches that handler during the test body, such a report becomes a finding at the user line
the object was freed from (the library does not record where it was made).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import socket
import sys
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

from .. import _frames as frames
from .. import _session as session_module
from .._events import Detector
from .._findings import Finding, Kind, Severity
from .._options import Settings
from .._session import CheckSession, TestCheck
from .tasks import HANDLER_OBSERVERS

#: On a tracked transport, writer or loop: (the test's check, label, creating site).
MADE_ATTR = "_asynccheck_made_at"
#: The handler-context keys of libraries' own unclosed reports, and what each names.
LIBRARY_KEYS = {
    "client_session": "client session",
    "connector": "connector",
    "client_connection": "connection",
    "client_response": "response",
}

Site = tuple[str, int, str]
Made = tuple[TestCheck, str, Site]

FIXES = {
    "StreamWriter": (
        "close the connection when done: writer.close() (and await writer.wait_closed()) in a "
        "finally block"
    ),
    "subprocess transport": (
        "call transport.close() when the process is done, or use asyncio.create_subprocess_exec "
        "and await proc.wait()"
    ),
    "transport": "call transport.close() when done, in a finally block",
    "socket": "use 'with socket.socket(...) as sock:' or call sock.close() in a finally block",
    "event loop": "call loop.close() in a finally block, or run it with asyncio.Runner",
}
LIBRARY_FIX = "close it: 'async with' the object, or await its close() when done"


def _tracking(thread: int) -> TestCheck | None:
    """The test whose body is running on this thread, if any."""
    session = session_module._active
    if session is None:
        return None
    check = session.current
    if check is None or check.phase != "call" or check.closed:
        return None
    if thread != check.loop_thread:  # None for a sync test: only async tests are checked
        return None
    return check


def _creation_site() -> Site | None:
    """The innermost user frame (this plugin's own frames are not the user's)."""
    frame: types.FrameType | None = sys._getframe(1)
    is_user_file = frames.is_user_file
    while frame is not None:
        code = frame.f_code
        if is_user_file(code.co_filename):
            return code.co_filename, frame.f_lineno, code.co_name
        frame = frame.f_back
    return None


class _Sockets:
    """Open sockets the test made: id -> (weak reference, check, site). ``close()`` and
    ``detach()`` take a socket out; a weak reference's callback finds one freed while in."""

    def __init__(self) -> None:
        self.open: dict[int, tuple[weakref.ref[Any], TestCheck, Site]] = {}

    def add(self, sock: Any, check: TestCheck) -> None:
        site = _creation_site()
        if site is None:
            return
        key = id(sock)
        self.open[key] = (weakref.ref(sock, functools.partial(self._freed, key)), check, site)

    def _freed(self, key: int, ref: weakref.ref[Any]) -> None:
        entry = self.open.get(key)
        if entry is not None and entry[0] is ref:
            del self.open[key]
            _report(entry[1], "socket", entry[2], "socket.socket", "was freed while still open")


_sockets = _Sockets()


def _report(check: TestCheck, label: str, site: Site, what: str, state: str) -> None:
    root = check.session.rootpath
    file, line, function = site
    finding = Finding(
        kind=Kind.UNCLOSED.value,
        message=f"{what} made here {state}: it was never closed",
        file=frames.relpath(file, root),
        line=line,
        function=function,
        call=what,
        fix=FIXES[label],
    )
    with contextlib.suppress(Exception):  # a finalizer must never fail over a finding
        check.session.report(finding, check.nodeid, check.phase)


def _label(obj: Any) -> str:
    if isinstance(obj, asyncio.AbstractEventLoop):
        return "event loop"
    if isinstance(obj, asyncio.SubprocessTransport):
        return "subprocess transport"
    return "transport"


def _is_open(obj: Any) -> bool:
    if isinstance(obj, asyncio.AbstractEventLoop):
        return not obj.is_closed()
    return not obj.is_closing()


def _report_object(obj: Any, state: str) -> None:
    made: Made | None = obj.__dict__.pop(MADE_ATTR, None)
    if made is None:
        return
    check, label, site = made
    what = type(obj).__name__ if label == "transport" else label
    _report(check, label, site, what, state)


class _Patches:
    """Class attributes replaced for the session, put back only if still ours."""

    def __init__(self) -> None:
        self.saved: list[tuple[type, str, Any, Any]] = []

    def wrap(self, owner: type, name: str, make: Callable[[Any], Any]) -> None:
        original = owner.__dict__.get(name)
        if original is None:
            return
        wrapper = functools.wraps(original)(make(original))
        setattr(owner, name, wrapper)
        self.saved.append((owner, name, original, wrapper))

    def undo(self) -> None:
        """Put back each original whose place still holds our wrapper; the others (another
        patch went on top since) stay for a later call, once that patch is gone."""
        kept = []
        for owner, name, original, wrapper in reversed(self.saved):
            if owner.__dict__.get(name) is wrapper:
                setattr(owner, name, original)
            else:
                kept.append((owner, name, original, wrapper))
        self.saved = kept[::-1]


def _tracking_init(register: Callable[[Any, TestCheck], None]) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            check = _tracking(threading.get_ident())
            if check is not None:
                register(self, check)

        return __init__

    return make


def _checking_del(original: Any) -> Any:
    def __del__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            # A StreamWriter freed with its transport open closes it (Python 3.11.7+).
            resource = self.transport if isinstance(self, asyncio.StreamWriter) else self
            if MADE_ATTR in resource.__dict__ and _is_open(resource):
                _report_object(resource, "was freed while still open")
        except Exception:  # asyncio's own finalizer must still run
            pass
        original(self, *args, **kwargs)

    return __del__


def _closing(original: Any) -> Any:
    def close(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _sockets.open:
            _sockets.open.pop(id(self), None)
        return original(self, *args, **kwargs)

    return close


def _disown(sock: Any) -> Site | None:
    """A socket a tracked transport or loop took over is that object's to close; returns
    where the socket was made, if it was tracked."""
    if sock is not None and _sockets.open:
        entry = _sockets.open.pop(id(sock), None)
        if entry is not None:
            return entry[2]
    return None


class UnclosedDetector(Detector):
    name = "unclosed"
    phases: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._patches = _Patches()
        # Installed when the detectors are made, before any session_started: the blocking
        # detector wraps socket.socket.__init__ too, in its session_started, and takes its
        # wrapper off only while it is on top. So its wrapper goes on top of this one, comes
        # off first (this detector's session_finished runs after its), and this one last.
        self._install()

    def _install(self) -> None:
        from asyncio import base_subprocess, selector_events

        selector_transport: type = selector_events._SelectorTransport  # type: ignore[attr-defined]
        patches = self._patches

        def track(obj: Any, check: TestCheck) -> None:
            # A transport is made where its socket was, most often: no second walk then.
            site = _disown(getattr(obj, "_sock", None)) or _creation_site()
            if site is not None:
                obj.__dict__[MADE_ATTR] = (check, _label(obj), site)
                check.data.setdefault("unclosed.made", []).append(weakref.ref(obj))

        def track_writer(writer: Any, check: TestCheck) -> None:
            made = writer.transport.__dict__.get(MADE_ATTR)
            if made is not None and made[0] is check:
                # The writer is what the user holds: the finding names it and its fix.
                writer.transport.__dict__[MADE_ATTR] = (check, "StreamWriter", made[2])

        def track_loop(loop: Any, check: TestCheck) -> None:
            track(loop, check)
            _disown(getattr(loop, "_ssock", None))
            _disown(getattr(loop, "_csock", None))

        patches.wrap(socket.socket, "__init__", _tracking_init(_sockets.add))
        patches.wrap(socket.socket, "close", _closing)
        patches.wrap(socket.socket, "detach", _closing)
        for cls, register in (
            (selector_transport, track),
            (base_subprocess.BaseSubprocessTransport, track),
            (selector_events.BaseSelectorEventLoop, track_loop),
            (asyncio.StreamWriter, track_writer),
        ):
            patches.wrap(cls, "__init__", _tracking_init(register))
        for cls in (
            selector_transport,
            base_subprocess.BaseSubprocessTransport,
            asyncio.BaseEventLoop,
            asyncio.StreamWriter,
        ):
            patches.wrap(cls, "__del__", _checking_del)

    def session_started(self, session: CheckSession) -> None:
        HANDLER_OBSERVERS.append(_library_report)

    def session_finished(self, session: CheckSession) -> None:
        self._patches.undo()
        if _library_report in HANDLER_OBSERVERS:
            HANDLER_OBSERVERS.remove(_library_report)

    def test_finished(self, test: TestCheck) -> None:
        refs: list[weakref.ref[Any]] = test.data.pop("unclosed.made", [])
        mine = [key for key, entry in _sockets.open.items() if entry[1] is test]
        if not mine and not any(_still_open(ref) for ref in refs):
            return  # everything the test made is closed, or freed and checked as it went
        gc.collect(1)  # what the test made and left in a reference cycle is freed in it
        for key in mine:
            entry = _sockets.open.get(key)
            sock = entry[0]() if entry is not None else None
            if entry is not None and sock is not None and sock.fileno() == -1:
                # Finalized while open, never close()d: kept alive since by the warning
                # asyncio's or Python's finalizer issued (a recorded warning holds its source).
                del _sockets.open[key]
                _report(test, "socket", entry[2], "socket.socket", "was freed while still open")
        for ref in refs:
            obj = ref()
            if obj is None or MADE_ATTR not in obj.__dict__:
                continue
            try:
                if _is_open(obj) and _loop_closed(obj):
                    _report_object(obj, "was still open when the test ended")
            except Exception:  # a broken object is not a finding
                pass


def _still_open(ref: weakref.ref[Any]) -> bool:
    obj = ref()
    try:
        return obj is not None and MADE_ATTR in obj.__dict__ and _is_open(obj)
    except Exception:
        return False


def _loop_closed(obj: Any) -> bool:
    """Whether the object's loop is closed (a loop: always): a transport still open on a loop
    that runs on may be a pooled connection other tests will use."""
    if isinstance(obj, asyncio.AbstractEventLoop):
        return True
    loop = getattr(obj, "_loop", None)
    return loop is None or loop.is_closed()


def _library_report(test: TestCheck, context: dict[str, Any]) -> None:
    """A library's own unclosed report, through the loop's exception handler."""
    message = context.get("message")
    if not isinstance(message, str) or not message.startswith("Unclosed"):
        return
    named = next((key for key in LIBRARY_KEYS if key in context), None)
    if named is None:
        return
    obj = context[named]
    frame = frames.user_frame(frames.walk(sys._getframe(1)))
    root = test.session.rootpath
    site = (
        (frames.relpath(frame.f_code.co_filename, root), frame.f_lineno, frame.f_code.co_name)
        if frame is not None
        else ("", 0, "")
    )
    what = type(obj).__name__
    test.session.report(
        Finding(
            kind=Kind.UNCLOSED.value,
            message=(
                f"{message}: a {LIBRARY_KEYS[named]} ({what}) was freed here while still open"
            ),
            file=site[0],
            line=site[1],
            function=site[2],
            call=what,
            fix=LIBRARY_FIX,
        ),
        test.nodeid,
        test.phase,
    )


def unclosed_detector(settings: Settings) -> Detector | None:
    if settings.severity(Kind.UNCLOSED) is Severity.OFF:
        return None
    return UnclosedDetector()
