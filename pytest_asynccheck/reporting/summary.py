"""How findings reach people: the failure text, warnings, and the terminal summary.

- A phase failed by findings fails with their text, and its report's crash location
  (``longrepr.reprcrash``) is the first error finding's file and line, not the plugin's.
- The plugin's warnings (warn-level findings, a bad marker in warn mode, notes) are issued so
  that only a warning filter naming one of its classes turns them into errors: a blanket
  ``error`` filter shows them as warnings, as warn level must never fail a test.
- Findings and budgets are collected from the logged test reports (so from pytest-xdist
  workers too); a test rerun by pytest-rerunfailures counts by its last attempt.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from .._findings import WARNING_FOR_KIND, AsynccheckWarning, Finding, Kind, Severity, merge_into
from . import baseline, github
from . import json_report as jsonreport

if TYPE_CHECKING:
    from .._session import CheckSession

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
#: The severity shown in the summary for a finding of an attempt that was rerun.
RERUN = "rerun"
#: The outcome pytest-rerunfailures gives the report of an attempt it runs again.
RERUN_OUTCOMES: frozenset[str] = frozenset((RERUN,))


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
        warn_explicit(category(finding.render()), finding.file or "<asynccheck>", finding.line)


def warn_about_marker(item: pytest.Item, message: str) -> None:
    """A bad marker in warn mode: a warning at the test, which then runs without it."""
    warn_at_item(item, f"{message} (warn mode: the test runs without this marker)")


def warn_at_item(item: pytest.Item, message: str) -> None:
    """A warning of the plugin's own about ``item``, at its definition."""
    path, line, _ = item.location
    warn_explicit(AsynccheckWarning(message), path, (line or 0) + 1)


def warn_explicit(warning: AsynccheckWarning, filename: str, lineno: int) -> None:
    """Issue one of the plugin's warnings, which only a filter naming one of the plugin's
    warning classes may turn into an error.

    A blanket ``error`` filter (``-W error``, ``filterwarnings = error``, or one naming
    ``UserWarning`` or ``pytest.PytestWarning``) is there for the project's own warnings; it
    must not make a finding at warn level, which fails nothing, fail the test. Under such a
    filter the warning is shown as a plain warning instead."""
    category = type(warning)
    action, names_own_class = _first_matching_filter(category, str(warning), lineno)
    with warnings.catch_warnings():
        if action == "error" and not names_own_class:
            warnings.filterwarnings("always", category=category)
        warnings.warn_explicit(
            warning, category=category, filename=filename, lineno=lineno, module=WARNING_MODULE
        )


#: The module the plugin's warnings are issued from, as ``-W action:message:category:module``
#: sees it.
WARNING_MODULE = "pytest_asynccheck"


def _first_matching_filter(category: type[Warning], text: str, lineno: int) -> tuple[str, bool]:
    """The action of the first entry of ``warnings.filters`` that applies to a warning of
    ``category`` with ``text``, issued from ``WARNING_MODULE`` at ``lineno``, as
    ``warnings.warn_explicit`` chooses it, and whether that entry names one of the plugin's
    warning classes."""
    for action, message, wanted, module, line in warnings.filters:
        if (
            (message is None or message.match(text))
            and issubclass(category, wanted)
            and (module is None or module.match(WARNING_MODULE))
            and (line == 0 or line == lineno)
        ):
            names_own_class = isinstance(wanted, type) and issubclass(wanted, AsynccheckWarning)
            return action, names_own_class
    return "default", False  # no filter applies: ``warnings.defaultaction``


def crash_site(errors: Sequence[Finding], rootpath: str) -> tuple[str, int] | None:
    """Where a phase failed by ``errors`` crashed, for tools that point at the failure
    (``--tb=line``, IDEs, annotators): the first error's file, absolute, and line."""
    for finding in errors:
        if finding.file and finding.line:
            path = os.path.join(rootpath, finding.file)
            if os.path.isfile(path):
                return path, finding.line
    return None


def point_crash_at(report: pytest.TestReport, site: tuple[str, int]) -> None:
    """Make ``report``'s crash location ``site``; the failure text stays as it is. The last
    link of an exception chain carries the crash, as in pytest's own reports."""
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is None:
        return
    moved = dataclasses.replace(crash, path=site[0], lineno=site[1])
    longrepr.reprcrash = moved  # type: ignore[union-attr]
    chain = getattr(longrepr, "chain", None)
    if chain:
        reprtraceback, _, description = chain[-1]
        longrepr.chain = [*chain[:-1], (reprtraceback, moved, description)]  # type: ignore[union-attr]


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


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


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


