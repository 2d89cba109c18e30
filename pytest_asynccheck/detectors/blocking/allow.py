"""Allow entries: the forms of ``asynccheck_blocking_allow`` and of the marker's ``allow``
(``parse_allow_entry``), and the rules that match a call against them (``AllowRules``).

An entry matches the call, any library function on the way from the user's line to it
(``mimetypes.guess_type``: see ``chain.py``), a caller anywhere on the stack, or the user's
file.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .catalogue import ALIASES

if TYPE_CHECKING:
    from .chain import Call


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
