"""The text people read: a failed phase's message, the ``asynccheck`` terminal section and its
``-q``/``-v`` variants, and the one line per finding of the JUnit properties.

Pure rendering: each function makes text from findings and budgets, and only ``write_summary``
writes it, to the terminal reporter it is given.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest

from .._findings import Finding, Phase, Severity


def one_line(finding: Finding) -> str:
    return f"{finding.kind} {finding.severity} {finding.location}: {finding.message}"


_TIMELINE_ROW = re.compile(r"^(?P<label>.* \|)(?P<cells>[=. ]+)(?P<end>\|)$")

_CELL_COLOURS = {"=": "\x1b[32m", ".": "\x1b[33m"}  # running: green, waiting: yellow


def _colour_cells(cells: str) -> str:
    return re.sub(r"=+|\.+", lambda m: f"{_CELL_COLOURS[m[0][0]]}{m[0]}\x1b[0m", cells)


def colour_timelines(text: str) -> str:
    """Timeline rows with running and waiting stretches coloured, for colour terminals."""
    lines = []
    for line in text.splitlines():
        match = _TIMELINE_ROW.match(line)
        if match:
            line = match["label"] + _colour_cells(match["cells"]) + match["end"]
        lines.append(line)
    return "\n".join(lines)


def failure_text(
    nodeid: str, phase: Phase, findings: Sequence[Finding], colour: bool = False
) -> str:
    errors = sum(1 for f in findings if f.severity == Severity.ERROR.value)
    noun = "problem" if errors == 1 else "problems"
    head = f"asynccheck found {errors} {noun} in {nodeid} ({phase}):"
    text = "\n".join([head, *(f.render() for f in findings)])
    return colour_timelines(text) if colour else text


def summary_lines(
    findings: Sequence[Finding], disabled: Sequence[str], verbose: bool = False
) -> list[str]:
    """The ``asynccheck`` terminal section: findings in the code under test, then in test
    files, grouped by kind and location; ``verbose`` (``-v``) adds the stack of each place's
    first finding."""
    groups: dict[tuple[bool, str, str, str, str], list[Finding]] = defaultdict(list)
    for finding in findings:
        where = finding.location + (f" in {finding.function}" if finding.function else "")
        key = (finding.in_test_file, finding.kind, where, finding.call, finding.severity)
        groups[key].append(finding)
    lines: list[str] = []
    section = None
    for (in_test_file, kind, where, call, severity), group in sorted(groups.items()):
        if in_test_file is not section:
            section = in_test_file
            lines.append("in test files:" if in_test_file else "in the code under test:")
        count = sum(f.count for f in group)
        tests = sorted({f.nodeid or "<no test>" for f in group})
        what = f" {call}" if call else ""
        lines.append(f"{severity:5} {kind:15} {where}{what}  x{count}")
        if verbose:
            lines.extend(f"          {entry}" for entry in group[0].stack)
        lines.extend(f"        {nodeid}" for nodeid in tests[:5])
        if len(tests) > 5:
            lines.append(f"        ... and {plural(len(tests) - 5, 'more test')}")
    for note in disabled:
        lines.append(f"note: {note}")
    return lines


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 entry``, ``2 entries``: the count and the noun that agrees with it."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def kind_lines(findings: Sequence[Finding]) -> list[str]:
    """``-q``: one line per kind and severity, with how many places and tests."""
    groups: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for finding in findings:
        groups[(finding.kind, finding.severity)].append(finding)
    return [
        f"{severity:5} {kind:15} x{sum(f.count for f in group)} at "
        f"{plural(len({(f.file, f.line) for f in group}), 'place')} in "
        f"{plural(len({f.nodeid for f in group}), 'test')}"
        for (kind, severity), group in sorted(groups.items())
    ]


def budget_lines(budgets: Sequence[dict[str, Any]]) -> list[str]:
    """``-v``: every budget that held, with its margin, the tightest first."""
    held = sorted((b for b in budgets if b["margin"] >= 0), key=lambda b: b["margin"])
    return [
        f"budget ok  {b['nodeid']}: {b['wall']:.3f} s of {b['budget'] * b['factor']:.3f} s "
        f"({b.get('clock', 'wall')}), margin {b['margin']:.3f} s"
        for b in held
    ]


def totals_line(findings: Sequence[Finding], checked: int) -> str:
    errors = sum(f.count for f in findings if f.severity == Severity.ERROR.value)
    warned = sum(f.count for f in findings if f.severity == Severity.WARN.value)
    tests = len({f.nodeid for f in findings})
    if not findings:
        return f"asynccheck: no findings in {plural(checked, 'checked test')}"
    return (
        f"asynccheck: {plural(errors, 'error')}, {plural(warned, 'warning')} in {tests} of "
        f"{plural(checked, 'checked test')}"
    )


def write_summary(
    terminal: pytest.TerminalReporter,
    findings: Sequence[Finding],
    disabled: Sequence[str],
    checked: int,
    rerun: Sequence[Finding] = (),
    budgets: Sequence[dict[str, Any]] = (),
) -> None:
    """Like pytest's own output: ``-q`` one line per kind, ``-v`` stacks and passing budgets."""
    terminal.write_sep("=", "asynccheck")
    verbosity = terminal.verbosity
    if verbosity < 0:
        lines = [*kind_lines(findings), *(f"note: {note}" for note in disabled)]
    else:
        lines = summary_lines([*findings, *rerun], disabled, verbose=verbosity > 0)
    if verbosity > 0:
        lines += budget_lines(budgets)
    for line in lines:
        terminal.write_line(line)
    totals = totals_line(findings, checked)
    if rerun:
        count = sum(f.count for f in rerun)
        totals += f"; {count} more in attempts that were rerun, not counted"
    terminal.write_line(totals)
