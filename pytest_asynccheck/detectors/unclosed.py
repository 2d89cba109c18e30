"""Async resources a test made and never closed (``unclosed``).

Checked: asyncio's socket and datagram transports (a ``StreamWriter`` from
``asyncio.open_connection`` is reported as one, with the writer's fix), subprocess transports
(``loop.subprocess_exec``), the standard library's event loops, ``socket.socket`` objects, and
files ``open()``ed on the loop's thread, when a coroutine of the test (its body, or a step of
one of its async fixtures) made them there from a line of the user's code: that line is where
the finding points (``resource_patches.py`` says how creation is seen, at a few microseconds per
resource made and nothing per call on it).

A resource is unclosed when it is freed while still open (a finding in the phase running then),
or when it is still open after its test's teardown, judged then: a loop it made and did not
close, a transport still open on a loop that is closed. A test that made a resource still open
then has its young garbage generations collected first, so one left in a reference cycle is
freed, and found, in its own test; a test that left nothing open costs nothing more. A socket or
file still alive and open then may belong to a pool or a module-level cache: it is not
reported, unless it is freed open later, which is reported on the test that made it (after that
test's end, as a late finding). A transport on a loop that still runs (a loop shared by the
module's tests) is treated the same way. ``close()`` is enough: ``wait_closed()`` is not
required. What a fixture made is judged like the body's, and named as the fixture's.

Libraries report their own leaks through the loop's exception handler (aiohttp's "Unclosed
client session", "Unclosed connector", "Unclosed connection"): such a report made while a test
runs is a finding on it, at the line that freed the object (or, in asyncio's debug mode, the one
that made it), else at the test's own line. The handler and its log line run as without the
plugin.

``ResourceWarning``s are not used, nor changed: Python ignores them by default, they point at
the line that freed the object, and ``-W error::ResourceWarning`` and pytest's
unraisable-exception reports behave as without the plugin.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import traceback
from typing import Any

from .. import _frames as frames
from .. import _session as session_module
from .._events import Detector
from .._findings import Finding, Kind, Severity
from .._options import Settings
from .._session import CheckSession, TestCheck, in_fixture
from . import resource_patches, resources
from .resources import Entry

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
    "file": (
        "open it in a with block ('with open(...) as f:'); on the event loop's thread, better "
        "read it in a thread: await asyncio.to_thread(path.read_bytes)"
    ),
}
#: The handler-context keys of libraries' own unclosed reports, and what each names.
LIBRARY_KEYS = {
    "client_session": "client session",
    "connector": "connector",
    "client_connection": "connection",
    "client_response": "response",
}
LIBRARY_FIX = "close it: 'async with' the object, or await its close() when done"
STILL_OPEN = "was still open when the test ended"


def _report(entry: Entry, state: str) -> None:
    """A finding on the test that made the resource (late when that test is over)."""
    check = entry.check
    file, line, function = entry.site
    finding = Finding(
        kind=Kind.UNCLOSED.value,
        message=f"{entry.what} made here {state}: it was never closed",
        file=frames.relpath(file, check.session.rootpath),
        line=line,
        function=function,
        call=entry.what,
        fix=FIXES[entry.label],
    )
    if check.allows(finding):
        return
    if entry.fixture is not None:
        finding = in_fixture(finding, *entry.fixture)
    else:  # the test body's, whatever fixture step frees it
        finding = dataclasses.replace(finding, extra={"fixture": ""})
    check.session.report(finding, check.nodeid)


def _judge(obj: Any, label: str) -> bool | None:
    """At the test's end: ``True`` unclosed, ``False`` closed, ``None`` not judged (alive and
    open, and may be a pool's)."""
    if label == "event loop":
        return not obj.is_closed()
    if label == "socket":
        if obj._closed:
            return False
        # Finalized while open (Python's finalizer closed it) yet kept alive since: by the
        # warning it issued, recorded by a warnings filter.
        return True if obj.fileno() == -1 else None
    if label == "file":
        return False if obj.closed else None
    if obj.is_closing():
        return False
    loop = getattr(obj, "_loop", None)
    return True if loop is None or loop.is_closed() else None


