"""How findings reach people: the failure text, warnings, and the terminal summary."""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import pytest

from .findings import WARNING_FOR_KIND, Finding, Kind, Severity

if TYPE_CHECKING:
    from .session import CheckSession

REPORT_ATTR = "asynccheck_findings"


def failure_text(nodeid: str, phase: str, findings: Sequence[Finding]) -> str:
    errors = sum(1 for f in findings if f.severity == Severity.ERROR.value)
    noun = "problem" if errors == 1 else "problems"
    head = f"asynccheck found {errors} {noun} in {nodeid} ({phase}):"
    return "\n".join([head, *(f.render() for f in findings)])


def emit_warnings(findings: Iterable[Finding]) -> None:
    """Warn-level findings become warnings of the plugin's own classes, at the user's line."""
    for finding in findings:
        category = WARNING_FOR_KIND[Kind(finding.kind)]
        warnings.warn_explicit(
            category(finding.render()),
            category=category,
            filename=finding.file or "<asynccheck>",
            lineno=finding.line or 0,
            module="pytest_asynccheck",
        )


def summary_lines(findings: Sequence[Finding], disabled: Sequence[str]) -> list[str]:
    """The ``asynccheck`` terminal section: findings grouped by kind and location."""
    groups: dict[tuple[str, str, str, str], list[Finding]] = defaultdict(list)
    for finding in findings:
        where = finding.location + (f" in {finding.function}" if finding.function else "")
        groups[(finding.kind, where, finding.call, finding.severity)].append(finding)
    lines: list[str] = []
    for (kind, where, call, severity), group in sorted(groups.items()):
        count = sum(f.count for f in group)
        tests = sorted({f.nodeid or "<no test>" for f in group})
        what = f" {call}" if call else ""
        lines.append(f"{severity:5} {kind:15} {where}{what}  x{count}")
        lines.extend(f"        {nodeid}" for nodeid in tests[:5])
        if len(tests) > 5:
            lines.append(f"        ... and {len(tests) - 5} more tests")
    for note in disabled:
        lines.append(f"note: {note}")
    return lines


def totals_line(findings: Sequence[Finding], checked: int) -> str:
    errors = sum(f.count for f in findings if f.severity == Severity.ERROR.value)
    warned = sum(f.count for f in findings if f.severity == Severity.WARN.value)
    tests = len({f.nodeid for f in findings})
    if not findings:
        return f"asynccheck: no findings in {checked} checked tests"
    return (
        f"asynccheck: {errors} error(s), {warned} warning(s) in {tests} of {checked} checked tests"
    )


def write_summary(
    terminal: pytest.TerminalReporter,
    findings: Sequence[Finding],
    disabled: Sequence[str],
    checked: int,
) -> None:
    terminal.write_sep("=", "asynccheck")
    for line in summary_lines(findings, disabled):
        terminal.write_line(line)
    terminal.write_line(totals_line(findings, checked))


class Summary:
    """Collects findings from test reports (which pytest-xdist carries to the controller) and
    writes the ``asynccheck`` terminal section."""

    def __init__(self, session: CheckSession) -> None:
        self.session = session
        self.findings: list[Finding] = []
        self.checked = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTR, None)
        if data is None:
            return
        if report.when == "setup":
            self.checked += 1
        self.findings.extend(Finding.from_dict(d) for d in data)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if hasattr(terminalreporter.config, "workerinput"):
            return
        write_summary(
            terminalreporter,
            [*self.findings, *self.session.late],
            self.session.detectors.disabled,
            self.checked,
        )
