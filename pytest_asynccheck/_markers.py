"""The plugin's markers read from a test item: ``asynccheck(allow=[...])`` and
``max_wall(seconds, clock=...)``.

A marker used with bad arguments is a ``MarkerError`` naming the test, the marker as written and
what is expected; the hooks turn it into that one test's error (or a warning in warn mode). The
allow entries are those of ``asynccheck_blocking_allow`` (``_allow``); a budget is a duration as
the options read it (``parse_duration``). Nothing here runs a check: the session and the
detectors act on what is read.
"""

from __future__ import annotations

import pytest

from ._allow import unknown_allow_entry
from ._findings import Kind
from ._option_values import parse_duration
from ._options import CLOCKS

ALLOW_MARKER = "asynccheck"
MAX_WALL_MARKER = "max_wall"


class MarkerError(Exception):
    """A marker of this plugin was used with bad arguments."""


def parse_allow_marker(item: pytest.Item) -> frozenset[str]:
    """``@pytest.mark.asynccheck(allow=[...])``: finding kinds, or names a detector knows
    (such as ``"time.sleep"``), that this test may produce. Closest marker first; all merge."""
    allowed: set[str] = set()
    for mark in item.iter_markers(ALLOW_MARKER):
        if mark.args:
            raise MarkerError(
                f"{item.nodeid}: @pytest.mark.asynccheck takes only the keyword 'allow', "
                f"got positional arguments {mark.args!r}"
            )
        unknown = set(mark.kwargs) - {"allow"}
        if unknown:
            raise MarkerError(
                f"{item.nodeid}: @pytest.mark.asynccheck got unknown keyword "
                f"{', '.join(sorted(unknown))}; valid: allow"
            )
        value = mark.kwargs.get("allow", ())
        entries = [value] if isinstance(value, str) else value
        if not isinstance(entries, (list, tuple, set, frozenset)) or not all(
            isinstance(e, str) and e for e in entries
        ):
            kinds = ", ".join(sorted(kind.value for kind in Kind))
            raise MarkerError(
                f"{item.nodeid}: @pytest.mark.asynccheck(allow={value!r}) must be a list of "
                f"finding kinds ({kinds}) or call names"
            )
        for entry in entries:
            expected = unknown_allow_entry(entry)
            if expected is not None:
                raise MarkerError(
                    f"{item.nodeid}: @pytest.mark.asynccheck(allow=[{entry!r}]) names no "
                    f"check; expected {expected}"
                )
        allowed.update(entries)
    return frozenset(allowed)


def parse_max_wall(item: pytest.Item) -> tuple[float, str | None] | None:
    """The closest ``max_wall`` marker's budget in seconds and its ``clock``, if any."""
    mark = item.get_closest_marker(MAX_WALL_MARKER)
    if mark is None:
        return None
    shown = ", ".join([*map(repr, mark.args), *(f"{k}={v!r}" for k, v in mark.kwargs.items())])
    where = f"{item.nodeid}: @pytest.mark.max_wall({shown})"
    unknown = set(mark.kwargs) - {"clock"}
    if unknown:
        raise MarkerError(
            f"{where}: unknown keyword {', '.join(sorted(unknown))}; max_wall takes the budget "
            "and optionally clock='wall' or clock='virtual'"
        )
    clock = mark.kwargs.get("clock")
    if clock is not None and clock not in CLOCKS:
        raise MarkerError(f"{where}: clock={clock!r} is not valid; expected 'wall' or 'virtual'")
    if len(mark.args) != 1:
        raise MarkerError(
            f"{where}: expected exactly one budget, such as max_wall(2.1) or max_wall('500ms')"
        )
    seconds = parse_duration(mark.args[0])
    if seconds is None:
        raise MarkerError(
            f"{where}: {mark.args[0]!r} is not a budget; expected a positive number of seconds "
            "or a string with a unit ('500ms', '2.1s')"
        )
    return seconds, clock
