"""The check session: the per-run state detectors attach to, and each test's findings."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import gc
import inspect
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from ._events import EVENT_CODES, Detector, Detectors
from ._findings import BaselineKey, Finding, Phase, Severity, is_test_file, merge_into
from ._frames import relpath
from ._gc import CollectorPauses
from ._options import Settings
from ._wire import BUDGET_PROPERTY, FINDING_PROPERTY

if TYPE_CHECKING:
    from ._standalone import LoopRunner

#: The ``user_properties`` this plugin writes, each belonging to one attempt of its test.
OWN_PROPERTIES = frozenset((FINDING_PROPERTY, BUDGET_PROPERTY))

_active: CheckSession | None = None

#: Said of a finding placed at its test's or fixture's definition (``TestCheck.add``).
NO_LINE_OF_YOURS = (
    "no line of your code made or runs this (the event loop or a library did): shown at the "
    "definition of the test or fixture it was found in"
)


def active() -> CheckSession | None:
    """The running check session, or ``None`` when checks are off."""
    return _active


class FixtureRun:
    """One instance of an async fixture: its name (and the ``where`` its steps announce),
    and the tasks it made in its setup and teardown (judged when the fixture is torn down)."""

    __slots__ = ("made", "name", "where")

    def __init__(self, name: str) -> None:
        self.name = name
        self.where = f"fixture {name}"
        self.made: list[weakref.ref[asyncio.Task[Any]]] = []


class FixtureStep(NamedTuple):
    """An async fixture's setup or teardown, running in the current context (made at every
    step, by ``fixture_step``)."""

    run: FixtureRun
    phase: str


#: ``FixtureStep(*pair)`` made in C: a named tuple's own ``__new__`` is a Python call.
fixture_step: Callable[[tuple[FixtureRun, str]], FixtureStep] = functools.partial(
    tuple.__new__, FixtureStep
)


#: The async fixture step running in this context (its task, and tasks it starts), if any:
#: findings made here name it.
FIXTURE: contextvars.ContextVar[FixtureStep | None] = contextvars.ContextVar(
    "asynccheck_fixture", default=None
)


def in_fixture(finding: Finding, name: str, phase: str) -> Finding:
    """``finding`` named as made in fixture ``name``'s ``phase``."""
    if "fixture" in finding.extra:
        return finding
    return dataclasses.replace(
        finding,
        message=f"{finding.message}, in fixture {name!r} ({phase})",
        extra={**finding.extra, "fixture": name, "fixture_phase": phase},
    )


def isolated_asyncio_case(function: object) -> Any | None:
    """The ``unittest.IsolatedAsyncioTestCase`` that ``function`` (a test's ``obj``) is a bound
    method of, if it is one: unittest looks the method up on the case itself."""
    unittest = sys.modules.get("unittest")
    case = getattr(function, "__self__", None)
    if unittest is not None and isinstance(case, unittest.IsolatedAsyncioTestCase):
        return case
    return None


def collect_young_once(test: TestCheck) -> None:
    """Collect the two young garbage generations once per test body, for whichever detector
    asks first: coroutines and tasks in reference cycles made during the test die inside it
    (the middle generation too, as a collection during the test may have moved them there)."""
    if not test.data.get("collected-young"):
        test.data["collected-young"] = True
        gc.collect(1)


