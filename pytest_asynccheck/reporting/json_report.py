"""The machine-readable report: ``--asynccheck-report=PATH`` (schema in ``report-schema.json``).

The file is rewritten atomically (a temporary file, then ``os.replace``) as results arrive, at
most every ``REWRITE_INTERVAL`` seconds, and once more when the session ends, so a run cut short
(Ctrl-C, ``-x``, a crash in a test) still leaves a valid file for what ran. ``complete`` is true
only in the file written at the end of a run in which every collected test ran and nothing
interrupted the session; ``tests_collected`` and ``tests_run`` say how far it got. The file gets
the permissions the process umask gives a new file. A write that fails during the run (disk
full, permissions changed) is remembered and reported once, in one line at the end; it never
changes a test's outcome.
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

from .. import _clock
from .._findings import Finding, Severity
from .._options import Settings
from .._version import __version__

SCHEMA_VERSION = 2
REWRITE_INTERVAL = 0.5
FINDING_FIELDS = (
    "kind", "severity", "nodeid", "phase", "file", "line", "function", "call", "duration",
    "count", "message", "fix", "stack", "in_test_file",
)  # fmt: skip


def settings_dict(settings: Settings) -> dict[str, Any]:
    """Every option's effective value, by ``Settings`` field (``_options.OPTIONS``)."""
    return settings.as_json()


def build(
    settings: Settings,
    findings: Sequence[Finding],
    budgets: Sequence[dict[str, Any]],
    checked: int,
    complete: bool,
    collected: int = 0,
    ran: int = 0,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "complete": complete,
        "tests_collected": collected,
        "tests_run": ran,
        "versions": {
            "python": platform.python_version(),
            "pytest": pytest.__version__,
            "pytest_asynccheck": __version__,
        },
        "settings": settings_dict(settings),
        "findings": [finding_dict(f) for f in findings],
        "budgets": list(budgets),
        "totals": totals(findings, budgets, checked),
    }


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The permissions of a new file under this process's umask (``mkstemp`` makes it 0600).
FILE_MODE = 0o666 & ~_umask()


def write_atomically(path: str, data: dict[str, Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Writer:
    """Rewrites the report as results arrive, at most every ``REWRITE_INTERVAL`` seconds.

    A failed write is kept in ``error`` (the first one) and does not propagate: the run goes
    on, and the final write tries again."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._last = float("-inf")
        self.error: OSError | None = None
        self.written = False

    def maybe_write(self, make: Any) -> None:
        now = _clock.perf_counter()
        if now - self._last >= REWRITE_INTERVAL:
            self._last = now
            self._write(make(False))

    def write(self, make: Any, complete: bool = True) -> None:
        self.written = self._write(make(complete))

    def _write(self, data: dict[str, Any]) -> bool:
        try:
            write_atomically(self.path, data)
        except OSError as exc:
            if self.error is None:
                self.error = exc
            return False
        return True


class NotAReport(ValueError):
    """A file given as a report is not one this version of the plugin writes."""


_REQUIRED: dict[str, tuple[type, str]] = {
    "schema_version": (int, "an integer"),
    "complete": (bool, "true or false"),
    "tests_collected": (int, "an integer"),
    "tests_run": (int, "an integer"),
    "versions": (dict, "an object"),
    "settings": (dict, "an object"),
    "findings": (list, "a list"),
    "budgets": (list, "a list"),
    "totals": (dict, "an object"),
}


def check_report(data: object) -> dict[str, Any]:
    """``data`` if it has the shape of a report of this schema version; else ``NotAReport``
    saying what is wrong (runtime code has only pytest: no JSON Schema validator)."""
    if not isinstance(data, dict):
        raise NotAReport(f"expected a JSON object, found {type(data).__name__}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise NotAReport(
            f"schema_version is {data.get('schema_version')!r}, expected {SCHEMA_VERSION}"
        )
    for name, (kind, described) in _REQUIRED.items():
        if not isinstance(data.get(name), kind):
            raise NotAReport(f"{name!r} is missing or not {described}")
    for index, finding in enumerate(data["findings"]):
        if not isinstance(finding, dict) or set(FINDING_FIELDS) - set(finding):
            raise NotAReport(f"finding {index} lacks one of: {', '.join(FINDING_FIELDS)}")
        if not isinstance(finding["count"], int) or finding["count"] < 1:
            raise NotAReport(f"finding {index} has count {finding['count']!r}")
    for index, budget in enumerate(data["budgets"]):
        if not isinstance(budget, dict) or not all(
            isinstance(budget.get(k), (int, float)) for k in ("wall", "budget", "factor")
        ):
            raise NotAReport(f"budget {index} lacks a number wall, budget or factor")
    totals = data["totals"]
    if not isinstance(totals.get("checked_tests"), int):
        raise NotAReport("'totals' has no integer checked_tests")
    return data


def finding_dict(finding: Finding) -> dict[str, Any]:
    return {
        name: (list(finding.stack) if name == "stack" else getattr(finding, name))
        for name in FINDING_FIELDS
    }


def totals(
    findings: Sequence[Finding], budgets: Sequence[dict[str, Any]], checked: int
) -> dict[str, Any]:
    by_kind = Counter(f.kind for f in findings for _ in range(f.count))
    return {
        "checked_tests": checked,
        "findings": sum(f.count for f in findings),
        "errors": sum(f.count for f in findings if f.severity == Severity.ERROR.value),
        "warnings": sum(f.count for f in findings if f.severity == Severity.WARN.value),
        "by_kind": dict(sorted(by_kind.items())),
        "budgets_exceeded": sum(1 for b in budgets if b["wall"] > b["budget"] * b["factor"]),
    }


def findings_of(report: dict[str, Any]) -> list[Finding]:
    return [Finding.from_dict(data) for data in report["findings"]]


def combine(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report for the shards of a run: findings of the same test, phase and place
    (``Finding.key``) merge as they do within a run (counts add up, the longest duration is
    kept), budgets and test counts add up, and the result is complete only when every shard
    is. Settings and versions are the first shard's."""
    merged: dict[tuple[Any, ...], Finding] = {}
    for report in reports:
        for finding in findings_of(report):
            key = (finding.nodeid, finding.phase, *finding.key)
            seen = merged.get(key)
            merged[key] = finding if seen is None else seen.merged(finding)
    findings = list(merged.values())
    budgets = [budget for report in reports for budget in report["budgets"]]
    checked = sum(report["totals"]["checked_tests"] for report in reports)
    first = reports[0]
    return {
        "schema_version": SCHEMA_VERSION,
        "complete": all(report["complete"] for report in reports),
        "tests_collected": sum(report["tests_collected"] for report in reports),
        "tests_run": sum(report["tests_run"] for report in reports),
        "versions": first["versions"],
        "settings": first["settings"],
        "findings": [finding_dict(f) for f in findings],
        "budgets": budgets,
        "totals": totals(findings, budgets, checked),
    }
