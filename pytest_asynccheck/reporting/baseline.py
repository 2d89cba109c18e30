"""Adopting the checks on a large codebase: ``--asynccheck-baseline=PATH`` accepts the findings
recorded in the file and fails only on new ones; ``--asynccheck-update-baseline`` writes it.

Entries are keyed by kind, file, function and call, not by line, so unrelated edits that move
code do not invalidate the baseline. Entries no finding matched in a run are stale and listed,
so the baseline shrinks as code is fixed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest

from .._findings import BaselineKey, Finding
from .._options import Settings

VERSION = 1


def accepted(settings: Settings) -> frozenset[BaselineKey]:
    """The finding keys the run accepts: its baseline file's, none when it records one anew."""
    path = settings.baseline_path
    if not path or settings.update_baseline:
        return frozenset()
    source = settings.baseline_source
    option = "--asynccheck-baseline" if source == "command line" else "asynccheck_baseline"
    return load(path, option, source)


def load(
    path: str, option: str = "--asynccheck-baseline", source: str = "command line"
) -> frozenset[BaselineKey]:
    """The keys in the baseline file; a missing file is an empty baseline (the options check
    at configure time that it exists). A file that is not a baseline is a usage error naming
    ``option`` and its ``source``."""
    target = Path(path)
    if not target.exists():
        return frozenset()
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
        entries = data["entries"]
        return frozenset((e["kind"], e["file"], e["function"], e["call"]) for e in entries)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise pytest.UsageError(
            f"asynccheck: {option}={path!r} (from {source}) is not a baseline file written by "
            f"--asynccheck-update-baseline ({type(exc).__name__}: {exc})"
        ) from None


def write(path: str, findings: Iterable[Finding]) -> int:
    counts = Counter(f.baseline_key for f in findings for _ in range(f.count))
    entries = [
        {"kind": k[0], "file": k[1], "function": k[2], "call": k[3], "count": n}
        for k, n in sorted(counts.items())
    ]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"version": VERSION, "entries": entries}, indent=2) + "\n")
    return len(entries)


def stale(baseline: frozenset[BaselineKey], findings: Iterable[Finding]) -> list[BaselineKey]:
    seen = {f.baseline_key for f in findings}
    return sorted(baseline - seen)