class Summary:
    """Collects findings and budgets from test reports (which pytest-xdist carries to the
    controller), writes the ``asynccheck`` terminal section, the JSON report and, on GitHub
    Actions, workflow commands.

    A test run more than once (pytest-rerunfailures) counts by its last attempt, the one that
    decides its outcome: the findings and budget of an earlier attempt are set aside when a
    report of a later attempt of the same test arrives, and listed as ``rerun``."""

    def __init__(self, session: CheckSession) -> None:
        self.session = session
        self.findings: list[Finding] = []
        self.budgets: list[dict[str, Any]] = []
        #: Findings of attempts that were rerun; they count for nothing.
        self.rerun_findings: list[Finding] = []
        #: node id -> the attempt being reported, for each test that had an attempt rerun.
        self.attempts: dict[str, int] = {}
        #: Tests checked by the workers of a pytest-xdist run, as each worker finishes.
        self.checked_by_workers = 0
        path = session.settings.report_path
        self.writer = jsonreport.Writer(path) if path else None
        #: Under pytest-xdist only the controller reports; workers send their reports to it,
        #: and the findings that arrived after their test ended when they finish.
        self.on_worker = hasattr(session.config, "workerinput")
        self.baseline_written: int | None = None
        self.baseline_error: OSError | None = None
        #: How many tests were collected (the largest count a pytest-xdist worker collected),
        #: the node ids of those that ran to their teardown, and whether the run was cut short.
        self.collected = 0
        self.ran: set[str] = set()
        self.interrupted = False
        #: More top-level entries of the JSON report, each made when the report is written.
        self.report_extras: dict[str, Callable[[], Any]] = {}

    def _all(self) -> list[Finding]:
        return [*self.findings, *self.session.late]

    def _report(self, complete: bool) -> dict[str, Any]:
        data = jsonreport.build(
            self.session.settings,
            self._all(),
            self.budgets,
            self.checked,
            complete,
            self.collected,
            len(self.ran),
        )
        data.update((name, make()) for name, make in self.report_extras.items())
        return data

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = len(session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.collected = max(self.collected, len(ids))

    @property
    def checked(self) -> int:
        return self.session.async_tests_checked + self.checked_by_workers

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # First of all logreport hooks: the findings go on the report before pytest-xdist's
        # worker sends it. A report is logged right after it is made, or (pytest-rerunfailures)
        # after its attempt's three phases: either way before that test's next phase runs.
        if self.attempts or report.outcome in RERUN_OUTCOMES:
            self._follow_attempts(report)
        reported = self.session.reported
        if reported:  # most tests have no findings: then not even the report's node id is read
            key = (report.nodeid, report.when)
            found = reported.pop(key, None)
            if found is not None:
                setattr(report, REPORT_ATTR, found)
                site = self.session.crash_sites.pop(key, None)
                if site is not None and report.failed:
                    point_crash_at(report, site)
        if report.when == "teardown":
            self.ran.add(report.nodeid)
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

    def _follow_attempts(self, report: pytest.TestReport) -> None:
        """Set aside the findings and budget of a test's earlier attempts once a report of a
        later attempt arrives (each attempt's reports arrive together, in order)."""
        nodeid = report.nodeid
        attempt = getattr(report, "rerun", 0)
        known = self.attempts.get(nodeid)
        if known is None:
            if report.outcome in RERUN_OUTCOMES:
                self.attempts[nodeid] = attempt
            return
        if attempt <= known:
            return
        self.attempts[nodeid] = attempt
        self.rerun_findings.extend(
            dataclasses.replace(f, severity=RERUN) for f in self.findings if f.nodeid == nodeid
        )
        self.findings = [f for f in self.findings if f.nodeid != nodeid]
        self.budgets = [b for b in self.budgets if b["nodeid"] != nodeid]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.on_worker:
            output = getattr(session.config, "workeroutput", None)
            if output is not None:
                output[LATE_OUTPUT] = [f.to_dict() for f in self.session.late]
                output[CHECKED_OUTPUT] = self.session.async_tests_checked
            return
        if self.writer is not None:
            complete = (
                not self.interrupted
                and session.exitstatus != pytest.ExitCode.INTERRUPTED
                and len(self.ran) >= self.collected
            )
            self.writer.write(self._report, complete)
        settings = self.session.settings
        if settings.baseline_path and settings.update_baseline:
            try:
                self.baseline_written = baseline.write(settings.baseline_path, self._all())
            except OSError as exc:
                self.baseline_error = exc

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        # A crashed worker sends no output: its late findings and its count are lost, the
        # findings of its tests are not.
        output = getattr(node, "workeroutput", {})
        for data in output.get(LATE_OUTPUT, []):
            merge_into(self.session.late, Finding.from_dict(data))
        self.checked_by_workers += output.get(CHECKED_OUTPUT, 0)
        if error is not None:
            self.interrupted = True

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.on_worker:
            return
        findings = self._all()
        write_summary(
            terminalreporter,
            findings,
            self.session.detectors.disabled,
            self.checked,
            self.rerun_findings,
            self.budgets,
        )
        writer = self.writer
        if writer is not None and writer.written:
            terminalreporter.write_line(f"asynccheck: report written to {writer.path}")
        if writer is not None and writer.error is not None:
            terminalreporter.write_line(
                f"asynccheck: warning: could not write the report to {writer.path}: "
                f"{_reason(writer.error)}"
            )
        settings = self.session.settings
        if self.baseline_error is not None:
            terminalreporter.write_line(
                f"asynccheck: warning: could not write the baseline to "
                f"{settings.baseline_path}: {_reason(self.baseline_error)}"
            )
        elif self.baseline_written is not None:
            terminalreporter.write_line(
                f"asynccheck: baseline of {plural(self.baseline_written, 'entry', 'entries')} "
                f"written to {settings.baseline_path}"
            )
        elif settings.baseline_path:
            for kind, file, function, call in baseline.stale(self.session.baseline, findings):
                terminalreporter.write_line(
                    f"asynccheck: stale baseline entry (no longer found): {kind} {file} "
                    f"{function} {call}".rstrip()
                )
        if os.environ.get("GITHUB_ACTIONS") == "true":
            for line in github.workflow_commands(findings, self.session.config.rootpath):
                terminalreporter.write_line(line)
