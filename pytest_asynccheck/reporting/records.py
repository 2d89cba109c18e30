"""Each test's reports as the controller receives them (from pytest-xdist workers too), gathered
until its teardown for the outputs written per test (``outputs.py``, ``trace.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from .._wire import BUDGET_PROPERTY, MEASURE_ATTR, REPORT_ATTR, TIMELINE_ATTR


class TestRecord:
    """One test's reports as the controller saw them, for the outputs written after it."""

    __test__ = False

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        #: (phase, start epoch, duration, outcome) of each phase.
        self.phases: list[tuple[str, float, float, str]] = []
        self.timeline: dict[str, Any] | None = None
        self.measure: dict[str, Any] | None = None
        self.budget: dict[str, Any] | None = None
        self.findings: list[dict[str, Any]] = []

    @property
    def failed(self) -> bool:
        return any(outcome == "failed" for *_, outcome in self.phases)

    def add(self, report: pytest.TestReport) -> None:
        start = float(getattr(report, "start", 0.0) or 0.0)
        self.phases.append((report.when or "", start, float(report.duration), report.outcome))
        self.findings.extend(getattr(report, REPORT_ATTR, None) or ())
        timeline = getattr(report, TIMELINE_ATTR, None)
        if timeline is not None:
            self.timeline = timeline
        measure = getattr(report, MEASURE_ATTR, None)
        if measure is not None:
            self.measure = measure
        for name, value in report.user_properties:
            if name == BUDGET_PROPERTY and isinstance(value, dict):
                self.budget = value
