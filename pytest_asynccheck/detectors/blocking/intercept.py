"""Known blocking calls, intercepted at the call while a check session runs.

The catalogue is one declarative table (``CATALOGUE``): the dotted name a user writes in an
allow list, why the call blocks, the async alternative, and optionally a predicate that says
"this particular call cannot block" (a non-blocking socket, a set event, ``timeout=0``).

Interception replaces each catalogued callable on its module or class, and also rebinds every
alias of it found in the globals of loaded modules (``from time import sleep as nap``), so how
the name was imported does not matter. Everything is put back when the session ends.

A patched call that does not run on a thread with a running asyncio loop costs one C call and
a comparison. On the test's loop thread, while a test runs (and inside a trio task of a trio
test), the call is timed, the user's line is found, and a ``blocking`` finding is recorded;
the call itself always proceeds unchanged, so nothing is raised into the code under test. The
wrapper calls the original from its own frame, one frame in all, marked ``__tracebackhide__``:
pytest shows an exception the call raises as it would without the plugin.

Socket methods (``connect``, ``accept``, ``recv*``, ``send*``) are set on the Python class
``socket.socket`` itself, over the C methods it inherits (and put back, or deleted, at the end).
A socket therefore keeps its exact type, which trio requires (it refuses any socket whose type
is not ``socket.socket``), and every socket is checked: made before the session, by a user
subclass, or adopted from a file descriptor. The wrapper's first test is ``getblocking()``, a C
call: the non-blocking sockets of asyncio and trio go straight to the C method after it (about
0.1 µs per call). Moving blocking sockets into a checked subclass cost those nothing but broke
trio; an audit hook sees no socket reads or writes and can never be removed.

A name look-up that cannot wait on a resolver is not reported: ``getaddrinfo`` of no host, of an
IPv4 or IPv6 address, or with ``AI_NUMERICHOST`` (trio asks that way first), with a numeric
port; ``gethostbyname[_ex]`` of a dotted quad; ``getnameinfo`` with both ``NI_NUMERICHOST`` and
``NI_NUMERICSERV``. ``gethostbyaddr`` always looks the address up.

The finding names the outermost library function between the user's line and the call
(``mimetypes.guess_type -> open``); allow entries (``parse_allow_entry``) match the call, any
function on that way, a caller anywhere on the stack, or the user's file.

A catalogue row is all it takes to add a call: its module is the longest prefix of its name
that is a module. Lazy listings (``os.walk``, ``glob.iglob``, ``Path.glob``) are caught at the
``os.scandir``/``os.listdir`` of the iteration step that reads a directory.

Not intercepted (the watchdog still reports them when they hold the loop past the stall
threshold): ``threading.Lock``/``RLock`` acquires (immutable C types), reads and writes on
file objects that are already open (C types; the ``open`` is caught), ``os.stat`` and friends,
and ``select.poll``/``epoll`` objects. A nested loop started through ``nest_asyncio`` replaces
the patched ``run_until_complete`` on the loop's own class, so only unpatched asyncio's nested
``asyncio.run``/``run_until_complete`` (which also raise ``RuntimeError``) are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fnmatch
import functools
import importlib.util
import itertools
import logging
import os
import socket
import sys
import sysconfig
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ... import _clock
from ... import _frames as frames
from ..._events import Detector, Detectors
from ..._findings import Finding, Kind, Severity
from ..._options import Settings

if TYPE_CHECKING:
    from ..._session import CheckSession, TestCheck
    from .watchdog import Watchdog

LOGGER = logging.getLogger("pytest_asynccheck")

Predicate = Callable[..., bool]


# -- predicates: True when this call cannot block ----------------------------------------------


def _timeout_arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int) -> Any:
    if "timeout" in kwargs:
        return kwargs["timeout"]
    return args[index] if len(args) > index else None


def _nonblocking_socket(sock: Any, *args: Any, **kwargs: Any) -> bool:
    return bool(sock.gettimeout() == 0.0)


_socket_getblocking = socket.socket.getblocking


def _ipv4_literal(host: Any) -> bool:
    """Whether ``host`` is a dotted-quad IPv4 address, which is converted, never looked up."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        socket.inet_pton(socket.AF_INET, host)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _ip_literal(host: Any) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address (an IPv6 one may name its scope after
    ``%``: an interface is a local look-up, not a name resolution)."""
    if _ipv4_literal(host):
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    address, percent, scope = host.partition("%")
    if percent and not scope:
        return False
    try:
        socket.inet_pton(socket.AF_INET6, address)
    except (OSError, ValueError):
        return False
    return True


def _numeric_port(port: Any, flags: int) -> bool:
    """Whether ``port`` needs no look-up in the services database."""
    if port is None or isinstance(port, int) or flags & socket.AI_NUMERICSERV:
        return True
    if isinstance(port, bytes):
        port = port.decode("ascii", "replace")
    return isinstance(port, str) and port.isascii() and port.isdigit()


def _numeric_getaddrinfo(
    host: Any,
    port: Any,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> bool:
    # No host (the wildcard or loopback address), an address, or a host the flags say must
    # be one (the call fails rather than resolve): nothing is looked up. trio asks this way
    # first for every host.
    numeric_host = host is None or bool(flags & socket.AI_NUMERICHOST) or _ip_literal(host)
    return numeric_host and _numeric_port(port, flags)


def _ipv4_gethostbyname(hostname: Any) -> bool:
    # CPython and the C library return a dotted quad as it is.
    return _ipv4_literal(hostname)


def _numeric_getnameinfo(sockaddr: Any, flags: int) -> bool:
    # CPython reads the address numerically (AI_NUMERICHOST); with both flags neither the
    # host nor the service is looked up. With only one of them the other one is.
    both = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    return flags & both == both


def _event_set(event: Any, *args: Any, **kwargs: Any) -> bool:
    return bool(event.is_set()) or _timeout_arg(args, kwargs, 0) == 0


def _zero_timeout(obj: Any, *args: Any, **kwargs: Any) -> bool:
    return bool(_timeout_arg(args, kwargs, 0) == 0)


def _semaphore_free(sem: Any, blocking: bool = True, timeout: Any = None) -> bool:
    return not blocking or timeout == 0 or getattr(sem, "_value", 0) > 0


def _thread_done(thread: Any, timeout: Any = None) -> bool:
    return not thread.is_alive() or timeout == 0


def _queue_get_ready(q: Any, block: bool = True, timeout: Any = None) -> bool:
    return not block or timeout == 0 or q.qsize() > 0


def _queue_put_ready(q: Any, item: Any = None, block: bool = True, timeout: Any = None) -> bool:
    return not block or timeout == 0 or not q.full()


def _future_done(future: Any, timeout: Any = None) -> bool:
    return bool(future.done()) or timeout == 0


def _futures_done(fs: Any, timeout: Any = None, return_when: Any = None) -> bool:
    return timeout == 0 or all(f.done() for f in fs)


def _popen_done(proc: Any, *args: Any, **kwargs: Any) -> bool:
    return proc.returncode is not None or _timeout_arg(args, kwargs, 0) == 0


def _select_zero(rlist: Any, wlist: Any, xlist: Any, timeout: Any = None) -> bool:
    return bool(timeout == 0)


def _wnohang(options: int) -> bool:
    return bool(options & getattr(os, "WNOHANG", 0))


def _waitpid_nohang(pid: int, options: int) -> bool:
    return _wnohang(options)


def _wait3_nohang(options: int) -> bool:
    return _wnohang(options)


def _wait4_nohang(pid: int, options: int) -> bool:
    return _wnohang(options)


def _waitid_nohang(idtype: int, ident: int, options: int) -> bool:
    return _wnohang(options)


def _open_fd(file: Any, *args: Any, **kwargs: Any) -> bool:
    return isinstance(file, int)


def _certificates_in_memory(
    context: Any, cafile: Any = None, capath: Any = None, cadata: Any = None
) -> bool:
    return cafile is None and capath is None


# -- the catalogue --------------------------------------------------------------------------


@dataclass(frozen=True)
class Blocker:
    """One catalogued blocking callable."""

    name: str
    why: str
    fix: str
    nonblocking: Predicate | None = None


_SOCKET_FIX = (
    "use asyncio streams (await asyncio.open_connection(...)) or await loop.sock_*(...) "
    "on a non-blocking socket"
)
_DNS_FIX = "await loop.getaddrinfo(...) / await loop.getnameinfo(...)"
_HTTP_FIX = (
    "use an async HTTP client (aiohttp, httpx.AsyncClient), or "
    "await asyncio.to_thread(<the call>, ...)"
)
_SUBPROCESS_FIX = "await asyncio.create_subprocess_exec(...) and await proc.communicate()"
_SHELL_FIX = "await asyncio.create_subprocess_shell(...) and await proc.wait()"
_WAIT_FIX = "await proc.wait() on a process from asyncio.create_subprocess_exec(...)"
_FILE_FIX = "await asyncio.to_thread(<the file work>, ...) (or aiofiles)"
_SQLITE_FIX = "await asyncio.to_thread(<the database work>, ...) (or aiosqlite)"
_TLS_FIX = (
    "make the SSLContext once, outside the loop (at import or in a fixture), or "
    "await asyncio.to_thread(<the context set-up>, ...)"
)
_THREAD_FIX = (
    "use the asyncio primitive (asyncio.Event/Lock/Queue) or await asyncio.to_thread(<the wait>)"
)
_FUTURE_FIX = "await asyncio.wrap_future(future) (or loop.run_in_executor for new work)"
_NESTED_FIX = "await the coroutine instead of running a nested event loop"
_SLEEP_WHY = "sleeps the whole thread, so no other task runs"

CATALOGUE: tuple[Blocker, ...] = (
    Blocker("time.sleep", _SLEEP_WHY, "await asyncio.sleep(...)"),
    # DNS
    Blocker("socket.getaddrinfo", "resolves names synchronously", _DNS_FIX, _numeric_getaddrinfo),
    Blocker("socket.gethostbyname", "resolves names synchronously", _DNS_FIX, _ipv4_gethostbyname),
    Blocker(
        "socket.gethostbyname_ex", "resolves names synchronously", _DNS_FIX, _ipv4_gethostbyname
    ),
    # always a reverse look-up, even of an address
    Blocker("socket.gethostbyaddr", "resolves addresses synchronously", _DNS_FIX),
    Blocker(
        "socket.getnameinfo", "resolves addresses synchronously", _DNS_FIX, _numeric_getnameinfo
    ),
    # sockets (only blocking ones: asyncio's own sockets are non-blocking)
    Blocker("socket.create_connection", "connects a blocking socket", _SOCKET_FIX),
    *(
        Blocker(f"socket.socket.{method}", "waits on a blocking socket", _SOCKET_FIX, pred)
        for method, pred in (
            ("connect", _nonblocking_socket),
            ("accept", _nonblocking_socket),
            ("recv", _nonblocking_socket),
            ("recv_into", _nonblocking_socket),
            ("recvfrom", _nonblocking_socket),
            ("recvfrom_into", _nonblocking_socket),
            ("recvmsg", _nonblocking_socket),
            ("send", _nonblocking_socket),
            ("sendall", _nonblocking_socket),
            ("sendto", _nonblocking_socket),
            ("sendmsg", _nonblocking_socket),
        )
    ),
    *(
        Blocker(f"ssl.SSLSocket.{method}", "does TLS on a blocking socket", _SOCKET_FIX, pred)
        for method, pred in (
            ("do_handshake", _nonblocking_socket),
            ("read", _nonblocking_socket),
            ("write", _nonblocking_socket),
            ("recv", _nonblocking_socket),
            ("recv_into", _nonblocking_socket),
            ("send", _nonblocking_socket),
            ("sendall", _nonblocking_socket),
        )
    ),
    # TLS set-up: certificate stores and key files are read from disk (tens of ms)
    Blocker("ssl.create_default_context", "reads the system's CA certificates", _TLS_FIX),
    Blocker("ssl.SSLContext.load_default_certs", "reads the system's CA certificates", _TLS_FIX),
    Blocker(
        "ssl.SSLContext.set_default_verify_paths", "reads the system's CA certificates", _TLS_FIX
    ),
    Blocker(
        "ssl.SSLContext.load_verify_locations",
        "reads CA certificates from disk",
        _TLS_FIX,
        _certificates_in_memory,
    ),
    Blocker("ssl.SSLContext.load_cert_chain", "reads a certificate and key from disk", _TLS_FIX),
    # HTTP
    Blocker("urllib.request.urlopen", "does a whole HTTP request synchronously", _HTTP_FIX),
    Blocker("http.client.HTTPConnection.connect", "connects synchronously", _HTTP_FIX),
    Blocker("http.client.HTTPConnection.request", "sends a request synchronously", _HTTP_FIX),
    Blocker("http.client.HTTPConnection.getresponse", "waits for the response", _HTTP_FIX),
    # subprocesses
    Blocker("subprocess.run", "waits for the child process", _SUBPROCESS_FIX),
    Blocker("subprocess.call", "waits for the child process", _SUBPROCESS_FIX),
    Blocker("subprocess.check_call", "waits for the child process", _SUBPROCESS_FIX),
    Blocker("subprocess.check_output", "waits for the child process", _SUBPROCESS_FIX),
    Blocker("subprocess.getoutput", "waits for the child process", _SHELL_FIX),
    Blocker("subprocess.getstatusoutput", "waits for the child process", _SHELL_FIX),
    Blocker("subprocess.Popen.wait", "waits for the child process", _WAIT_FIX, _popen_done),
    Blocker("subprocess.Popen.communicate", "waits for the child process", _WAIT_FIX, _popen_done),
    Blocker("os.system", "waits for the shell command", _SHELL_FIX),
    Blocker("os.popen", "starts a shell and ties the loop to its pipe", _SHELL_FIX),
    Blocker("os.wait", "waits for a child process", _WAIT_FIX),
    Blocker("os.waitpid", "waits for a child process", _WAIT_FIX, _waitpid_nohang),
    Blocker("os.wait3", "waits for a child process", _WAIT_FIX, _wait3_nohang),
    Blocker("os.wait4", "waits for a child process", _WAIT_FIX, _wait4_nohang),
    Blocker("os.waitid", "waits for a child process", _WAIT_FIX, _waitid_nohang),
    # files
    Blocker("open", "opens a file on the loop thread (disk I/O)", _FILE_FIX, _open_fd),
    Blocker("pathlib.Path.open", "opens a file on the loop thread (disk I/O)", _FILE_FIX),
    Blocker("pathlib.Path.read_text", "reads a file on the loop thread", _FILE_FIX),
    Blocker("pathlib.Path.read_bytes", "reads a file on the loop thread", _FILE_FIX),
    Blocker("pathlib.Path.write_text", "writes a file on the loop thread", _FILE_FIX),
    Blocker("pathlib.Path.write_bytes", "writes a file on the loop thread", _FILE_FIX),
    Blocker("shutil.copyfile", "copies a file on the loop thread", _FILE_FIX),
    Blocker("shutil.copy", "copies a file on the loop thread", _FILE_FIX),
    Blocker("shutil.copy2", "copies a file on the loop thread", _FILE_FIX),
    Blocker("shutil.copytree", "copies a tree on the loop thread", _FILE_FIX),
    Blocker("shutil.move", "moves files on the loop thread", _FILE_FIX),
    Blocker("shutil.rmtree", "deletes a tree on the loop thread", _FILE_FIX),
    Blocker("os.fsync", "waits for the disk to write the file", _FILE_FIX),
    Blocker("os.fdatasync", "waits for the disk to write the file", _FILE_FIX),
    # directory listings: os.walk, glob and pathlib's iterdir/glob/rglob list through these
    # (lazily: at the step of the iteration that reads a directory), and are named in the chain
    Blocker("os.listdir", "lists a directory on the loop thread", _FILE_FIX),
    Blocker("os.scandir", "opens a directory on the loop thread", _FILE_FIX),
    # sqlite3 (connections opened while checks run are a subclass whose methods are checked)
    Blocker("sqlite3.connect", "opens a database file synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Connection.execute", "runs SQL synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Connection.executemany", "runs SQL synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Connection.executescript", "runs SQL synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Connection.commit", "writes the database synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Connection.rollback", "writes the database synchronously", _SQLITE_FIX),
    # (and their cursors, from Connection.cursor() or execute(), are a checked subclass too)
    Blocker("sqlite3.Cursor.execute", "runs SQL synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Cursor.executemany", "runs SQL synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Cursor.executescript", "runs SQL synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Cursor.fetchone", "reads the database synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Cursor.fetchmany", "reads the database synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Cursor.fetchall", "reads the database synchronously", _SQLITE_FIX),
    # thread synchronisation
    Blocker("threading.Event.wait", "waits for another thread", _THREAD_FIX, _event_set),
    Blocker("threading.Condition.wait", "waits for another thread", _THREAD_FIX, _zero_timeout),
    Blocker(
        "threading.Semaphore.acquire", "waits for another thread", _THREAD_FIX, _semaphore_free
    ),
    Blocker("threading.Thread.join", "waits for another thread", _THREAD_FIX, _thread_done),
    Blocker("queue.Queue.get", "waits for another thread", _THREAD_FIX, _queue_get_ready),
    Blocker("queue.Queue.put", "waits for another thread", _THREAD_FIX, _queue_put_ready),
    Blocker(
        "concurrent.futures.Future.result", "waits for another thread", _FUTURE_FIX, _future_done
    ),
    Blocker(
        "concurrent.futures.wait",
        "waits for other threads",
        "await asyncio.wait([asyncio.wrap_future(f) for f in futures])",
        _futures_done,
    ),
    # multiplexing, the console
    Blocker(
        "select.select",
        "waits for file descriptors",
        "loop.add_reader/add_writer, or asyncio streams",
        _select_zero,
    ),
    Blocker("input", "waits for the console", "await asyncio.to_thread(input, ...)"),
    # nested event loops (the nest_asyncio pattern)
    Blocker("asyncio.run", "runs a nested event loop on the loop thread", _NESTED_FIX),
    Blocker(
        "asyncio.BaseEventLoop.run_until_complete",
        "runs a nested event loop on the loop thread",
        _NESTED_FIX,
    ),
)

#: Names users may write for entries whose dotted path is awkward.
ALIASES = {"builtins.open": "open", "io.open": "open", "builtins.input": "input"}

#: Where each entry lives: ``name -> (module, attribute path)``.
_TARGETS = {
    "open": ("builtins", "open"),
    "input": ("builtins", "input"),
}

_SQLITE_CONNECTION = ("commit", "rollback")
_SQLITE_CURSOR = ("execute", "executemany", "executescript", "fetchone", "fetchmany", "fetchall")

#: The chain names a library's private helper as the public function it serves (a name ending
#: in a dot: everything under it): Python 3.13's ``Path.glob``/``rglob`` return a ``map`` over
#: glob's selectors, so only those are on the stack while the listing runs.
_PUBLIC_NAMES = {
    "os._walk": "os.walk",
    "glob._iglob": "glob.iglob",
    "glob._Globber.": "pathlib.Path.glob",
}

#: Classes that keep their own reference to a catalogued function, taken at import (a class
#: attribute, or a ``staticmethod`` around it), which rebinding module globals cannot reach:
#: pathlib's listings on Python 3.10 (``_NormalAccessor``) and 3.13 (glob's ``_StringGlobber``).
_HOLDERS = (("pathlib", "_NormalAccessor"), ("glob", "_StringGlobber"))


@functools.cache
def _target(name: str) -> tuple[str, str]:
    """Split ``name`` into the module to import and the attribute path inside it: the longest
    prefix that is a module (``http.client`` of ``http.client.HTTPConnection.connect``), found
    without importing anything but packages on the way (``concurrent`` of
    ``concurrent.futures``), so a catalogue row is all it takes to add a call."""
    if name in _TARGETS:
        return _TARGETS[name]
    parts = name.split(".")
    module = parts[0]
    if len(parts) < 2 or not _is_module(module):
        raise ValueError(f"no module for catalogue entry {name!r}")
    for part in parts[1:-1]:
        # A capitalised part is a class (PEP 8): not looked for, so ``sqlite3.Cursor`` does
        # not import the sqlite3 package to find out.
        if part[:1].isupper() or not _is_package(module) or not _is_module(f"{module}.{part}"):
            break
        module = f"{module}.{part}"
    return module, name[len(module) + 1 :]


def _is_package(name: str) -> bool:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.submodule_search_locations is not None


def _is_module(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# -- where frames come from -------------------------------------------------------------------

_PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_STDLIB_DIRS = tuple(
    {
        os.path.abspath(p)
        for p in (sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib"))
        if p
    }
)
#: Callers inside these stdlib files are the machinery (asyncio's selector, a thread starting,
#: an executor handing out work); they know the call cannot block for long. Not
#: ``asyncio/events.py``: its ``Handle._run`` calls the user's callbacks.
_MACHINERY = ("asyncio", "selectors.py", "threading.py", "concurrent")
#: Any of these on the stack makes the call exempt (imports, source lines for tracebacks).
_EXEMPT_FILES = ("linecache.py",)

_EMIT_CODES = frozenset((Detectors.emit.__code__, Detectors.emit_phase.__code__))
_STDLIB, _PLUGIN, _COVERAGE, _THIRD, _USER, _FROZEN, _MACHINE = range(7)
_origins: dict[str, int] = {}


def _origin(filename: str) -> int:
    origin = _origins.get(filename)
    if origin is not None:
        return origin
    path = os.path.abspath(filename) if not filename.startswith("<") else filename
    if filename.startswith("<frozen importlib") or filename.startswith("<frozen zipimport"):
        origin = _FROZEN
    elif filename.startswith("<"):
        origin = _STDLIB
    elif path.startswith(_PLUGIN_DIR + os.sep):
        origin = _PLUGIN
    elif f"{os.sep}coverage{os.sep}" in path and "-packages" in path:
        origin = _COVERAGE
    elif "site-packages" in path or "dist-packages" in path:
        origin = _THIRD
    elif any(path.startswith(d + os.sep) for d in _STDLIB_DIRS):
        rel = path[len(next(d for d in _STDLIB_DIRS if path.startswith(d + os.sep))) + 1 :]
        if rel.endswith(_EXEMPT_FILES) and os.sep not in rel:
            origin = _FROZEN
        elif rel.split(os.sep)[0] in _MACHINERY and rel != os.path.join("asyncio", "events.py"):
            origin = _MACHINE
        else:
            origin = _STDLIB
    else:
        origin = _USER
    _origins[filename] = origin
    return origin


# -- per-thread state ---------------------------------------------------------------------

#: Thread id -> name of the catalogued call in progress on it (or "" for an exempt one).
#: The watchdog reads it to drop stalls this module already reports.
in_progress: dict[int, str] = {}
#: Thread id -> depth of ``allow_blocking()`` blocks open on it (for the watchdog).
allowed_threads: dict[int, int] = {}
_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "asynccheck_allow_blocking", default=False
)
_get_ident = threading.get_ident
_get_running_loop = asyncio.events._get_running_loop
#: The thread of a running test whose loop is not asyncio's (trio, through anyio or
#: pytest-trio), or ``None``: then only threads with a running asyncio loop are checked.
foreign_loop_thread: int | None = None


@contextlib.contextmanager
def allow_blocking() -> Iterator[None]:
    """Blocking calls and stalls inside this block are not reported (checks on or off)."""
    tid = _get_ident()
    token = _allowed.set(True)
    allowed_threads[tid] = allowed_threads.get(tid, 0) + 1
    try:
        yield
    finally:
        depth = allowed_threads.get(tid, 1) - 1
        if depth:
            allowed_threads[tid] = depth
        else:
            allowed_threads.pop(tid, None)
        _allowed.reset(token)


# -- allow entries ------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowEntry:
    """One entry of ``asynccheck_blocking_allow`` or of the marker's ``allow``, in one of
    four forms:

    - ``time.sleep``: a catalogued call, or any function on the way from the user's line to
      it, as ``module.qualname`` (``mimetypes.guess_type``);
    - ``module:<prefix>``: calls made from (or through) modules whose name starts so;
    - ``<call>@<path suffix>:<function>``: the call (or ``*``: any) while a frame of that
      function, in a file whose path ends so, is anywhere on the stack;
    - ``path:<glob>``: calls whose user line is in a file matching the glob, relative to
      the rootdir (``path:tests/*``).
    """

    text: str
    call: str = ""
    module: str = ""
    path: str = ""
    function: str = ""


def parse_allow_entry(entry: str) -> AllowEntry:
    """``entry`` as an :class:`AllowEntry`; ``ValueError`` saying the expected form when it
    is malformed (an empty prefix or glob, a scope without its path or function)."""
    text = entry.strip()
    if text.startswith("module:"):
        prefix = text[len("module:") :].strip()
        if not prefix:
            raise ValueError("module:<module prefix>, e.g. module:botocore")
        return AllowEntry(text, module=prefix)
    if text.startswith("path:"):
        pattern = text[len("path:") :].strip()
        if not pattern:
            raise ValueError("path:<glob relative to the rootdir>, e.g. path:tests/*")
        return AllowEntry(text, path=pattern)
    if "@" in text:
        call, _, scope = text.partition("@")
        suffix, colon, function = scope.rpartition(":")
        call, suffix, function = call.strip(), suffix.strip(), function.strip()
        if not (call and colon and suffix and function):
            raise ValueError(
                "<call>@<path suffix>:<function>, e.g. open@pydantic/networks.py:validate_email"
            )
        return AllowEntry(text, call=ALIASES.get(call, call), path=suffix, function=function)
    if not text:
        raise ValueError("a call name such as time.sleep")
    return AllowEntry(text, call=ALIASES.get(text, text))


class AllowRules:
    """The allow entries of the ini file or of one test's marker, ready to match a call.
    Malformed entries are left out here (the configuration reports them)."""

    def __init__(self, entries: Iterable[str]) -> None:
        parsed = []
        for entry in entries:
            with contextlib.suppress(ValueError):
                parsed.append(parse_allow_entry(entry))
        plain = [e for e in parsed if e.call and not e.path]
        self.calls = frozenset(e.call for e in plain)
        self.modules = tuple(e.module for e in parsed if e.module)
        self.scoped = tuple(e for e in parsed if e.call and e.path)
        self.paths = tuple(e.path for e in parsed if e.path and not e.call)

    def allows(self, call: Call) -> bool:
        names = (call.name, *call.via, *call.via_own)
        if not self.calls.isdisjoint(names):
            return True
        if self.modules and any(m.startswith(self.modules) for m in call.via_modules):
            return True
        if self.paths:
            file = call.file.replace(os.sep, "/")
            if any(fnmatch.fnmatchcase(file, pattern) for pattern in self.paths):
                return True
        return any(
            (entry.call == "*" or entry.call in names) and call.on_stack(entry.path, entry.function)
            for entry in self.scoped
        )


# -- the chain from the user's line to the blocking call --------------------------------------


def _qualified_names(frame: types.FrameType) -> tuple[str, str]:
    """``module.qualname`` of the function running in ``frame``, as the module's public
    package names it (``pathlib.Path.glob``, not ``pathlib._local.Path.glob``), and as its
    own module does."""
    module = frame.f_globals.get("__name__")
    qualname = getattr(frame.f_code, "co_qualname", None) or _qualname_of(frame)
    if not isinstance(module, str):
        return qualname, qualname
    parts = module.split(".")
    public = parts[:1] + [part for part in parts[1:] if not part.startswith("_")]
    if len(public) < len(parts):
        # Only when the package really exports it under that name.
        package = sys.modules.get(".".join(public))
        top = qualname.split(".", 1)[0]
        if getattr(package, top, None) is not frame.f_globals.get(top, package):
            public = parts
    own = f"{module}.{qualname}"
    for private, name in _PUBLIC_NAMES.items():
        if own == private or (private.endswith(".") and own.startswith(private)):
            return name, own
    return f"{'.'.join(public)}.{qualname}", own


def _qualname_of(frame: types.FrameType) -> str:
    """Python 3.10 has no ``co_qualname``: a method's class is found from its first argument."""
    code = frame.f_code
    name = code.co_name
    if code.co_argcount:
        first = frame.f_locals.get(code.co_varnames[0])
        cls = first if isinstance(first, type) else type(first)
        for klass in getattr(cls, "__mro__", ()):
            member = vars(klass).get(name)
            member = getattr(member, "__func__", member)
            if getattr(member, "__code__", None) is code:
                return f"{klass.__qualname__}.{name}"
    return name


@dataclass
class Call:
    """A catalogued call made on the loop thread: what allow entries are matched against."""

    name: str
    #: ``module.qualname`` of each library function from the user's line down to the call,
    #: outermost first (``mimetypes.guess_type``, ``mimetypes.init``, ...).
    via: tuple[str, ...]
    #: The same names as their own modules give them (``pathlib._local.Path.glob``).
    via_own: tuple[str, ...]
    via_modules: tuple[str, ...]
    #: The user's file, relative to the rootdir.
    file: str
    stack: list[types.FrameType]

    def on_stack(self, suffix: str, function: str) -> bool:
        suffix = suffix.replace("\\", "/").lstrip("/")
        for frame in self.stack:
            code = frame.f_code
            if function not in (code.co_name, getattr(code, "co_qualname", None)):
                continue
            path = code.co_filename.replace(os.sep, "/")
            if path == suffix or path.endswith("/" + suffix):
                return True
        return False


def _library_frames(
    stack: list[types.FrameType], user: types.FrameType | None
) -> list[types.FrameType]:
    """The frames between the blocking call and the user's frame (or the loop, for a call
    made straight from a callback), outermost first."""
    found = []
    for frame in stack:
        if frame is user or frame.f_globals.get("__name__") == "asyncio.events":
            break
        origin = _origin(frame.f_code.co_filename)
        if origin == _MACHINE:
            break
        if origin == _PLUGIN or _unnamed(frame.f_code):
            continue
        found.append(frame)
    found.reverse()
    return found


def _unnamed(code: types.CodeType) -> bool:
    """Code that is no function a user could name in an allow list: a module's body (an import,
    ``eval``/``exec`` of a string) or code compiled from a string."""
    return code.co_name == "<module>" or code.co_filename.startswith("<string")


def _test_code(test: TestCheck | None) -> types.CodeType | None:
    function = getattr(test.item, "function", None) if test is not None else None
    function = getattr(function, "__wrapped__", function)
    return getattr(function, "__code__", None)


def chain(
    frame: types.FrameType | None, root: str, test: TestCheck | None, limit: int = 8
) -> tuple[str, ...]:
    """The user frames from the test function (when on the stack) down to ``frame``."""
    stop = _test_code(test)
    found = []
    for each in frames.walk(frame):
        if frames.is_user_file(each.f_code.co_filename):
            found.append(frames.describe(each, root))
        if each.f_code is stop:
            break
    return tuple(reversed(found[:limit]))


# -- the interception -----------------------------------------------------------------------


def _keys_of(namespace: dict[str, Any], ids: dict[int, Any]) -> list[str]:
    """The keys of ``namespace`` whose values' ids are in ``ids``, found in C (a module's
    keys and values come in the same order): this runs over every global of the modules
    that hold a patched function."""
    return list(itertools.compress(namespace, map(ids.__contains__, map(id, namespace.values()))))


class Interceptor:
    """Installs the catalogue's wrappers for one check session and removes them again."""

    def __init__(self, session: CheckSession, allow: tuple[str, ...] = ()) -> None:
        self.session = session
        self.rules = AllowRules(allow)
        self.allowed_names = self.rules.calls
        self.allowed_modules = self.rules.modules
        #: Each test's marker entries, parsed once per distinct set.
        self._test_rules: dict[frozenset[str], AllowRules] = {}
        #: (owner, attribute, had its own attribute, previous value)
        self._patches: list[tuple[Any, str, bool, Any]] = []
        #: id(original) -> (original, wrapper) for module-level functions (aliases rebound).
        self._functions: dict[int, tuple[Any, Any]] = {}
        #: id(wrapper) -> (wrapper, original), for everything this interceptor installed.
        self._wrappers: dict[int, tuple[Any, Any]] = {}
        self._pending: list[Blocker] = []
        self._pending_modules: frozenset[str] = frozenset()
        self._pending_holders: list[tuple[str, str]] = []
        self.installed = False

    # installing

    def install(self) -> None:
        self.installed = True
        # Calls allowed by name stay patched, so the watchdog knows them and stays quiet too.
        self._pending = list(CATALOGUE)
        self._pending_modules = frozenset(_target(b.name)[0] for b in self._pending)
        self._pending_modules |= {module for module, _class in _HOLDERS}
        self._pending_holders = list(_HOLDERS)
        self.refresh()

    def refresh(self) -> None:
        """Patch entries whose module has been imported since the last call."""
        modules = sys.modules
        if not any(map(modules.__contains__, self._pending_modules)):
            return
        ready: list[Blocker] = []
        pending: list[Blocker] = []
        for blocker in self._pending:
            (ready if _target(blocker.name)[0] in modules else pending).append(blocker)
        self._pending = pending
        self._pending_modules = frozenset(_target(b.name)[0] for b in self._pending)
        self._pending_modules |= {module for module, _class in self._pending_holders}
        new: dict[int, Any] = {}
        for blocker in ready:
            try:
                new.update(self._patch(blocker))
            except Exception as exc:  # an attribute missing on this platform or version
                LOGGER.debug("asynccheck: cannot intercept %s: %s", blocker.name, exc)
        if new:
            self._rebind_aliases(new)
        self._patch_holders()

    def _patch_holders(self) -> None:
        """Point the ``_HOLDERS`` classes' own references to patched functions at the
        wrappers, as static methods (a plain function there would be bound to the instance)."""
        pending = []
        for module_name, class_name in self._pending_holders:
            module = sys.modules.get(module_name)
            if module is None:
                pending.append((module_name, class_name))
                continue
            holder = getattr(module, class_name, None)
            if not isinstance(holder, type):
                continue  # not on this Python version
            for attribute, value in list(vars(holder).items()):
                function = value.__func__ if isinstance(value, staticmethod) else value
                known = self._functions.get(id(function))
                if known is None or known[0] is not function:
                    continue
                replacement = staticmethod(known[1])
                self._patches.append((holder, attribute, True, value))
                setattr(holder, attribute, replacement)
                self._wrappers[id(replacement)] = (replacement, value)
        self._pending_holders = pending

    def _patch(self, blocker: Blocker) -> dict[int, Any]:
        module_name, path = _target(blocker.name)
        module = sys.modules[module_name]
        *owner_path, attribute = path.split(".")
        owner: Any = module
        for part in owner_path:
            owner = getattr(owner, part)
        if blocker.name.startswith(("sqlite3.Connection.", "sqlite3.Cursor.")):
            return {}  # checked through the Connection subclass that sqlite3.connect returns
        original = getattr(owner, attribute)
        if isinstance(owner, type):
            original = owner.__dict__.get(attribute, original)
            if isinstance(original, (staticmethod, classmethod)):
                return {}
        wrapper = _wrap(self, blocker, original)
        if blocker.name == "sqlite3.connect":
            wrapper = _wrap_sqlite_connect(self, blocker, original)
        had_own = attribute in vars(owner)
        self._patches.append((owner, attribute, had_own, vars(owner).get(attribute)))
        setattr(owner, attribute, wrapper)
        self._wrappers[id(wrapper)] = (wrapper, original)
        if isinstance(owner, types.ModuleType):
            self._functions[id(original)] = (original, wrapper)
            return {id(original): wrapper}
        return {}

    def _rebind_aliases(self, replacements: dict[int, Any]) -> None:
        """Point every module global bound to a patched original at its wrapper."""
        for name, module in list(sys.modules.items()):
            if name.startswith("pytest_asynccheck") or not isinstance(module, types.ModuleType):
                continue
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            try:
                # Most modules hold none: asked in C first, as this runs over every module.
                if replacements.keys().isdisjoint(map(id, namespace.values())):
                    continue
                hits = _keys_of(namespace, replacements)
            except RuntimeError:  # the dict changed under us (another thread importing)
                continue
            for key in hits:
                value = namespace[key]
                wrapper = replacements.get(id(value))
                if wrapper is not None and self._functions.get(id(value), (None,))[0] is value:
                    namespace[key] = wrapper

    # removing

    def uninstall(self) -> None:
        if not self.installed:
            return
        self.installed = False
        for owner, attribute, had_own, previous in reversed(self._patches):
            current = vars(owner).get(attribute)
            if current is None or id(current) not in self._wrappers:
                continue  # replaced by someone else since (nest_asyncio, a mock): leave it
            if had_own:
                setattr(owner, attribute, previous)
            else:
                delattr(owner, attribute)
        originals = {key: original for key, (_wrapper, original) in self._wrappers.items()}
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            try:
                if originals.keys().isdisjoint(map(id, namespace.values())):
                    continue
                hits = _keys_of(namespace, originals)
            except RuntimeError:
                continue
            for key in hits:
                namespace[key] = originals[id(namespace[key])]
        self._patches.clear()
        self._functions.clear()
        self._wrappers.clear()
        self._pending.clear()
        self._pending_modules = frozenset()
        self._pending_holders = []

    # the slow path: a catalogued call on a running loop's thread

    def exempt(self, caller: types.FrameType | None) -> bool:
        """Whether a call made from ``caller`` is the machinery's, the plugin's, coverage's,
        an import's, or from a module the ini allows."""
        first = True
        decided = False
        for frame in frames.walk(caller):
            if frame.f_code in _EMIT_CODES:
                return True  # inside a detector's event: the plugin's (or an extension's) work
            origin = _origin(frame.f_code.co_filename)
            if origin == _FROZEN:
                return True
            if first:
                first = False
                if origin == _MACHINE:
                    return True
            if not decided and origin == _MACHINE:
                decided = True  # reached the loop itself: a callback, not the plugin's code
            elif not decided and origin != _STDLIB:
                if origin in (_PLUGIN, _COVERAGE):
                    return True
                if self.allowed_modules:
                    module = frame.f_globals.get("__name__", "")
                    if isinstance(module, str) and module.startswith(self.allowed_modules):
                        return True
                decided = origin == _USER
        return False

    def record(
        self, blocker: Blocker, caller: types.FrameType | None, started: float, ended: float
    ) -> None:
        session = self.session
        root = session.rootpath
        test = session.current
        stack = list(frames.walk(caller))
        user = frames.user_frame(stack)
        library = _library_frames(stack, user)
        duration = ended - started
        if user is not None:
            file = frames.relpath(user.f_code.co_filename, root)
            line = user.f_lineno
            function = user.f_code.co_name
        else:  # called straight from the loop (``call_soon(time.sleep, 1)``): name the test
            path, lineno, _name = test.item.location if test is not None else ("", None, "")
            file, line = path, (lineno or 0) + 1 if lineno is not None else 0
            function = "<loop callback>"
        qualified = [_qualified_names(frame) for frame in library]
        call = Call(
            blocker.name,
            tuple(public for public, _own in qualified),
            tuple(own for _public, own in qualified),
            tuple(str(f.f_globals.get("__name__", "")) for f in library),
            file,
            stack,
        )
        del stack, library
        try:
            if self.rules.allows(call) or (test is not None and self._rules_of(test).allows(call)):
                return
        finally:
            call.stack = []
        via = f"{call.via[0]} -> " if call.via else ""
        finding = Finding(
            kind=Kind.BLOCKING.value,
            message=(
                f"blocking call {via}{blocker.name}() held the event loop for "
                f"{duration * 1000:.1f} ms: it {blocker.why}"
            ),
            file=file,
            line=line,
            function=function,
            call=blocker.name,
            fix=blocker.fix,
            stack=chain(caller, root, test),
            duration=duration,
            extra={"via": list(call.via)} if call.via else {},
        )
        session.report(finding)

    def _rules_of(self, test: TestCheck) -> AllowRules:
        rules = self._test_rules.get(test.allow)
        if rules is None:
            rules = self._test_rules[test.allow] = AllowRules(test.allow)
        return rules


def _wrap(interceptor: Interceptor, blocker: Blocker, original: Any, depth: int = 2) -> Any:
    """The wrapper that replaces ``original``. It calls ``original`` itself, from its own
    frame, on every path: an exception from the call has one frame of the plugin's on its
    way to the user, and that frame is hidden from pytest's tracebacks."""
    nonblocking = blocker.nonblocking
    get_loop = _get_running_loop
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
        if foreign_loop_thread is not None and get_loop() is None and not _in_trio_task():
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

    if nonblocking is _nonblocking_socket:
        # Installed on ``socket.socket`` itself, so every socket pays this test first: the
        # loops' sockets are non-blocking, and for them it is one C call.
        getblocking = _socket_getblocking

        @functools.wraps(original)
        def asynccheck_blocking(self: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            if not getblocking(self) or (get_loop() is None and foreign_loop_thread is None):
                return original(self, *args, **kwargs)
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
            if get_loop() is None and foreign_loop_thread is None:
                return original(*args, **kwargs)
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


def names() -> tuple[str, ...]:
    """Every catalogued name, as users write it in allow lists."""
    return tuple(b.name for b in CATALOGUE)


# -- the detector ---------------------------------------------------------------------------


class BlockingDetector(Detector):
    """Kind ``blocking``: catalogued calls intercepted on the loop thread, plus the watchdog."""

    name = "blocking"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.interceptor: Interceptor | None = None
        self.watchdog: Watchdog | None = None

    def session_started(self, session: CheckSession) -> None:
        from .watchdog import Watchdog

        self.interceptor = Interceptor(session, self.settings.blocking_allow)
        self.interceptor.install()
        self.watchdog = Watchdog(session, self.settings.stall_threshold)

    def session_finished(self, session: CheckSession) -> None:
        global foreign_loop_thread
        foreign_loop_thread = None
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.interceptor is not None:
            self.interceptor.uninstall()

    def test_started(self, test: TestCheck) -> None:
        if self.interceptor is not None:
            self.interceptor.refresh()

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if self.watchdog is None:
            return
        if loop is not None:
            self.watchdog.attach(test, loop, loop.call_soon_threadsafe)
            return
        token = _trio_token()
        if token is not None:  # trio: calls on this thread are checked, and its heartbeat
            global foreign_loop_thread
            foreign_loop_thread = _get_ident()
            self.watchdog.attach(test, token, token.run_sync_soon)

    def task_exited(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if self.watchdog is not None:
            self.watchdog.detach(test)
        if loop is None:
            global foreign_loop_thread
            foreign_loop_thread = None

    def test_finished(self, test: TestCheck) -> None:
        global foreign_loop_thread
        foreign_loop_thread = None
        if self.watchdog is not None:
            self.watchdog.detach(test, force=True)


def _in_trio_task() -> bool:
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def _trio_token() -> Any:
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None


def blocking_detector(settings: Settings) -> Detector | None:
    """The registry's factory: ``None`` when ``--asynccheck-blocking=off``."""
    if settings.severity(Kind.BLOCKING) is Severity.OFF:
        return None
    return BlockingDetector(settings)
