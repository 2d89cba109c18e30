"""The GitHub Actions job summary: with ``GITHUB_STEP_SUMMARY`` set (the path of a file GitHub
renders as Markdown on the run's page), a section is appended at the end of the session: the
findings counted by kind, the places with the most findings, new against accepted (with a
baseline), and every budget with its margin. Under pytest-xdist only the controller writes it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._findings import Finding, Severity

ENV = "GITHUB_STEP_SUMMARY"
TOP_PLACES = 10
MAX_BUDGETS = 30


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"


def markdown(
    findings: Sequence[Finding],
    budgets: Sequence[dict[str, Any]],
    checked: int,
    with_baseline: bool,
) -> str:
    total = sum(f.count for f in findings)
    lines = ["## asynccheck", ""]
    if not findings:
        lines.append(f"No findings in {checked} checked tests.")
    else:
        tests = len({f.nodeid for f in findings})
        lines += [f"{total} findings in {tests} of {checked} checked tests.", ""]
        by_kind: Counter[tuple[str, str]] = Counter()
        for finding in findings:
            by_kind[(finding.kind, finding.severity)] += finding.count
        lines += ["| kind | severity | count |", "|---|---|---:|"]
        lines += [f"| {k} | {s} | {n} |" for (k, s), n in sorted(by_kind.items())]
        if with_baseline:
            accepted = sum(f.count for f in findings if f.severity == Severity.ACCEPTED.value)
            lines += ["", f"New: {total - accepted}, accepted by the baseline: {accepted}."]
        places: Counter[tuple[str, str, str]] = Counter()
        for finding in findings:
            where = finding.location + (f" in {finding.function}" if finding.function else "")
            places[(finding.kind, where, finding.call)] += finding.count
        lines += ["", "Top places:", "", "| kind | place | call | count |", "|---|---|---|---:|"]
        lines += [
            f"| {k} | `{_cell(w)}` | {_cell(c)} | {n} |"
            for (k, w, c), n in places.most_common(TOP_PLACES)
        ]
    if budgets:
        lines += ["", "| budgeted test | measured | budget | margin |", "|---|---:|---:|---:|"]
        for budget in sorted(budgets, key=lambda b: b["margin"])[:MAX_BUDGETS]:
            allowed = budget["budget"] * budget["factor"]
            state = "" if budget["margin"] >= 0 else " (exceeded)"
            clock = " virtual" if budget.get("clock") == "virtual" else ""
            lines.append(
                f"| `{_cell(budget['nodeid'])}` | {_seconds(budget['wall'])}{clock} "
                f"| {_seconds(allowed)} | {_seconds(budget['margin'])}{state} |"
            )
        if len(budgets) > MAX_BUDGETS:
            lines.append(f"\n... and {len(budgets) - MAX_BUDGETS} more budgeted tests")
    return "\n".join(lines) + "\n\n"


def append(
    findings: Sequence[Finding],
    budgets: Sequence[dict[str, Any]],
    checked: int,
    with_baseline: bool,
) -> str | None:
    """Append the section to the summary file; the path written, or ``None`` when unset."""
    path = os.environ.get(ENV)
    if not path:
        return None
    with Path(path).open("a", encoding="utf-8") as out:
        out.write(markdown(findings, budgets, checked, with_baseline))
    return path
