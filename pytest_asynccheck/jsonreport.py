"""The machine-readable report: ``--asynccheck-report=PATH`` (schema in ``report-schema.json``).

The file is rewritten atomically (a temporary file, then ``os.replace``) as results arrive, at
most every ``REWRITE_INTERVAL`` seconds, and once more when the session ends, so a run cut short
(Ctrl-C, ``-x``, a crash in a test) still leaves a complete, valid file for what ran.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from . import _clock
from .config import Settings
from .findings import Finding, Severity

SCHEMA_VERSION = 1
SCHEMA = Path(__file__).with_name("report-schema.json")
REWRITE_INTERVAL = 0.5
FINDING_FIELDS = (
    "kind", "severity", "nodeid", "phase", "file", "line", "function", "call", "duration",
    "count", "message", "fix", "stack", "in_test_file",
)  # fmt: skip


def settings_dict(settings: Settings) -> dict[str, Any]:
    return {
        "mode": settings.mode,
        "severities": {kind.value: sev.value for kind, sev in settings.severities.items()},
        "stall_threshold": settings.stall_threshold,
        "wall_factor": settings.wall_factor,
        "wall_include_setup": settings.wall_include_setup,
    }


def build(
    settings: Settings,
    findings: Sequence[Finding],
    budgets: Sequence[dict[str, Any]],
    checked: int,
    complete: bool,
) -> dict[str, Any]:
    from . import __version__

    by_kind = Counter(f.kind for f in findings for _ in range(f.count))
    return {
        "schema_version": SCHEMA_VERSION,
        "complete": complete,
        "versions": {
            "python": platform.python_version(),
            "pytest": pytest.__version__,
            "pytest_asynccheck": __version__,
        },
        "settings": settings_dict(settings),
        "findings": [
            {
                name: (list(f.stack) if name == "stack" else getattr(f, name))
                for name in FINDING_FIELDS
            }
            for f in findings
        ],
        "budgets": list(budgets),
        "totals": {
            "checked_tests": checked,
            "findings": sum(f.count for f in findings),
            "errors": sum(f.count for f in findings if f.severity == Severity.ERROR.value),
            "warnings": sum(f.count for f in findings if f.severity == Severity.WARN.value),
            "by_kind": dict(sorted(by_kind.items())),
            "budgets_exceeded": sum(1 for b in budgets if b["wall"] > b["budget"] * b["factor"]),
        },
    }


def write_atomically(path: str, data: dict[str, Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Writer:
    """Rewrites the report as results arrive, at most every ``REWRITE_INTERVAL`` seconds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._last = float("-inf")

    def maybe_write(self, make: Any) -> None:
        now = _clock.perf_counter()
        if now - self._last >= REWRITE_INTERVAL:
            self._last = now
            write_atomically(self.path, make(False))

    def write(self, make: Any) -> None:
        write_atomically(self.path, make(True))
