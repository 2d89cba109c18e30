"""The names an allow list may hold: ``asynccheck_blocking_allow`` in the ini file and the
``asynccheck(allow=[...])`` marker.

An entry is valid when it names a finding kind, a catalogued call (or one of its aliases),
``stall``, a function on the way to a catalogued call (``module.qualname``), or one of the scoped
forms ``detectors.blocking.allow.parse_allow_entry`` reads (``module:<prefix>``, ``path:<glob>``,
``<call>@<path suffix>:<function>``). An invalid entry gets what is expected instead, with the
closest valid names. The code under test is never imported to check a name: only modules
already imported, or the standard library's, are looked into.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys

from ._findings import Kind


def allow_vocabulary() -> tuple[str, ...]:
    """Every plain name an allow list may hold: finding kinds, catalogued calls and their
    aliases, and ``stall``."""
    # The detectors' package reads the settings: imported only when needed.
    from .detectors.blocking import catalogue
    from .detectors.blocking import watchdog as monitor

    return (
        *(kind.value for kind in Kind),
        *catalogue.names(),
        *catalogue.ALIASES,
        monitor.STALL_CALL,
    )


def _names_a_function(entry: str) -> bool:
    """Whether ``entry`` is ``module.qualname`` of a function that may stand on the way to a
    blocking call (``mimetypes.guess_type``). A module already imported, or one of the
    standard library's, is looked into; any other module is only found, never imported here:
    importing the code under test at configuration time could change what it does."""
    parts = entry.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name, path = ".".join(parts[:cut]), parts[cut:]
        module = sys.modules.get(module_name)
        if module is None and module_name.partition(".")[0] in sys.stdlib_module_names:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
        if module is not None:
            target: object = module
            for name in path:
                target = getattr(target, name, None)
                if target is None:
                    return False
            return callable(target)
        try:
            if importlib.util.find_spec(module_name) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def unknown_allow_entry(entry: str) -> str | None:
    """What an allow list expects instead of ``entry`` (with the closest valid names), or
    ``None`` when ``entry`` is valid: a kind, a catalogued call, ``stall``, a function on the
    way to a call, or one of the scoped forms ``parse_allow_entry`` reads."""
    from .detectors.blocking.allow import parse_allow_entry

    try:
        parsed = parse_allow_entry(entry)
    except ValueError as exc:
        return str(exc)
    if parsed.module or parsed.path:
        return None
    vocabulary = allow_vocabulary()
    name = parsed.call
    if name in vocabulary or name == "*" or _names_a_function(name):
        return None
    close = difflib.get_close_matches(name, vocabulary, n=3)
    kinds = ", ".join(kind.value for kind in Kind)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return (
        f"a catalogued call such as time.sleep, a function on the way to one "
        f"(module.qualname), a kind ({kinds}), stall, module:<prefix>, path:<glob> or "
        f"<call>@<path suffix>:<function>{hint}"
    )
