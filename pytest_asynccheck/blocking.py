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
import functools
import itertools
import logging
import os
import socket
import sys
import sysconfig
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _clock, frames
from .config import Settings
from .detector import Detector, Detectors
from .findings import Finding, Kind, Severity

if TYPE_CHECKING:
    from .monitor import Watchdog
    from .session import CheckSession, TestCheck

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
    # sqlite3 (connections opened while checks run are a subclass whose methods are checked)
    Blocker("sqlite3.connect", "opens a database file synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Connection.execute", "runs SQL synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Connection.executemany", "runs SQL synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Connection.executescript", "runs SQL synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Connection.commit", "writes the database synchronously", _SQLITE_FIX),
    Blocker("sqlite3.Connection.rollback", "writes the database synchronously", _SQLITE_FIX),
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

_SQLITE_METHODS = ("execute", "executemany", "executescript", "commit", "rollback")


_MODULES = (
    "concurrent.futures",
    "urllib.request",
    "http.client",
    "subprocess",
    "threading",
    "pathlib",
    "asyncio",
    "sqlite3",
    "socket",
    "shutil",
    "select",
    "queue",
    "time",
    "ssl",
    "os",
)


@functools.cache
def _target(name: str) -> tuple[str, str]:
    """Split ``name`` into the module to import and the attribute path inside it."""
    if name in _TARGETS:
        return _TARGETS[name]
    for module in _MODULES:
        if name.startswith(module + "."):
            return module, name[len(module) + 1 :]
    raise ValueError(f"no module for catalogue entry {name!r}")


# -- where frames come from -------------------------------------------------------------------

_PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
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
        names = {ALIASES.get(entry, entry) for entry in allow if not entry.startswith("module:")}
        self.allowed_names = frozenset(names)
        self.allowed_modules = tuple(
            entry[len("module:") :].strip() for entry in allow if entry.startswith("module:")
        )
        #: (owner, attribute, had its own attribute, previous value)
        self._patches: list[tuple[Any, str, bool, Any]] = []
        #: id(original) -> (original, wrapper) for module-level functions (aliases rebound).
        self._functions: dict[int, tuple[Any, Any]] = {}
        #: id(wrapper) -> (wrapper, original), for everything this interceptor installed.
        self._wrappers: dict[int, tuple[Any, Any]] = {}
        self._pending: list[Blocker] = []
        self._pending_modules: frozenset[str] = frozenset()
        self.installed = False

    # installing

    def install(self) -> None:
        self.installed = True
        # Calls allowed by name stay patched, so the watchdog knows them and stays quiet too.
        self._pending = list(CATALOGUE)
        self._pending_modules = frozenset(_target(b.name)[0] for b in self._pending)
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
        new: dict[int, Any] = {}
        for blocker in ready:
            try:
                new.update(self._patch(blocker))
            except Exception as exc:  # an attribute missing on this platform or version
                LOGGER.debug("asynccheck: cannot intercept %s: %s", blocker.name, exc)
        if new:
            self._rebind_aliases(new)

    def _patch(self, blocker: Blocker) -> dict[int, Any]:
        module_name, path = _target(blocker.name)
        module = sys.modules[module_name]
        *owner_path, attribute = path.split(".")
        owner: Any = module
        for part in owner_path:
            owner = getattr(owner, part)
        if blocker.name.startswith("sqlite3.Connection."):
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
        user = frames.user_frame(frames.walk(caller))
        duration = ended - started
        if user is not None:
            file = frames.relpath(user.f_code.co_filename, root)
            line = user.f_lineno
            function = user.f_code.co_name
        else:  # called straight from the loop (``call_soon(time.sleep, 1)``): name the test
            test = session.current
            path, lineno, _name = test.item.location if test is not None else ("", None, "")
            file, line = path, (lineno or 0) + 1 if lineno is not None else 0
            function = "<loop callback>"
        finding = Finding(
            kind=Kind.BLOCKING.value,
            message=(
                f"blocking call {blocker.name}() held the event loop for "
                f"{duration * 1000:.1f} ms: it {blocker.why}"
            ),
            file=file,
            line=line,
            function=function,
            call=blocker.name,
            fix=blocker.fix,
            stack=chain(caller, root, session.current),
            duration=duration,
        )
        session.report(finding)


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
    import sqlite3

    namespace: dict[str, Any] = {"__module__": "sqlite3", "__qualname__": "Connection"}
    for method in _SQLITE_METHODS:
        blocker = next(b for b in CATALOGUE if b.name == f"sqlite3.Connection.{method}")
        namespace[method] = _wrap(interceptor, blocker, getattr(sqlite3.Connection, method))
    return type("Connection", (sqlite3.Connection,), namespace)


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
        from .monitor import Watchdog

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
