"""The summary plugin: collects findings and budgets from the logged test reports (so from
pytest-xdist workers too) and writes the ``asynccheck`` terminal section, the JSON report, the
baseline and, on GitHub Actions, workflow commands.

- A phase failed by findings (with their text, ``text.failure_text``) has its report's crash
  location (``longrepr.reprcrash``) at the first error finding's file and line, not the
  plugin's.
- A test rerun by pytest-rerunfailures counts by its last attempt.

The reports are followed (``ReportFollower``, a ``pytest_runtest_logreport`` implementation)
from the start only where every report may carry what the summary needs: under pytest-xdist
(the workers' findings travel on them) and with pytest-rerunfailures (an attempt is set aside
when a later one reports). Elsewhere it is registered at the first phase that has findings or a
budget, before that phase's report is made, and the tests that ran are counted by the session:
a hook implementation called for every report costs more per test than the rest of the summary
(benchmarks/README.md, "Cheaper steps").
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from .._findings import Finding, Severity, merge_into
from .._hookholder import HookHolder
from .._wire import BUDGET_PROPERTY, CHECKED_OUTPUT, LATE_OUTPUT, REPORT_ATTR
from . import baseline, github
from . import json_report as jsonreport
from .text import plural, write_summary

if TYPE_CHECKING:
    from .._session import CheckSession

#: The outcome pytest-rerunfailures gives the report of an attempt it runs again.
RERUN_OUTCOMES: frozenset[str] = frozenset(("rerun",))


def follows_every_report(config: pytest.Config) -> bool:
    """Whether the summary needs every report from the start: under pytest-xdist (a worker's
    findings travel on its reports; the controller has nothing else), and with
    pytest-rerunfailures (which attempt counts is known from the reports)."""
    manager = config.pluginmanager
    if hasattr(config, "workerinput") or manager.hasplugin("rerunfailures"):
        return True
    if not (manager.hasplugin("xdist") or manager.hasplugin("xdist.plugin")):
        return False
    numprocesses = config.getoption("numprocesses", None)
    dist = config.getoption("dist", "no")
    return bool(numprocesses or config.getoption("tx", None) or (dist and dist != "no"))


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


class Summary(HookHolder):
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
        #: the node ids of those that ran to their teardown (by their reports when every
        #: report is followed, else the session's), and whether the run was cut short.
        self.collected = 0
        self.reported_ran: set[str] = set()
        self.interrupted = False
        #: More top-level entries of the JSON report, each made when the report is written.
        self.report_extras: dict[str, Callable[[], Any]] = {}
        self.follows_all = follows_every_report(session.config)
        self._follower: ReportFollower | None = None
        if self.follows_all:
            self.follow()
        else:
            session.on_report_data = self.follow

    @property
    def ran(self) -> set[str]:
        return self.reported_ran if self.follows_all else self.session.ended

    def follow(self) -> None:
        """Follow the test reports from now on (once)."""
        if self._follower is None:
            self._follower = ReportFollower(self)
            self.session.config.pluginmanager.register(self._follower, ReportFollower.name)

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


class ReportFollower(HookHolder):
    """The summary's reader of test reports: puts a phase's findings on its report (before
    pytest-xdist's worker sends it) and its crash location at the first error's line, and
    takes findings, budgets and attempts from the reports (the workers' too)."""

    name = "asynccheck-report-follower"

    def __init__(self, summary: Summary) -> None:
        self.summary = summary

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # First of all logreport hooks: the findings go on the report before pytest-xdist's
        # worker sends it. A report is logged right after it is made, or (pytest-rerunfailures)
        # after its attempt's three phases: either way before that test's next phase runs.
        summary = self.summary
        if summary.attempts or report.outcome in RERUN_OUTCOMES:
            self._follow_attempts(report)
        reported = summary.session.reported
        if reported:  # most tests have no findings: then not even the report's node id is read
            key = (report.nodeid, report.when)
            found = reported.pop(key, None)
            if found is not None:
                setattr(report, REPORT_ATTR, found)
                site = summary.session.crash_sites.pop(key, None)
                if site is not None and report.failed:
                    point_crash_at(report, site)
        when = report.when
        if when == "teardown" and summary.follows_all:
            summary.reported_ran.add(report.nodeid)
        data = getattr(report, REPORT_ATTR, None)
        changed = bool(data)
        if when == "call" and report.user_properties:
            for name, value in report.user_properties:
                if name == BUDGET_PROPERTY and isinstance(value, dict):
                    summary.budgets.append({"nodeid": report.nodeid, **value})
                    changed = True
        if not changed:
            return
        if data:
            summary.findings.extend(Finding.from_dict(d) for d in data)
        if summary.writer is not None and not summary.on_worker:
            summary.writer.maybe_write(summary._report)

    def _follow_attempts(self, report: pytest.TestReport) -> None:
        """Set aside the findings and budget of a test's earlier attempts once a report of a
        later attempt arrives (each attempt's reports arrive together, in order)."""
        nodeid = report.nodeid
        attempt = getattr(report, "rerun", 0)
        summary = self.summary
        known = summary.attempts.get(nodeid)
        if known is None:
            if report.outcome in RERUN_OUTCOMES:
                summary.attempts[nodeid] = attempt
            return
        if attempt <= known:
            return
        summary.attempts[nodeid] = attempt
        summary.rerun_findings.extend(
            dataclasses.replace(f, severity=Severity.RERUN.value)
            for f in summary.findings
            if f.nodeid == nodeid
        )
        summary.findings = [f for f in summary.findings if f.nodeid != nodeid]
        summary.budgets = [b for b in summary.budgets if b["nodeid"] != nodeid]


def _reason(error: OSError) -> str:
    return error.strerror or str(error)
