"""Predicates of catalogued calls: each is given the call's own arguments (``self`` first, for
a method) and says True when this particular call cannot block, so it is not reported: a
non-blocking socket, a set event or a finished thread, ``timeout=0``, ``WNOHANG``, a file
descriptor rather than a path, certificates from memory. A datagram socket's ``connect`` only
records its peer (unless a host name is resolved in it), and the ``wait`` for a child that has
exited (asked with ``WNOWAIT``, which leaves the child to ``wait``) only collects its status:
trio's ``Process.wait`` calls ``Popen.wait`` once the child's pidfd says it exited.

A name look-up that cannot wait on a resolver is not reported: ``getaddrinfo`` of no host, of an
IPv4 or IPv6 address, or with ``AI_NUMERICHOST`` (trio asks that way first), with a numeric
port; ``gethostbyname[_ex]`` of a dotted quad; ``getnameinfo`` with both ``NI_NUMERICHOST`` and
``NI_NUMERICSERV``. ``gethostbyaddr`` always looks the address up.

Limits: a predicate reads the object's state as the call begins (another thread may change it
before the call waits). One that raises (bad arguments) lets the call through unreported, to
raise its own error (see ``wrappers``).
"""

from __future__ import annotations

import os
import socket
from typing import Any


def _timeout_arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int) -> Any:
    if "timeout" in kwargs:
        return kwargs["timeout"]
    return args[index] if len(args) > index else None


def nonblocking_socket(sock: Any, *args: Any, **kwargs: Any) -> bool:
    return bool(sock.gettimeout() == 0.0)


def datagram_connect(sock: Any, address: Any = None, *args: Any, **kwargs: Any) -> bool:
    if nonblocking_socket(sock):
        return True
    if sock.type != socket.SOCK_DGRAM:
        return False
    # A Unix socket's path is never looked up; an internet host name is, inside connect().
    return not isinstance(address, tuple) or (bool(address) and _ip_literal(address[0]))


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


def numeric_getaddrinfo(
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


def ipv4_gethostbyname(hostname: Any) -> bool:
    # CPython and the C library return a dotted quad as it is.
    return _ipv4_literal(hostname)


def numeric_getnameinfo(sockaddr: Any, flags: int) -> bool:
    # CPython reads the address numerically (AI_NUMERICHOST); with both flags neither the
    # host nor the service is looked up. With only one of them the other one is.
    both = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    return flags & both == both


#: The predicates of socket methods: the wrappers test ``getblocking()`` before them.
SOCKET_PREDICATES = (nonblocking_socket, datagram_connect)


def event_set(event: Any, *args: Any, **kwargs: Any) -> bool:
    return bool(event.is_set()) or _timeout_arg(args, kwargs, 0) == 0


def zero_timeout(obj: Any, *args: Any, **kwargs: Any) -> bool:
    return bool(_timeout_arg(args, kwargs, 0) == 0)


def semaphore_free(sem: Any, blocking: bool = True, timeout: Any = None) -> bool:
    return not blocking or timeout == 0 or getattr(sem, "_value", 0) > 0


def thread_done(thread: Any, timeout: Any = None) -> bool:
    return not thread.is_alive() or timeout == 0


def queue_get_ready(q: Any, block: bool = True, timeout: Any = None) -> bool:
    return not block or timeout == 0 or q.qsize() > 0


def queue_put_ready(q: Any, item: Any = None, block: bool = True, timeout: Any = None) -> bool:
    return not block or timeout == 0 or not q.full()


def future_done(future: Any, timeout: Any = None) -> bool:
    return bool(future.done()) or timeout == 0


def futures_done(fs: Any, timeout: Any = None, return_when: Any = None) -> bool:
    return timeout == 0 or all(f.done() for f in fs)


def popen_done(proc: Any, *args: Any, **kwargs: Any) -> bool:
    return proc.returncode is not None or _timeout_arg(args, kwargs, 0) == 0


# Bound at import, before the plugin wraps os.waitid itself.
_waitid = getattr(os, "waitid", None)
_EXITED_NOT_REAPED = (
    getattr(os, "WEXITED", 0) | getattr(os, "WNOHANG", 0) | getattr(os, "WNOWAIT", 0)
)


def popen_exited(proc: Any, *args: Any, **kwargs: Any) -> bool:
    if popen_done(proc, *args, **kwargs):
        return True
    if _waitid is None or not hasattr(os, "P_PID") or not hasattr(os, "WNOWAIT"):
        return False
    return _waitid(os.P_PID, proc.pid, _EXITED_NOT_REAPED) is not None


def select_zero(rlist: Any, wlist: Any, xlist: Any, timeout: Any = None) -> bool:
    return bool(timeout == 0)


def _wnohang(options: int) -> bool:
    return bool(options & getattr(os, "WNOHANG", 0))


def waitpid_nohang(pid: int, options: int) -> bool:
    return _wnohang(options)


def wait3_nohang(options: int) -> bool:
    return _wnohang(options)


def wait4_nohang(pid: int, options: int) -> bool:
    return _wnohang(options)


def waitid_nohang(idtype: int, ident: int, options: int) -> bool:
    return _wnohang(options)


def open_fd(file: Any, *args: Any, **kwargs: Any) -> bool:
    return isinstance(file, int)


def certificates_in_memory(
    context: Any, cafile: Any = None, capath: Any = None, cadata: Any = None
) -> bool:
    return cafile is None and capath is None
