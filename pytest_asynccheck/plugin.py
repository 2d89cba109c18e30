"""pytest hooks of pytest-asynccheck; each delegates to the module that owns the concern."""

from __future__ import annotations

import inspect
from collections.abc import Generator

import pytest

from . import hookspecs, report
from .budget import parse_max_wall
from .config import Settings, add_options, load_settings
from .findings import Severity
from .registry import builtin_detectors
from .runner import (
    WIDER_SCOPE_FIXTURE,
    LoopRunner,
    call_target,
    checked_coroutine_function,
    is_claimed,
    run_test,
    sync_fixture,
)
from .session import CheckSession, MarkerError, TestCheck, parse_allow_marker

SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey[CheckSession]()
#: The check of each test between its setup and its teardown. Not in the item's own stash:
#: a key added there grows the item's dictionary for the rest of the session.
CHECKS_KEY = pytest.StashKey[dict[pytest.Item, TestCheck]]()
RUNNERS_KEY = pytest.StashKey[dict[pytest.Item, LoopRunner]]()

MARKERS = (
    "asynccheck(allow=[...]): let this test produce the listed finding kinds "
    "(e.g. 'leaked-task') or calls (e.g. 'time.sleep') without failing.",
    "max_wall(seconds): fail the test when its wall time exceeds this budget "
    "(checked under --asynccheck; e.g. 2.1, '500ms', '2.1s').",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Make ``pytest_asynccheck_detectors`` known to conftest files and plugins."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--asynccheck`` and its ``--asynccheck-*`` options with their ini twins."""
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Validate the settings once; when checks are on, start the check session."""
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    settings = load_settings(config)
    config.stash[SETTINGS_KEY] = settings
    if not settings.enabled:
        return
    detectors = builtin_detectors(settings)
    for extra in config.hook.pytest_asynccheck_detectors(config=config, settings=settings):
        detectors.extend(extra or ())
    session = CheckSession(config, settings, detectors)
    config.stash[SESSION_KEY] = session
    config.add_cleanup(session.finish)
    session.start()
    config.pluginmanager.register(report.Summary(session), "asynccheck-summary")


def pytest_report_header(config: pytest.Config) -> str | None:
    """One line with the effective settings, only when checks are on."""
    settings = config.stash.get(SETTINGS_KEY, None)
    return settings.header() if settings is not None and settings.enabled else None


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Let detectors make their last sweep; late error-level findings fail the run."""
    check_session = _session(session.config)
    if check_session is None:
        return
    check_session.detectors.emit("session_ending", check_session)
    if session.exitstatus == pytest.ExitCode.OK and any(
        f.severity == Severity.ERROR.value for f in check_session.late
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _session(config: pytest.Config) -> CheckSession | None:
    return config.stash.get(SESSION_KEY, None)


def _conclude(check: TestCheck, phase: str, failed: bool) -> None:
    findings = check.findings_in(phase)
    if not findings:
        return
    errors = [f for f in findings if f.severity == Severity.ERROR.value]
    colour = check.item.config.get_terminal_writer().hasmarkup
    text = report.failure_text(check.nodeid, phase, findings, colour)
    if failed:
        # The phase already failed for its own reason: keep that, and show ours beside it.
        check.item.add_report_section(phase, "asynccheck", text)
        return
    if errors:
        pytest.fail(text, pytrace=False)
    report.emit_warnings(f for f in findings if f.severity == Severity.WARN.value)


def _phase(session: CheckSession, check: TestCheck, phase: str) -> Generator[None, object, object]:
    session.begin_phase(check, phase)
    try:
        result = yield
    except BaseException:
        _finish_phase(session, check, phase)
        _conclude(check, phase, failed=True)
        raise
    _finish_phase(session, check, phase)
    _conclude(check, phase, failed=False)
    return result


def _finish_phase(session: CheckSession, check: TestCheck, phase: str) -> None:
    if phase == "teardown":
        runner = _runners(check.item.config).pop(check.item, None)
        if runner is not None:
            runner.close()
    session.end_phase(check, phase)
    if phase == "teardown":
        session.end_test(check)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    """Open the test's check (validating its markers) around its setup."""
    session = _session(item.config)
    if session is None:
        return (yield)
    try:
        allow = parse_allow_marker(item)
        budget, budget_clock = parse_max_wall(item) or (None, None)
    except MarkerError as exc:
        # Fail after the inner setup hooks ran: their teardown twins expect them to have run.
        yield
        pytest.fail(str(exc), pytrace=False)
    check = session.begin_test(item, allow, budget, budget_clock)
    _checks(item.config)[item] = check
    return (yield from _phase(session, check, "setup"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Run the test body inside its check; a coroutine test announces itself from its task."""
    session = _session(item.config)
    check = _checks(item.config).get(item)
    if session is None or check is None:
        return (yield)
    target = call_target(item)
    if target is None:
        return (yield from _phase(session, check, "call"))
    owner, attribute = target
    original = getattr(owner, attribute)
    check.is_async = True
    setattr(owner, attribute, checked_coroutine_function(check, original, "test"))
    try:
        return (yield from _phase(session, check, "call"))
    finally:
        setattr(owner, attribute, original)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    """Close the test's check after its teardown, with the standalone loop if it had one."""
    session = _session(item.config)
    check = _checks(item.config).get(item)
    if session is None or check is None:
        return (yield)
    return (yield from _phase(session, check, "teardown"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Carry the phase's findings on its report, as builtins, so pytest-xdist moves them; name
    them in ``user_properties`` too, which ``--junitxml`` writes as properties."""
    check = _checks(item.config).get(item) if _session(item.config) is not None else None
    findings = check.findings_in(call.when) if check is not None else []
    for finding in findings:
        item.user_properties.append((report.FINDING_PROPERTY, report.one_line(finding)))
    test_report = yield
    if check is not None:
        # Reports live until the session ends: a clean test's carry one flag, on one report.
        if call.when == "setup":
            setattr(test_report, report.CHECKED_ATTR, True)
        if findings:
            setattr(test_report, report.REPORT_ATTR, [f.to_dict() for f in findings])
        if call.when == "teardown":
            _checks(item.config).pop(item, None)
    return test_report


def _checks(config: pytest.Config) -> dict[pytest.Item, TestCheck]:
    return config.stash.setdefault(CHECKS_KEY, {})


def _runners(config: pytest.Config) -> dict[pytest.Item, LoopRunner]:
    return config.stash.setdefault(RUNNERS_KEY, {})


def _loop_runner(item: pytest.Item) -> LoopRunner:
    runners = _runners(item.config)
    runner = runners.get(item)
    if runner is None:
        runner = runners[item] = LoopRunner()
    return runner


@pytest.hookimpl
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """The standalone runner: async tests no other plugin claimed, on a fresh loop."""
    if _session(pyfuncitem.config) is None:
        return None
    if not inspect.iscoroutinefunction(pyfuncitem.obj) or is_claimed(pyfuncitem):
        return None
    run_test(pyfuncitem, _loop_runner(pyfuncitem))
    return True


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """Standalone async fixtures: run on the requesting test's loop, function scope only."""
    func = fixturedef.func
    is_async = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
    if not is_async or _session(request.config) is None:
        return (yield)
    item = request.node if fixturedef.scope == "function" else getattr(request, "_pyfuncitem", None)
    if not isinstance(item, pytest.Item) or is_claimed(item):
        return (yield)
    if fixturedef.scope != "function":
        pytest.fail(
            WIDER_SCOPE_FIXTURE.format(name=fixturedef.argname, scope=fixturedef.scope),
            pytrace=False,
        )
    check = _checks(item.config).get(item)
    if check is None:
        return (yield)
    fixturedef.func = sync_fixture(func, check, _loop_runner(item), fixturedef.argname)  # type: ignore[misc]
    try:
        return (yield)
    finally:
        fixturedef.func = func  # type: ignore[misc]
