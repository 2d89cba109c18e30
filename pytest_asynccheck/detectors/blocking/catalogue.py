"""Known blocking calls, as data: nothing here patches anything (``intercept.py`` does).

The catalogue is one declarative table (``CATALOGUE``): the dotted name a user writes in an
allow list, why the call blocks, the async alternative, and optionally a predicate that says
"this particular call cannot block" (a non-blocking socket, a set event, ``timeout=0``).

A name look-up that cannot wait on a resolver is not reported: ``getaddrinfo`` of no host, of an
IPv4 or IPv6 address, or with ``AI_NUMERICHOST`` (trio asks that way first), with a numeric
port; ``gethostbyname[_ex]`` of a dotted quad; ``getnameinfo`` with both ``NI_NUMERICHOST`` and
``NI_NUMERICSERV``. ``gethostbyaddr`` always looks the address up.

A catalogue row is all it takes to add a call: its module is the longest prefix of its name
that is a module. Lazy listings (``os.walk``, ``glob.iglob``, ``Path.glob``) are caught at the
``os.scandir``/``os.listdir`` of the iteration step that reads a directory.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Predicate = Callable[..., bool]


# -- predicates: True when this call cannot block ----------------------------------------------


def _timeout_arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int) -> Any:
    if "timeout" in kwargs:
        return kwargs["timeout"]
    return args[index] if len(args) > index else None


def _nonblocking_socket(sock: Any, *args: Any, **kwargs: Any) -> bool:
    return bool(sock.gettimeout() == 0.0)


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


def names() -> tuple[str, ...]:
    """Every catalogued name, as users write it in allow lists."""
    return tuple(b.name for b in CATALOGUE)
