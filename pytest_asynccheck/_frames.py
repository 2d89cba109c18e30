"""Where a frame's code comes from, and finding the user's line: the first frame outside the
standard library, site-packages and this plugin.

``origin`` is the one classification of a file (cached per file name: the answer never
changes); ``is_user_file`` is its ``USER`` answer. The user's files are those outside every
library directory (the standard library, site-packages and dist-packages, the interpreter's
``lib`` directories) and outside this plugin; code compiled from a string (``<string>``) and
frozen modules are nobody's file. ``instruction_lines`` gives each instruction of a code
object with its source line, on 3.10 as on 3.11+. ``qualified_name`` is how a finding names a
coroutine or callable. ``user_site`` is the user's line as (file, line, function), the form
kept for a creation until a finding is made: a plain loop, as it runs for every task and
resource a test makes.
"""

from __future__ import annotations

import dis
import enum
import os
import sys
import sysconfig
import types
from collections.abc import Iterable, Iterator
from typing import Any

#: The working directory's getter as it was at import. A suite's own blocking-call checker
#: (blockbuster, in anyio's and starlette's suites) replaces ``os.getcwd`` and
#: ``os.path.abspath`` (which ``os.path.relpath`` calls) while a test runs and fails the call on
#: the loop thread: the plugin's path arithmetic, run there inside the user's calls (a task's
#: creation, a finding), goes through neither.
_getcwd = os.getcwd


def abspath(filename: str) -> str:
    """``os.path.abspath(filename)``, without calling ``os.path.abspath`` or ``os.getcwd`` as
    they are now (see ``_getcwd``)."""
    if not os.path.isabs(filename):
        filename = os.path.join(_getcwd(), filename)
    return os.path.normpath(filename)


#: This package's directory: its frames are the plugin's.
PLUGIN_DIR = os.path.dirname(abspath(__file__))


def _library_dirs() -> tuple[str, ...]:
    dirs = {PLUGIN_DIR}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            dirs.add(os.path.abspath(path))
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        dirs.add(os.path.abspath(os.path.join(prefix, "lib")))
    return tuple(sorted(dirs, key=len, reverse=True))


LIBRARY_DIRS = _library_dirs()
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
#: Any of these on the stack makes a blocking call exempt (source lines for tracebacks).
_EXEMPT_FILES = ("linecache.py",)


class Origin(enum.Enum):
    """Where a file's code comes from, as the checks tell callers apart."""

    #: The standard library (not its machinery), or code with no file (``<string>``).
    STDLIB = "stdlib"
    #: The event loop's and threads' own machinery in the standard library (``_MACHINERY``).
    MACHINERY = "machinery"
    #: An import (frozen importlib, zipimport) or ``linecache``: what runs there is exempt.
    FROZEN = "frozen"
    PLUGIN = "plugin"
    #: coverage.py, installed: its tracer reads files on any thread.
    COVERAGE = "coverage"
    #: Installed packages, and anything else under a library directory.
    THIRD_PARTY = "third-party"
    USER = "user"


#: filename -> its origin; asked for every frame of every walk (a task's creation, a
#: finding, a blocking call on the loop thread), and the answer never changes.
_origins: dict[str, Origin] = {}


def origin(filename: str) -> Origin:
    known = _origins.get(filename)
    if known is None:
        known = _origins[filename] = _origin(filename)
    return known


def is_user_file(filename: str) -> bool:
    known = _origins.get(filename)
    if known is None:
        known = _origins[filename] = _origin(filename)
    return known is Origin.USER