class TestCheck:
    """One test's check: its phase, its loop while it runs, and what was found."""

    __test__ = False  # not a test class, whatever pytest's python_classes says
    # One is made per test, and its fields are read at every step: no instance dictionary.
    __slots__ = (
        "allow",
        "budget",
        "budget_clock",
        "closed",
        "data",
        "findings",
        "is_async",
        "item",
        "loop",
        "loop_thread",
        "nodeid",
        "phase",
        "session",
    )

    def __init__(
        self,
        session: CheckSession,
        item: pytest.Item,
        allow: frozenset[str],
        budget: float | None = None,
        budget_clock: str | None = None,
    ) -> None:
        self.session = session
        self.item = item
        self.nodeid = item.nodeid
        self.allow = allow
        #: The ``max_wall`` budget in seconds, before the wall factor, and its marker's clock.
        self.budget = budget
        self.budget_clock = budget_clock
        self.phase: Phase = "setup"
        self.findings: list[Finding] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: int | None = None
        self.is_async = False
        self.closed = False
        #: Detector-private data, keyed by detector name.
        self.data: dict[str, Any] = {}

    def allows(self, finding: Finding) -> bool:
        return finding.kind in self.allow or (bool(finding.call) and finding.call in self.allow)

    def add(self, finding: Finding, phase: Phase | None = None) -> Finding | None:
        """Attach ``finding`` to this test; returns it as stored, or ``None`` if dropped."""
        if self.allows(finding):
            return None
        step = FIXTURE.get()
        if step is not None:
            finding = in_fixture(finding, step.run.name, step.phase)
        if not finding.file:
            finding = self._placed_at_definition(finding)
        stored = self.session.stamped(finding, self.nodeid, phase or self.phase)
        if stored is None:
            return None
        merge_into(self.findings, stored)
        return stored

    def _placed_at_definition(self, finding: Finding) -> Finding:
        """``finding``, which no line of the user's code explains (a task the loop or a library
        made, running a library's coroutine), placed where the user can act on it: at the
        definition of the fixture it was found in, else of the test."""
        site = self._fixture_site(finding.extra.get("fixture"))
        if site is None:
            path, line, _ = self.item.location
            name = getattr(self.item, "originalname", None) or self.item.name
            site = (path, (line or 0) + 1, name)
        return dataclasses.replace(
            finding,
            file=site[0],
            line=site[1],
            function=site[2],
            stack=(*finding.stack, NO_LINE_OF_YOURS),
        )

    def _fixture_site(self, name: object) -> tuple[str, int, str] | None:
        info = getattr(self.item, "_fixtureinfo", None)
        if not isinstance(name, str) or info is None:
            return None
        definitions = info.name2fixturedefs.get(name)
        if not definitions:
            return None
        code = getattr(inspect.unwrap(definitions[-1].func), "__code__", None)
        if code is None:
            return None
        return relpath(code.co_filename, self.session.rootpath), code.co_firstlineno, code.co_name

    def findings_in(self, phase: Phase) -> list[Finding]:
        return [f for f in self.findings if f.phase == phase]


