"""The check of each test: the ``Checks`` plugin object, registered by
``plugin.pytest_configure`` only when the checks are on.

The test's markers are read at its setup: a bad one fails the setup (in warn mode it warns, and
the test runs checked without it). Each phase (setup, call, teardown) is opened on the session
before it runs and closed after it; the phase's findings then fail it (error level), warn, or,
when it already failed for its own reason, ride beside that failure as a report section. A
coroutine test's function is swapped for the checked wrapper for its call only. After
collection, what no collected test needs is dropped (the standalone runner, the budget
detector); at the session's end, late error-level findings fail the run.

Limits: whether a parent node carries one of the plugin's markers is read once per node and
kept for the session. This module sits beside the hooks (it renders the failure text with the
reporting), above the session and the detectors."""

from __future__ import annotations

import operator
from collections.abc import Generator

import pytest

from ._findings import Finding, Phase, Severity
from ._fixtures import FinishFixture
from ._hookholder import HookHolder
from ._markers import MAX_WALL_MARKER as MAX_WALL
from ._markers import MarkerError, parse_allow_marker, parse_max_wall
from ._session import CheckSession, TestCheck
from ._standalone import (
    Standalone,
    call_target,
    checked_coroutine_function,
    standalone_needed,
)
from ._warnings import emit_warnings, warn_about_marker
from ._wire import FINDING_PROPERTY
from .detectors.budget import hang
from .detectors.budget.detector import BudgetDetector
from .detectors.tasks import TaskDetector
from .reporting.summary import crash_site
from .reporting.text import failure_text, one_line


def fixture_finisher(session: CheckSession) -> FinishFixture:
    """What judges an async fixture's tasks when it is torn down: the task detector, if on."""
    for detector in session.detectors:
        if isinstance(detector, TaskDetector):
            return detector.fixture_finished
    return lambda run, in_task: []


def _conclude(check: TestCheck, phase: Phase, findings: list[Finding], failed: bool) -> None:
    errors = [f for f in findings if f.severity == Severity.ERROR.value]
    colour = check.item.config.get_terminal_writer().hasmarkup
    text = failure_text(check.nodeid, phase, findings, colour)
    if failed:
        # The phase already failed for its own reason: keep that, and show ours beside it.
        check.item.add_report_section(phase, "asynccheck", text)
        return
    if errors:
        session = check.session
        site = crash_site(errors, session.rootpath)
        if site is not None:
            session.crash_sites[(check.nodeid, phase)] = site
        pytest.fail(text, pytrace=False)
    emit_warnings(f for f in findings if f.severity == Severity.WARN.value)


def _phase(
    session: CheckSession, check: TestCheck, phase: Phase
) -> Generator[None, object, object]:
    """One phase inside the check: begun, then ended (and the test, after its teardown), its
    findings failing it, or riding beside its own failure. The ending is written once, in the
    ``finally``, rather than in a function of its own: it runs three times a test."""
    __tracebackhide__ = True
    session.begin_phase(check, phase)
    failed = True
    try:
        result = yield
        failed = False
        return result
    except BaseException as exc:
        hang.stopped(check, exc)
        raise
    finally:
        item = check.item
        if phase == "teardown":
            # Hashing an item is a Python call: not done when no test runs standalone.
            runner = session.runners.pop(item, None) if session.runners else None
            if runner is not None:
                runner.close()
        session.end_phase(check, phase)
        if phase == "teardown":
            session.end_test(check)
        if check.findings:
            _follow_reports(session)
            findings = check.findings_in(phase)
            if findings:
                # ``--junitxml`` writes the item's properties; the findings themselves ride on
                # the phase's report (see ``Summary``), as builtins, so pytest-xdist moves them.
                for finding in findings:
                    item.user_properties.append((FINDING_PROPERTY, one_line(finding)))
                session.reported[(check.nodeid, phase)] = [f.to_dict() for f in findings]
                # Failing the phase (``pytest.fail``) replaces its return.
                _conclude(check, phase, findings, failed=failed)
        elif phase == "call" and check.budget is not None:
            _follow_reports(session)


def _follow_reports(session: CheckSession) -> None:
    """Before the phase's report is made: the summary follows the reports from now on, if it
    does not already."""
    follow = session.on_report_data
    if follow is not None:
        session.on_report_data = None
        follow()


