"""Finding the user's line: the first frame outside the standard library, site-packages and
this plugin."""

from __future__ import annotations

import os
import sys
import sysconfig
import types
from collections.abc import Iterable, Iterator

_PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))


def _library_dirs() -> tuple[str, ...]:
    dirs = {_PLUGIN_DIR}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            dirs.add(os.path.abspath(path))
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        dirs.add(os.path.abspath(os.path.join(prefix, "lib")))
    return tuple(sorted(dirs, key=len, reverse=True))


LIBRARY_DIRS = _library_dirs()


#: filename -> whether it is the user's; asked for every frame of every walk (a task's creation,
#: a finding), and the answer never changes.
_user_files: dict[str, bool] = {}


def is_user_file(filename: str) -> bool:
    known = _user_files.get(filename)
    if known is None:
        known = _user_files[filename] = _is_user_file(filename)
    return known


def _is_user_file(filename: str) -> bool:
    if not filename or filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    if "site-packages" in path.split(os.sep) or "dist-packages" in path.split(os.sep):
        return False
    return not any(path == d or path.startswith(d + os.sep) for d in LIBRARY_DIRS)


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


def relpath(filename: str, root: str | None = None) -> str:
    """``filename`` relative to ``root`` (default: the working directory) when it is inside it,
    or to the library directory it is in."""
    base = os.path.abspath(root or os.getcwd())
    path = os.path.abspath(filename)
    if path.startswith(base + os.sep):
        return os.path.relpath(path, base)
    for library in LIBRARY_DIRS:
        if path.startswith(library + os.sep) and library != _PLUGIN_DIR:
            # "asyncio/tasks.py" reads better than the interpreter's install path.
            return os.path.relpath(path, library)
    return filename


def describe(frame: types.FrameType, root: str | None = None) -> str:
    return f"{relpath(frame.f_code.co_filename, root)}:{frame.f_lineno} in {frame.f_code.co_name}"


def user_chain(
    frame: types.FrameType | None, root: str | None = None, limit: int = 8
) -> tuple[str, ...]:
    """The user frames from ``frame`` outwards, outermost first, as ``file:line in func``."""
    chain = [describe(f, root) for f in walk(frame) if is_user_file(f.f_code.co_filename)]
    return tuple(reversed(chain[:limit]))
