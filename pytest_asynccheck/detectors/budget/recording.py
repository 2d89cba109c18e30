"""What the outputs need from a test's run, recorded only when an output asks for it.

The budget detector records the loop of every budgeted test (``timeline.Recorder``); this
module keeps that recording for the outputs, and records the other async tests only when
``--asynccheck-trace`` or ``--asynccheck-suggest-budgets`` is given (under the virtual clock,
``--asynccheck-suggest-budgets`` also puts the clock on them, as a budget would). Without those
options, and without pytest-html writing a report (``--html``), neither the detector nor the
plugin object is registered.

What is recorded leaves the worker on the call phase's report, as builtins
(``asynccheck_timeline``, ``asynccheck_measure``), so pytest-xdist carries it to the controller,
which alone writes files (``reporting/trace.py``), the HTML extras (``reporting/html.py``), the
suggested budgets (``suggest.py``) and the GitHub job summary (``stepsummary.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import pytest

from ... import _clock
from ..._events import Detector
from ..._hookholder import HookHolder
from ..._options import Settings
from ..._session import TestCheck
from ..._wire import MEASURE_ATTR, TIMELINE_ATTR
from .timeline import Recorder
from .virtualtime import VirtualClock

#: Test data keys of the budget detector: when it measures a test, it records it too.
_BUDGET_KEYS = ("budget.recorder", "budget.clock", "budget.fallback")


class OutputsDetector(Detector):
    """Keeps the budget detector's recording, and records other async tests when asked."""

    name = "outputs"
    phases = ("call",)

    def __init__(self, settings: Settings, rootpath: str) -> None:
        self.settings = settings
        self.record_all = bool(settings.trace_dir or settings.suggest_budgets)
        self.rootpath = rootpath
        #: By node id, until the call phase's report takes it.
        self.pending: dict[str, dict[str, Any]] = {}

    def phase_started(self, test: TestCheck, phase: str) -> None:
        if self.settings.suggest_budgets and test.budget is None:
            test.data["outputs.start"] = _clock.perf_counter()

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if where != "test" or test.phase != "call":
            return
        test.data["outputs.async"] = True
        if not self.record_all or loop is None or any(k in test.data for k in _BUDGET_KEYS):
            return
        clock = None
        if self.settings.suggest_budgets and self.settings.clock == "virtual":
            clock = VirtualClock(loop)
            if not clock.controlled:
                clock = None
            test.data["outputs.clock"] = clock
        recorder = Recorder(loop, self.rootpath, test.findings, clock.time if clock else None)
        if recorder.active:
            test.data["outputs.recorder"] = recorder

    def task_exited(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if where != "test":
            return
        self._stop(test)

    def _stop(self, test: TestCheck) -> None:
        recorder = test.data.get("outputs.recorder")
        if recorder is not None:
            recorder.stop()  # before the clock: it wraps the clock's select
        clock = test.data.get("outputs.clock")
        if clock is not None:
            clock.close()

    def phase_finished(self, test: TestCheck, phase: str) -> None:
        self._stop(test)  # the test may have failed before its task exited
        recorder: Recorder | None = test.data.pop("timeline", None) or test.data.pop(
            "outputs.recorder", None
        )
        clock: VirtualClock | None = test.data.pop("outputs.clock", None)
        start = test.data.pop("outputs.start", None)
        found: dict[str, Any] = {}
        measure: dict[str, Any] | None = None
        if start is not None and test.data.pop("outputs.async", False):
            wall = _clock.perf_counter() - start
            measure = {
                "clock": "virtual" if clock is not None else "wall",
                "seconds": round(clock.elapsed if clock is not None else wall, 6),
                "sequential": [],
            }
            found["measure"] = measure
        if recorder is not None:
            sequential = recorder.sequential_awaits(recorder.end - recorder.start)
            snapshot = recorder.snapshot(sequential)
            found["timeline"] = snapshot
            if measure is not None:
                measure["sequential"] = snapshot["sequential"]
        if found:
            self.pending[test.nodeid] = found


class Outputs(HookHolder):
    """Puts what was recorded on the call phase's report."""

    name = "asynccheck-outputs"

    def __init__(self, detector: OutputsDetector) -> None:
        self.detector = detector

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when == "call" and self.detector.pending:
            found = self.detector.pending.pop(item.nodeid, None)
            if found is not None:
                if "timeline" in found:
                    setattr(report, TIMELINE_ATTR, found["timeline"])
                if "measure" in found:
                    setattr(report, MEASURE_ATTR, found["measure"])
        return report