class Checks(HookHolder):
    """The check of each test, around its setup, call and teardown, and the session's end."""

    name = "asynccheck-checks"

    def __init__(self, session: CheckSession) -> None:
        self.session = session

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        """Open the test's check (validating its markers) around its setup."""
        __tracebackhide__ = True
        session = self.session
        bad_marker = None
        try:
            marked = session.marked_items.get(id(item))
            if marked is None:
                marked = _has_own_markers(session, item)
            allow = parse_allow_marker(item) if marked else frozenset()
            budget, budget_clock = (parse_max_wall(item) if marked else None) or (None, None)
        except MarkerError as exc:
            bad_marker = str(exc)
            allow, budget, budget_clock = frozenset(), None, None
        if bad_marker is not None and session.settings.mode != "warn":
            # Fail after the inner setup hooks ran: their teardown twins expect them to have
            # run. Outside the except clause, so the message is not shown twice, chained to
            # itself.
            yield
            pytest.fail(bad_marker, pytrace=False)
        # Warn mode fails nothing: the test runs checked, without the bad marker.
        check = session.begin_test(item, allow, budget, budget_clock)
        result = yield from _phase(session, check, "setup")
        if bad_marker is not None:
            # After the setup, like a failure: a filter naming the plugin's warnings may
            # turn this one into an error.
            warn_about_marker(item, bad_marker)
        return result

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        """Run the test body inside its check; a coroutine test announces itself from its
        task."""
        __tracebackhide__ = True
        session = self.session
        # The item's open check: the current one, as a rule (a node id is built anew at every
        # read). Written out here and in the teardown: a call less in each (benchmarks/README.md,
        # "Steps handed on directly").
        check = session.current
        if check is None or check.item is not item:
            check = session.open.get(item.nodeid)
        if check is None:
            return (yield)
        target = call_target(item)
        if target is None:
            return (yield from _phase(session, check, "call"))
        owner, attribute, original, shadows = target
        check.is_async = True
        # Made per test, not kept per function: kept, the wrappers and their closures would
        # be traversed by every collection of the oldest generation for the rest of the run.
        setattr(owner, attribute, checked_coroutine_function(check, original, "test"))
        try:
            return (yield from _phase(session, check, "call"))
        finally:
            if shadows:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, object, object]:
        """Close the test's check after its teardown, with the standalone loop if it had one."""
        __tracebackhide__ = True
        session = self.session
        check = session.current  # the item's open check, as in the call phase
        if check is None or check.item is not item:
            check = session.open.get(item.nodeid)
        if check is None:
            return (yield)
        return (yield from _phase(session, check, "teardown"))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Drop what no collected test needs: the standalone runner, and the budget
        detector when no test has a ``max_wall`` marker (both act on every test otherwise)."""
        check_session = self.session
        if not standalone_needed(session.items, session.config):
            plugin = session.config.pluginmanager.get_plugin(Standalone.name)
            if plugin is not None:
                session.config.pluginmanager.unregister(plugin)
        # Read once here for every test, for this check and for each test's setup.
        marked = check_session.marked_items
        for item in session.items:
            marked[id(item)] = _has_own_markers(check_session, item)
        budgeted = (item for item in session.items if marked[id(item)])
        if not any(item.get_closest_marker(MAX_WALL) is not None for item in budgeted):
            for detector in check_session.detectors:
                if isinstance(detector, BudgetDetector):
                    check_session.detectors.remove(detector)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Let detectors make their last sweep; late error-level findings fail the run."""
        check_session = self.session
        check_session.detectors.emit("session_ending", check_session)
        if session.exitstatus == pytest.ExitCode.OK and any(
            f.severity == Severity.ERROR.value for f in check_session.late
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


_OWN_MARKERS = frozenset(("asynccheck", "max_wall"))


def _has_own_markers(session: CheckSession, item: pytest.Item) -> bool:
    """Whether the item or a parent carries one of this plugin's markers: most tests carry
    none, and this is cheaper than two ``iter_markers`` searches. The parents' answer is
    kept, per parent, for the rest of the session."""
    if _carries_own_marker(item):
        return True
    parent = item.parent
    if parent is None:
        return False
    known = session.marked_parents.get(parent)
    if known is None:
        known = session.marked_parents[parent] = _marked(parent)
    return known


def _marked(node: pytest.Item | pytest.Collector | None) -> bool:
    while node is not None:
        if _carries_own_marker(node):
            return True
        node = node.parent
    return False


_mark_name = operator.attrgetter("name")


def _carries_own_marker(node: pytest.Item | pytest.Collector) -> bool:
    return not _OWN_MARKERS.isdisjoint(map(_mark_name, node.own_markers))