def _origin(filename: str) -> Origin:
    if filename.startswith(("<frozen importlib", "<frozen zipimport")):
        return Origin.FROZEN
    if not filename or filename.startswith("<"):
        return Origin.STDLIB
    path = abspath(filename)
    if path.startswith(PLUGIN_DIR + os.sep):
        return Origin.PLUGIN
    if f"{os.sep}coverage{os.sep}" in path and "-packages" in path:
        return Origin.COVERAGE
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return Origin.THIRD_PARTY
    stdlib = next((d for d in _STDLIB_DIRS if path.startswith(d + os.sep)), None)
    if stdlib is not None:
        rel = path[len(stdlib) + 1 :]
        if rel.endswith(_EXEMPT_FILES) and os.sep not in rel:
            return Origin.FROZEN
        if rel.split(os.sep)[0] in _MACHINERY and rel != os.path.join("asyncio", "events.py"):
            return Origin.MACHINERY
        return Origin.STDLIB
    if any(path == d or path.startswith(d + os.sep) for d in LIBRARY_DIRS):
        return Origin.THIRD_PARTY
    return Origin.USER


def instruction_lines(code: types.CodeType) -> Iterator[tuple[dis.Instruction, int]]:
    """Each instruction of ``code``, in order, with the source line it is on (one with no line
    of its own, on the line before it)."""
    line = code.co_firstlineno
    for instruction in dis.get_instructions(code):
        positions = getattr(instruction, "positions", None)
        if positions is not None and positions.lineno:
            line = positions.lineno
        elif isinstance(instruction.starts_line, int) and instruction.starts_line:
            line = instruction.starts_line  # pragma: no cover - Python 3.10
        yield instruction, line


#: A line of code as a finding reports it: (file name, line, function name).
Site = tuple[str, int, str]


def site(frame: types.FrameType | None) -> Site | None:
    if frame is None:
        return None
    code = frame.f_code
    return code.co_filename, frame.f_lineno, code.co_name


def user_site(frame: types.FrameType | None) -> Site | None:
    """The innermost user frame from ``frame`` out, as a ``Site`` (``site(user_frame(walk(
    frame)))``)."""
    # A while loop over f_back and the cache read inline, no generator and no call per frame:
    # this runs for every task and resource a test makes (benchmarks/README.md, "Unclosed
    # resources").
    origins, user = _origins, Origin.USER
    while frame is not None:
        code = frame.f_code
        filename = code.co_filename
        known = origins.get(filename)
        if known is None:
            known = origin(filename)
        if known is user:
            return filename, frame.f_lineno, code.co_name
        frame = frame.f_back
    return None


def walk(frame: types.FrameType | None) -> Iterator[types.FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def user_frame(frames: Iterable[types.FrameType]) -> types.FrameType | None:
    """The first user frame in ``frames`` (innermost first)."""
    for frame in frames:
        if is_user_file(frame.f_code.co_filename):
            return frame
    return None


def qualified_name(obj: Any, default: str | None = None) -> str:
    """``obj``'s ``__qualname__``, else its ``__name__``, else ``default`` (by default, the name
    of its type): ``Proto.connection_made``, ``main.<locals>.worker``."""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if name:
        return str(name)
    return type(obj).__name__ if default is None else default


def relpath(filename: str, root: str | None = None) -> str:
    """``filename`` relative to ``root`` (default: the working directory) when it is inside it,
    or to the library directory it is in."""
    base = abspath(root or _getcwd())
    path = abspath(filename)
    if path.startswith(base + os.sep):
        return path[len(base) + 1 :]  # both normalized: what os.path.relpath would give
    for library in LIBRARY_DIRS:
        if path.startswith(library + os.sep) and library != PLUGIN_DIR:
            # "asyncio/tasks.py" reads better than the interpreter's install path.
            return path[len(library) + 1 :]
    return filename


def describe(frame: types.FrameType, root: str | None = None) -> str:
    return f"{relpath(frame.f_code.co_filename, root)}:{frame.f_lineno} in {frame.f_code.co_name}"


def user_chain(
    frame: types.FrameType | None,
    root: str | None = None,
    limit: int = 8,
    stop: types.CodeType | None = None,
) -> tuple[str, ...]:
    """The user frames from ``frame`` outwards, outermost first, as ``file:line in func``;
    with ``stop``, no further out than the frame running that code (the test function)."""
    chain = []
    for each in walk(frame):
        if is_user_file(each.f_code.co_filename):
            chain.append(describe(each, root))
        if each.f_code is stop:
            break
    return tuple(reversed(chain[:limit]))