class CheckSession:
    """Everything the checks share over one pytest run."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        detectors: Iterable[Detector],
        baseline: frozenset[BaselineKey] = frozenset(),
    ) -> None:
        self.config = config
        self.settings = settings
        self.rootpath = str(config.rootpath)
        self.detectors = Detectors(detectors, session=self)
        self._started = self.detectors.by_phase["phase_started"]
        self._finished = self.detectors.by_phase["phase_finished"]
        self.current: TestCheck | None = None
        #: Each test's check between its setup and its teardown, by node id, and its standalone
        #: loop. Not in the item's own stash: a key added there grows the item's dictionary for
        #: the rest of the session.
        self.open: dict[str, TestCheck] = {}
        self.runners: dict[pytest.Item, LoopRunner] = {}
        #: (node id, phase) -> the phase's findings, until its report is logged.
        self.reported: dict[tuple[str, str], list[dict[str, Any]]] = {}
        #: (node id, phase) -> the absolute file and line of the finding that failed the phase,
        #: until its report is logged (where it becomes the report's crash location).
        self.crash_sites: dict[tuple[str, str], tuple[str, int]] = {}
        #: Tests whose check was opened in this process, and of them the async ones (the count
        #: the summaries give as "checked tests").
        self.tests_checked = 0
        self.async_tests_checked = 0
        #: Whether each collector node or one of its parents carries a marker of the plugin.
        self.marked_parents: dict[pytest.Collector, bool] = {}
        #: id of each collected test -> whether it or a parent carries one (read at collection's
        #: end; a test not collected then is asked at its setup).
        self.marked_items: dict[int, bool] = {}
        #: Findings that arrived after their test had finished, or outside any test.
        self.late: list[Finding] = []
        self.main_thread = threading.get_ident()
        self.collector = CollectorPauses()
        #: The keys of the findings the baseline accepts (read by ``reporting.baseline``).
        self.baseline = baseline
        #: The node ids of the tests whose check ended (after their teardown).
        self.ended: set[str] = set()
        #: Called (by ``_runtest``) when a phase first has findings or a budget to report, if
        #: the summary does not follow every report already; cleared once called.
        self.on_report_data: Callable[[], None] | None = None

    def severity_of(self, finding: Finding) -> str | None:
        """The finding's severity, ``accepted`` when the baseline has it, ``None`` when off."""
        severity = self.settings.severity(finding.kind)
        if severity is Severity.OFF:
            return None
        if self.settings.update_baseline or finding.baseline_key in self.baseline:
            return Severity.ACCEPTED.value  # recording a baseline accepts what it records
        return str(severity)

    def stamped(self, finding: Finding, nodeid: str, phase: str) -> Finding | None:
        """``finding`` as it is kept: its test, phase and severity; ``None`` when off."""
        severity = self.severity_of(finding)
        if severity is None:
            return None
        in_test_file = is_test_file(finding.file, nodeid, self.config.getini("python_files"))
        return Finding.from_dict(
            {
                **finding.to_dict(),
                "nodeid": nodeid,
                "phase": phase,
                "severity": severity,
                "in_test_file": in_test_file,
            }
        )

    def start(self) -> None:
        global _active
        _active = self
        gc.callbacks.append(self.collector)
        self.detectors.emit("session_started", self)

    def finish(self) -> None:
        global _active
        try:
            self.detectors.emit("session_finished", self)
        finally:
            _active = None
            if self.collector in gc.callbacks:
                gc.callbacks.remove(self.collector)

    def report(
        self, finding: Finding, nodeid: str | None = None, phase: Phase | None = None
    ) -> None:
        """Route a finding to its test: ``nodeid`` if given, else the test running now."""
        target = self.open.get(nodeid) if nodeid else self.current
        if target is not None:
            target.add(finding, phase)
            return
        late = self.stamped(finding, nodeid or "", phase or finding.phase)
        if late is not None:
            merge_into(self.late, late)

    # -- the test life cycle, driven by _runtest.py ----------------------------------------

    def begin_test(
        self,
        item: pytest.Item,
        allow: frozenset[str],
        budget: float | None = None,
        budget_clock: str | None = None,
    ) -> TestCheck:
        check = TestCheck(self, item, allow, budget, budget_clock)
        if item.user_properties:
            # A rerun (pytest-rerunfailures) runs the same item again: the findings and budget
            # of an earlier attempt are that attempt's, already on its reports.
            item.user_properties[:] = [
                entry for entry in item.user_properties if entry[0] not in OWN_PROPERTIES
            ]
        if getattr(item, "execution_count", 1) <= 1:  # pytest-rerunfailures counts attempts
            self.tests_checked += 1
        self.open[check.nodeid] = check
        self.current = check
        self.detectors.emit("test_started", check)
        return check

    def begin_phase(self, check: TestCheck, phase: Phase) -> None:
        check.phase = phase
        self.current = check
        if self._started[phase]:  # most detectors want the call phase only
            self.detectors.emit_phase("phase_started", check, phase)

    def end_phase(self, check: TestCheck, phase: Phase) -> None:
        if self._finished[phase]:
            self.detectors.emit_phase("phase_finished", check, phase)

    def end_test(self, check: TestCheck) -> None:
        if check.is_async and getattr(check.item, "execution_count", 1) <= 1:
            self.async_tests_checked += 1  # a rerun attempt is the same test again
        self.detectors.emit("test_finished", check)
        check.closed = True
        self.ended.add(check.nodeid)
        self.open.pop(check.nodeid, None)
        if self.current is check:
            self.current = None

    # The two below hand a step to the detectors that want it (``Detectors.test_entered`` and
    # the like), without a call of the registry's: they run at every step of every test, and a
    # Python call costs about 430 instructions (benchmarks/README.md, "Calls per step").

    def enter_task(self, check: TestCheck, where: str) -> None:
        loop = _running_loop()  # None under trio, or another library without an asyncio loop
        detectors = self.detectors
        if where == "test":
            check.loop = loop
            check.loop_thread = threading.get_ident()
            methods = detectors.test_entered
        else:
            methods = detectors.fixture_entered
        for method in methods:
            try:
                method(check, loop, where)
            except Exception as exc:
                detectors.disable_method(method, "task_entered", exc)

    def exit_task(self, check: TestCheck, where: str) -> None:
        loop = _running_loop()
        detectors = self.detectors
        for method in detectors.test_exited if where == "test" else detectors.fixture_exited:
            try:
                method(check, loop, where)
            except Exception as exc:
                detectors.disable_method(method, "task_exited", exc)


#: The running loop or ``None``, without raising: asked at every step of every test.
_running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio._get_running_loop


#: The code of every frame that hands an event to a detector: what runs below one is the
#: plugin's work (or an extension detector's), never the test's. The blocking detector exempts
#: calls made there.
DISPATCH_CODES = frozenset(
    (*EVENT_CODES, CheckSession.enter_task.__code__, CheckSession.exit_task.__code__)
)