class _TestEnds(Detector):
    """Subscribed to ``test_finished`` (never registered as a detector) only while a test has
    registered resources: the tests that made none pay nothing at their end."""

    name = "unclosed"
    phases: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.session: CheckSession | None = None
        self.pending: set[TestCheck] = set()

    def registered(self, check: TestCheck) -> None:
        if check in self.pending:
            return
        self.pending.add(check)
        if self.session is None:
            self.session = check.session
            self.session.detectors.subscribe(self, "test_finished")

    def test_finished(self, test: TestCheck) -> None:
        if test not in self.pending:
            return
        try:
            _end_of_test(test)
        finally:
            self.pending.discard(test)
            if not self.pending and self.session is not None:
                self.session.detectors.unsubscribe(self, "test_finished")
                self.session = None


def _end_of_test(test: TestCheck) -> None:
    # A copy first, made without running Python code: a collection during the loop below may
    # call the registry's weak reference callbacks.
    snapshot = resources.tracked.copy()
    mine = [(key, entry) for key, entry in snapshot.items() if entry.check is test]
    if not mine:
        return
    if any(_may_be_open(entry) for _key, entry in mine):
        # What the test left in a reference cycle is freed, and reported, in its own test.
        gc.collect(1)
    for key, entry in mine:
        if resources.tracked.get(key) is not entry:
            continue  # reported while collected, or closed
        obj = entry()
        try:
            verdict = None if obj is None else _judge(obj, entry.label)
        except Exception:  # a broken object is not a finding
            verdict = False
        if obj is None or verdict is not None:
            del resources.tracked[key]  # judged, or freed
        if obj is None and entry.label == resources.SOCKET:
            # Freed without its weak reference's callback (the collector skips it when the
            # finalizer's warning, recorded, keeps the socket): closing it would have taken
            # it out.
            _report(entry, resources.FREED)
        elif verdict:
            # A socket is judged unclosed only once finalized (see _judge).
            _report(entry, resources.FREED if entry.label == resources.SOCKET else STILL_OPEN)


def _may_be_open(entry: Entry) -> bool:
    """Whether the resource is alive and not closed (no reference to it is kept: the collector
    is to free it)."""
    obj = entry()
    try:
        return obj is not None and _judge(obj, entry.label) is not False
    except Exception:
        return False


def _library_report(context: dict[str, Any]) -> None:
    """A library's own unclosed report, through a loop's exception handler."""
    message = context.get("message")
    if not isinstance(message, str) or not message.startswith("Unclosed"):
        return
    named = next((key for key in LIBRARY_KEYS if key in context), None)
    session = session_module._active
    check = session.current if session is not None else None
    if named is None or check is None or check.closed:
        return
    root = check.session.rootpath
    site = _made_at(context.get("source_traceback"))
    if site is None:
        site = frames.user_site(sys._getframe(1))
    if site is None:
        path, line, name = check.item.location
        site = (path, (line or 0) + 1, name)
    what = type(context[named]).__name__
    check.add(
        Finding(
            kind=Kind.UNCLOSED.value,
            message=f"{message}: a {LIBRARY_KEYS[named]} ({what}) was never closed",
            file=frames.relpath(site[0], root),
            line=site[1],
            function=site[2],
            call=what,
            fix=LIBRARY_FIX,
        )
    )


def _made_at(stack: Any) -> tuple[str, int, str] | None:
    """The innermost user line of asyncio's debug-mode ``source_traceback``, if any."""
    if not isinstance(stack, traceback.StackSummary):
        return None
    for summary in reversed(stack):
        if frames.is_user_file(summary.filename):
            return summary.filename, summary.lineno or 0, summary.name
    return None


class UnclosedDetector(Detector):
    name = "unclosed"
    phases: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._patches = resource_patches.Patches()
        self._ends = _TestEnds()

    def session_started(self, session: CheckSession) -> None:
        resources.on_registered.append(self._ends.registered)
        resources.on_freed_open.append(_report)
        resource_patches.install(self._patches, _library_report)

    def session_ending(self, session: CheckSession) -> None:
        # Before the blocking check's session_finished: this check's open() is on top of its.
        resource_patches.uninstall_open()
        self._patches.undo()

    def session_finished(self, session: CheckSession) -> None:
        resource_patches.uninstall_open()
        self._patches.undo()
        if self._ends.registered in resources.on_registered:
            resources.on_registered.remove(self._ends.registered)
        if _report in resources.on_freed_open:
            resources.on_freed_open.remove(_report)
        resources.tracked.clear()
        resources.writers.clear()


def unclosed_detector(settings: Settings) -> Detector | None:
    if settings.severity(Kind.UNCLOSED) is Severity.OFF:
        return None
    return UnclosedDetector()
