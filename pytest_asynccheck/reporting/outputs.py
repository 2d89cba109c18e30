"""The outputs beyond the terminal and the JSON report: the trace files, the suggested budgets,
the GitHub job summary and the pytest-html extras. ``register`` adds what the options and the
environment ask for, and nothing else: pytest-html is imported only when its plugin is loaded.

Under pytest-xdist the workers record (``recording.py``) and the controller writes, from the
reports it receives; a worker never writes a file.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from .._hookholder import HookHolder
from .._session import CheckSession
from ..detectors.budget.recording import Outputs, OutputsDetector
from . import stepsummary, suggest, trace
from .records import TestRecord
from .summary import Summary


class Controller(HookHolder):
    """Follows each test's reports and writes what the options ask for once it is done."""

    name = "asynccheck-outputs-controller"

    def __init__(self, session: CheckSession, summary: Summary) -> None:
        self.session = session
        self.summary = summary
        self.settings = session.settings
        self.records: dict[str, TestRecord] = {}
        self.traces: list[str] = []
        self.suggestions: list[dict[str, Any]] = []
        if self.settings.suggest_budgets:
            summary.report_extras["suggested_budgets"] = lambda: self.suggestions

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self.records.get(report.nodeid)
        if record is None:
            record = self.records[report.nodeid] = TestRecord(report.nodeid)
        record.add(report)
        if report.when == "teardown":
            del self.records[report.nodeid]
            self._done(record)

    def _done(self, record: TestRecord) -> None:
        settings = self.settings
        if settings.trace_dir and (record.failed or record.budget is not None):
            self.traces.append(str(trace.write(settings.trace_dir, record)))
        measure = record.measure
        call_passed = any(p == "call" and o == "passed" for p, _, _, o in record.phases)
        if settings.suggest_budgets and measure is not None and call_passed and not record.budget:
            self.suggestions.append(
                suggest.suggestion(record.nodeid, measure, settings.wall_factor)
            )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        summary = self.summary
        stepsummary.append(
            summary._all(),
            summary.budgets,
            summary.checked,
            bool(self.settings.baseline_path and not self.settings.update_baseline),
        )

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.settings.suggest_budgets:
            terminalreporter.write_sep("-", "asynccheck: suggested budgets")
            for line in suggest.lines(self.suggestions, self.settings.wall_factor):
                terminalreporter.write_line(line)
        if self.traces:
            terminalreporter.write_line(
                f"asynccheck: {len(self.traces)} trace file(s) written to {self.settings.trace_dir}"
            )


def register(config: pytest.Config, session: CheckSession, summary: Summary) -> None:
    """Register the outputs the options, the environment and the loaded plugins ask for."""
    settings = session.settings
    html = config.pluginmanager.hasplugin("html") and bool(config.getoption("htmlpath", None))
    records = bool(settings.trace_dir or settings.suggest_budgets or html)
    if records:
        detector = OutputsDetector(settings, session.rootpath)
        session.detectors.add(detector)
        config.pluginmanager.register(Outputs(detector), Outputs.name)
    if hasattr(config, "workerinput") or not (records or os.environ.get(stepsummary.ENV)):
        return  # the controller writes
    config.pluginmanager.register(Controller(session, summary), Controller.name)
    if html:
        from .html import HtmlOutputs

        config.pluginmanager.register(HtmlOutputs(session, summary), HtmlOutputs.name)
