"""Whether a path the user gave can serve: a file to write, a file to read, a directory to write
into.

Each check returns ``None`` when the path can serve, else why not in a few words for a usage
error (the caller names the option and where its value came from). Only ``directory_problem``
changes anything: it makes the directory, so a bad one stops the run at once; the others only
look. A path is shown as the user wrote it: relative to the working directory when inside it.
"""

from __future__ import annotations

import os
from pathlib import Path


def writable_problem(path: str) -> str | None:
    """Why a file cannot be written at ``path`` (its directory made if needed), or ``None``."""
    if "\0" in path:
        return "it contains a NUL byte"
    try:
        return _writable(Path(path))
    except (OSError, ValueError) as exc:  # a name too long, say
        return f"it is not a usable path ({exc})"


def readable_problem(path: str) -> str | None:
    """Why ``path`` is not a file that can be read (a baseline, say), or ``None``."""
    if "\0" in path:
        return "it contains a NUL byte"
    try:
        target = Path(path)
        if target.is_dir():
            return "it is a directory"
        if not target.exists():
            return "the file does not exist; create it with --asynccheck-update-baseline"
        if not os.access(target, os.R_OK):
            return "the file is not readable"
    except (OSError, ValueError) as exc:
        return f"it is not a usable path ({exc})"
    return None


def directory_problem(path: str) -> str | None:
    """Why ``path`` is not a directory that can be made (it is made now), or ``None``."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{exc.strerror}"
    except ValueError as exc:  # a NUL byte
        return str(exc)
    return None


def _writable(target: Path) -> str | None:
    if target.is_dir():
        return "it is a directory"
    if target.exists() and not os.access(target, os.W_OK):
        return "the file is not writable"
    parent = target.absolute().parent
    existing = _nearest_existing(parent)
    if not existing.is_dir():
        return f"{_shown(existing)!r} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the directory {_shown(existing)!r} is not writable"
    return None


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _shown(path: Path) -> str:
    """``path`` as the user wrote it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()
