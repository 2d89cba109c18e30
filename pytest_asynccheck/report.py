"""How findings reach people: the failure text, warnings, and the terminal summary."""

from __future__ import annotations

import os
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from . import baseline, github, jsonreport
from .findings import WARNING_FOR_KIND, Finding, Kind, Severity, merge_into

if TYPE_CHECKING:
    from .session import CheckSession

#: Findings go on each phase's report under this attribute, on reports that have some.
REPORT_ATTR = "asynccheck_findings"
#: The pytest-xdist ``workeroutput`` keys of a worker's late findings and of how many tests it
#: checked (a count once per worker, rather than a flag on every test's report).
LATE_OUTPUT = "asynccheck_late"
CHECKED_OUTPUT = "asynccheck_checked"
#: A ``user_properties`` entry per finding: ``kind severity file:line message``.
FINDING_PROPERTY = "asynccheck_finding"
#: The ``user_properties`` entry of a budgeted test: wall time, budget, factor, margin.
BUDGET_PROPERTY = "asynccheck_wall"


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


def failure_text(nodeid: str, phase: str, findings: Sequence[Finding], colour: bool = False) -> str:
    errors = sum(1 for f in findings if f.severity == Severity.ERROR.value)
    noun = "problem" if errors == 1 else "problems"
    head = f"asynccheck found {errors} {noun} in {nodeid} ({phase}):"
    text = "\n".join([head, *(f.render() for f in findings)])
    return colour_timelines(text) if colour else text


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


def summary_lines(
    findings: Sequence[Finding], disabled: Sequence[str], verbose: bool = False
) -> list[str]:
    """The ``asynccheck`` terminal section: findings grouped by kind and location; ``verbose``
    (``-v``) adds the stack of each place's first finding."""
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
        if verbose:
            lines.extend(f"          {entry}" for entry in group[0].stack)
        lines.extend(f"        {nodeid}" for nodeid in tests[:5])
        if len(tests) > 5:
            lines.append(f"        ... and {len(tests) - 5} more tests")
    for note in disabled:
        lines.append(f"note: {note}")
    return lines


def kind_lines(findings: Sequence[Finding]) -> list[str]:
    """``-q``: one line per kind and severity, with how many places and tests."""
    groups: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for finding in findings:
        groups[(finding.kind, finding.severity)].append(finding)
    return [
        f"{severity:5} {kind:15} x{sum(f.count for f in group)} at "
        f"{len({(f.file, f.line) for f in group})} place(s) in "
        f"{len({f.nodeid for f in group})} test(s)"
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
        return f"asynccheck: no findings in {checked} checked tests"
    return (
        f"asynccheck: {errors} error(s), {warned} warning(s) in {tests} of {checked} checked tests"
    )


def write_summary(
    terminal: pytest.TerminalReporter,
    findings: Sequence[Finding],
    disabled: Sequence[str],
    checked: int,
    budgets: Sequence[dict[str, Any]] = (),
) -> None:
    """Like pytest's own output: ``-q`` one line per kind, ``-v`` stacks and passing budgets."""
    terminal.write_sep("=", "asynccheck")
    verbosity = terminal.verbosity
    if verbosity < 0:
        lines = [*kind_lines(findings), *(f"note: {note}" for note in disabled)]
    else:
        lines = summary_lines(findings, disabled, verbose=verbosity > 0)
    if verbosity > 0:
        lines += budget_lines(budgets)
    for line in lines:
        terminal.write_line(line)
    terminal.write_line(totals_line(findings, checked))


class Summary:
    """Collects findings and budgets from test reports (which pytest-xdist carries to the
    controller), writes the ``asynccheck`` terminal section, the JSON report and, on GitHub
    Actions, workflow commands."""

    def __init__(self, session: CheckSession) -> None:
        self.session = session
        self.findings: list[Finding] = []
        self.budgets: list[dict[str, Any]] = []
        #: Tests checked by the workers of a pytest-xdist run, as each worker finishes.
        self.checked_by_workers = 0
        path = session.settings.report_path
        self.writer = jsonreport.Writer(path) if path else None
        #: Under pytest-xdist only the controller reports; workers send their reports to it,
        #: and the findings that arrived after their test ended when they finish.
        self.on_worker = hasattr(session.config, "workerinput")
        self.baseline_written: int | None = None
        #: More top-level entries of the JSON report, each made when the report is written.
        self.report_extras: dict[str, Callable[[], Any]] = {}

    def _all(self) -> list[Finding]:
        return [*self.findings, *self.session.late]

    def _report(self, complete: bool) -> dict[str, Any]:
        data = jsonreport.build(
            self.session.settings, self._all(), self.budgets, self.checked, complete
        )
        data.update((name, make()) for name, make in self.report_extras.items())
        return data

    @property
    def checked(self) -> int:
        return self.session.async_tests_checked + self.checked_by_workers

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # First of all logreport hooks: the findings go on the report before pytest-xdist's
        # worker sends it. A report is logged right after it is made, or (pytest-rerunfailures)
        # after its attempt's three phases: either way before that test's next phase runs.
        reported = self.session.reported
        if reported:  # most tests have no findings: then not even the report's node id is read
            found = reported.pop((report.nodeid, report.when), None)
            if found is not None:
                setattr(report, REPORT_ATTR, found)
        data = getattr(report, REPORT_ATTR, None)
        changed = bool(data)
        if report.when == "call" and report.user_properties:
            for name, value in report.user_properties:
                if name == BUDGET_PROPERTY and isinstance(value, dict):
                    self.budgets.append({"nodeid": report.nodeid, **value})
                    changed = True
        if not changed:
            return
        if data:
            self.findings.extend(Finding.from_dict(d) for d in data)
        if self.writer is not None and not self.on_worker:
            self.writer.maybe_write(self._report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.on_worker:
            output = getattr(session.config, "workeroutput", None)
            if output is not None:
                output[LATE_OUTPUT] = [f.to_dict() for f in self.session.late]
                output[CHECKED_OUTPUT] = self.session.async_tests_checked
            return
        if self.writer is not None:
            self.writer.write(self._report)
        settings = self.session.settings
        if settings.baseline_path and settings.update_baseline:
            self.baseline_written = baseline.write(settings.baseline_path, self._all())

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        # A crashed worker sends no output: its late findings and its count are lost, the
        # findings of its tests are not.
        output = getattr(node, "workeroutput", {})
        for data in output.get(LATE_OUTPUT, []):
            merge_into(self.session.late, Finding.from_dict(data))
        self.checked_by_workers += output.get(CHECKED_OUTPUT, 0)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.on_worker:
            return
        findings = self._all()
        write_summary(
            terminalreporter,
            findings,
            self.session.detectors.disabled,
            self.checked,
            self.budgets,
        )
        if self.writer is not None:
            terminalreporter.write_line(f"asynccheck: report written to {self.writer.path}")
        settings = self.session.settings
        if self.baseline_written is not None:
            terminalreporter.write_line(
                f"asynccheck: baseline of {self.baseline_written} entries written to "
                f"{settings.baseline_path}"
            )
        elif settings.baseline_path:
            for kind, file, function, call in baseline.stale(self.session.baseline, findings):
                terminalreporter.write_line(
                    f"asynccheck: stale baseline entry (no longer found): {kind} {file} "
                    f"{function} {call}".rstrip()
                )
        if os.environ.get("GITHUB_ACTIONS") == "true":
            for line in github.workflow_commands(findings):
                terminalreporter.write_line(line)
