"""The way from the user's line to a blocking call: the library functions on it, named as
users write them in allow lists (``mimetypes.guess_type``, ``pathlib.Path.glob``), and the
user's frames from the test function down to the call.

The finding names the outermost library function between the user's line and the call
(``mimetypes.guess_type -> open``).
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ... import _frames as frames
from ..._frames import Origin

if TYPE_CHECKING:
    from ..._session import TestCheck

#: The chain names a library's private helper as the public function it serves (a name ending
#: in a dot: everything under it): Python 3.13's ``Path.glob``/``rglob`` return a ``map`` over
#: glob's selectors, so only those are on the stack while the listing runs.
_PUBLIC_NAMES = {
    "os._walk": "os.walk",
    "glob._iglob": "glob.iglob",
    "glob._Globber.": "pathlib.Path.glob",
}


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
        origin = frames.origin(frame.f_code.co_filename)
        if origin is Origin.MACHINERY:
            break
        if origin is Origin.PLUGIN or _unnamed(frame.f_code):
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
    return frames.user_chain(frame, root, limit, stop=_test_code(test))
