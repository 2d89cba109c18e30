"""Known blocking calls, as data: nothing here patches anything (``intercept.py`` does).

The catalogue is one declarative table (``CATALOGUE``): the dotted name a user writes in an
allow list, why the call blocks, the async alternative, and optionally a predicate that says
"this particular call cannot block" (a non-blocking socket, a set event, ``timeout=0``; the
predicates are in ``nonblocking.py``).

A catalogue row is all it takes to add a call: its module is the longest prefix of its name
that is a module. Lazy listings (``os.walk``, ``glob.iglob``, ``Path.glob``) are caught at the
``os.scandir``/``os.listdir`` of the iteration step that reads a directory.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .nonblocking import (
    certificates_in_memory,
    datagram_connect,
    event_set,
    future_done,
    futures_done,
    ipv4_gethostbyname,
    nonblocking_socket,
    numeric_getaddrinfo,
    numeric_getnameinfo,
    open_fd,
    popen_done,
    popen_exited,
    queue_get_ready,
    queue_put_ready,
    select_zero,
    semaphore_free,
    thread_done,
    wait3_nohang,
    wait4_nohang,
    waitid_nohang,
    waitpid_nohang,
    zero_timeout,
)

Predicate = Callable[..., bool]


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
_CHILD = "waits for the child process"
_SQL_RUNS = "execute executemany executescript"
_DB_WRITES = "writes the database synchronously"
_DB_READS = "reads the database synchronously"


def _family(
    owner: str, attributes: str, why: str, fix: str, nonblocking: Predicate | None = None
) -> tuple[Blocker, ...]:
    """Rows for calls of one owner that block the same way: ``owner.attribute`` for each of
    the space-separated ``attributes``, in that order."""
    return tuple(Blocker(f"{owner}.{name}", why, fix, nonblocking) for name in attributes.split())


CATALOGUE: tuple[Blocker, ...] = (
    Blocker("time.sleep", _SLEEP_WHY, "await asyncio.sleep(...)"),
    # DNS
    Blocker("socket.getaddrinfo", "resolves names synchronously", _DNS_FIX, numeric_getaddrinfo),
    Blocker("socket.gethostbyname", "resolves names synchronously", _DNS_FIX, ipv4_gethostbyname),
    Blocker(
        "socket.gethostbyname_ex", "resolves names synchronously", _DNS_FIX, ipv4_gethostbyname
    ),
    # always a reverse look-up, even of an address
    Blocker("socket.gethostbyaddr", "resolves addresses synchronously", _DNS_FIX),
    Blocker(
        "socket.getnameinfo", "resolves addresses synchronously", _DNS_FIX, numeric_getnameinfo
    ),
    # sockets (only blocking ones: asyncio's own sockets are non-blocking)
    Blocker("socket.create_connection", "connects a blocking socket", _SOCKET_FIX),
    Blocker("socket.socket.connect", "waits on a blocking socket", _SOCKET_FIX, datagram_connect),
    *_family(
        "socket.socket",
        "accept recv recv_into recvfrom recvfrom_into recvmsg send sendall sendto sendmsg",
        "waits on a blocking socket",
        _SOCKET_FIX,
        nonblocking_socket,
    ),
    *_family(
        "ssl.SSLSocket",
        "do_handshake read write recv recv_into send sendall",
        "does TLS on a blocking socket",
        _SOCKET_FIX,
        nonblocking_socket,
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
        certificates_in_memory,
    ),
    Blocker("ssl.SSLContext.load_cert_chain", "reads a certificate and key from disk", _TLS_FIX),
    # HTTP
    Blocker("urllib.request.urlopen", "does a whole HTTP request synchronously", _HTTP_FIX),
    Blocker("http.client.HTTPConnection.connect", "connects synchronously", _HTTP_FIX),
    Blocker("http.client.HTTPConnection.request", "sends a request synchronously", _HTTP_FIX),
    Blocker("http.client.HTTPConnection.getresponse", "waits for the response", _HTTP_FIX),
    # subprocesses
    *_family("subprocess", "run call check_call check_output", _CHILD, _SUBPROCESS_FIX),
    *_family("subprocess", "getoutput getstatusoutput", _CHILD, _SHELL_FIX),
    Blocker("subprocess.Popen.wait", _CHILD, _WAIT_FIX, popen_exited),
    Blocker("subprocess.Popen.communicate", _CHILD, _WAIT_FIX, popen_done),
    Blocker("os.system", "waits for the shell command", _SHELL_FIX),
    Blocker("os.popen", "starts a shell and ties the loop to its pipe", _SHELL_FIX),
    Blocker("os.wait", "waits for a child process", _WAIT_FIX),
    Blocker("os.waitpid", "waits for a child process", _WAIT_FIX, waitpid_nohang),
    Blocker("os.wait3", "waits for a child process", _WAIT_FIX, wait3_nohang),
    Blocker("os.wait4", "waits for a child process", _WAIT_FIX, wait4_nohang),
    Blocker("os.waitid", "waits for a child process", _WAIT_FIX, waitid_nohang),
    # files
    Blocker("open", "opens a file on the loop thread (disk I/O)", _FILE_FIX, open_fd),
    Blocker("pathlib.Path.open", "opens a file on the loop thread (disk I/O)", _FILE_FIX),
    *_family("pathlib.Path", "read_text read_bytes", "reads a file on the loop thread", _FILE_FIX),
    *_family(
        "pathlib.Path", "write_text write_bytes", "writes a file on the loop thread", _FILE_FIX
    ),
    *_family("shutil", "copyfile copy copy2", "copies a file on the loop thread", _FILE_FIX),
    Blocker("shutil.copytree", "copies a tree on the loop thread", _FILE_FIX),
    Blocker("shutil.move", "moves files on the loop thread", _FILE_FIX),
    Blocker("shutil.rmtree", "deletes a tree on the loop thread", _FILE_FIX),
    *_family("os", "fsync fdatasync", "waits for the disk to write the file", _FILE_FIX),
    # directory listings: os.walk, glob and pathlib's iterdir/glob/rglob list through these
    # (lazily: at the step of the iteration that reads a directory), and are named in the chain
    Blocker("os.listdir", "lists a directory on the loop thread", _FILE_FIX),
    Blocker("os.scandir", "opens a directory on the loop thread", _FILE_FIX),
    # sqlite3 (connections opened while checks run are a subclass whose methods are checked)
    Blocker("sqlite3.connect", "opens a database file synchronously", _SQLITE_FIX),
    *_family("sqlite3.Connection", _SQL_RUNS, "runs SQL synchronously", _SQLITE_FIX),
    *_family("sqlite3.Connection", "commit rollback", _DB_WRITES, _SQLITE_FIX),
    # (and their cursors, from Connection.cursor() or execute(), are a checked subclass too)
    *_family("sqlite3.Cursor", _SQL_RUNS, "runs SQL synchronously", _SQLITE_FIX),
    *_family("sqlite3.Cursor", "fetchone fetchmany fetchall", _DB_READS, _SQLITE_FIX),
    # thread synchronisation
    Blocker("threading.Event.wait", "waits for another thread", _THREAD_FIX, event_set),
    Blocker("threading.Condition.wait", "waits for another thread", _THREAD_FIX, zero_timeout),
    Blocker("threading.Semaphore.acquire", "waits for another thread", _THREAD_FIX, semaphore_free),
    Blocker("threading.Thread.join", "waits for another thread", _THREAD_FIX, thread_done),
    Blocker("queue.Queue.get", "waits for another thread", _THREAD_FIX, queue_get_ready),
    Blocker("queue.Queue.put", "waits for another thread", _THREAD_FIX, queue_put_ready),
    Blocker(
        "concurrent.futures.Future.result", "waits for another thread", _FUTURE_FIX, future_done
    ),
    Blocker(
        "concurrent.futures.wait",
        "waits for other threads",
        "await asyncio.wait([asyncio.wrap_future(f) for f in futures])",
        futures_done,
    ),
    # multiplexing, the console
    Blocker(
        "select.select",
        "waits for file descriptors",
        "loop.add_reader/add_writer, or asyncio streams",
        select_zero,
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

#: The fixes of the catalogue as said to a test running under trio (pytest-trio,
#: anyio's trio backend): trio's own calls, and anyio's, which such tests often use instead.
#: A fix not listed here is said with ``await asyncio.to_thread(`` put in trio's terms.
TRIO_FIXES = {
    "await asyncio.sleep(...)": "await trio.sleep(...) (anyio.sleep(...) with anyio)",
    _SOCKET_FIX: (
        "use trio's streams (await trio.open_tcp_stream(...)) or the async methods of a "
        "trio.socket socket (anyio.connect_tcp(...) with anyio)"
    ),
    _DNS_FIX: "await trio.socket.getaddrinfo(...) (anyio.getaddrinfo(...) with anyio)",
    _HTTP_FIX: (
        "use an async HTTP client that runs on trio (httpx.AsyncClient), or "
        "await trio.to_thread.run_sync(<the call>, ...)"
    ),
    _FILE_FIX: (
        "use trio.Path / trio.open_file (anyio.Path / anyio.open_file with anyio), or "
        "await trio.to_thread.run_sync(<the file work>, ...)"
    ),
    _SQLITE_FIX: "await trio.to_thread.run_sync(<the database work>, ...)",
    _SUBPROCESS_FIX: "await trio.run_process(...) (anyio.run_process(...) with anyio)",
    _SHELL_FIX: "await trio.run_process(..., shell=True) (anyio.run_process(...) with anyio)",
    _WAIT_FIX: (
        "await proc.wait() on a process from trio.lowlevel.open_process(...) "
        "(anyio.open_process(...) with anyio)"
    ),
    _THREAD_FIX: (
        "use the trio primitive (trio.Event/Lock, a memory channel) or await "
        "trio.to_thread.run_sync(<the wait>) (anyio.to_thread.run_sync with anyio)"
    ),
    _FUTURE_FIX: (
        "await trio.to_thread.run_sync(future.result) (anyio.to_thread.run_sync with anyio)"
    ),
    "await asyncio.wait([asyncio.wrap_future(f) for f in futures])": (
        "await trio.to_thread.run_sync(concurrent.futures.wait, futures) "
        "(anyio.to_thread.run_sync with anyio)"
    ),
    "loop.add_reader/add_writer, or asyncio streams": (
        "await trio.lowlevel.wait_readable/wait_writable, or trio's streams"
    ),
}


def trio_fix(fix: str) -> str:
    """``fix`` as said to a test running under trio."""
    translated = TRIO_FIXES.get(fix)
    if translated is not None:
        return translated
    return fix.replace("await asyncio.to_thread(", "await trio.to_thread.run_sync(")


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


def _awaited(name: str) -> str:
    """The module whose import may make catalogue entry ``name`` patchable: its module
    (``_target``) once the top-level package of the name is loaded, else that package, which
    any import of the module loads first. Nothing is looked for on disk before: finding out
    whether ``http.client`` is a module imports ``http``, whose enums cost more than the rest
    of the catalogue's install."""
    if name in _TARGETS:
        return _TARGETS[name][0]
    top = name.partition(".")[0]
    return _target(name)[0] if top in sys.modules else top


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
