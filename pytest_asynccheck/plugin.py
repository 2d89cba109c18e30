"""pytest hooks of pytest-asynccheck; each delegates to the module that owns the concern.

This module's own hooks only add the options and markers, validate the settings and state them
in the header. Everything that acts on tests lives in plugin objects registered only when the
checks are on: ``_runtest.Checks`` (each test's phases), ``_standalone.Standalone`` (the
runner of unclaimed async tests), ``_fixtures.FixtureChecks``, ``reporting.summary.Summary``,
the outputs, and on pytest before 9 ``_tracebacks.TracebackTrim`` (the plugin's frames out of a
failing exception group's traceback). Without ``--asynccheck`` no hook of the plugin is on any
test's call path, so tracebacks, warning locations and stacks are the same as without the plugin
installed."""

from __future__ import annotations

import pytest

from . import hookspecs
from ._fixtures import FixtureChecks
from ._options import Settings, add_options, load_settings
from ._runtest import Checks, fixture_finisher
from ._session import CheckSession
from ._standalone import Standalone
from ._tracebacks import FILTERS_GROUPS, TracebackTrim
from .detectors import builtin_detectors
from .detectors.budget import hang, stoptrees
from .reporting import baseline, outputs
from .reporting.summary import Summary

SETTINGS_KEY = pytest.StashKey[Settings]()


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
    accepted = baseline.accepted(settings)  # a file that is not a baseline stops the run here
    detectors = builtin_detectors(settings)
    for extra in config.hook.pytest_asynccheck_detectors(config=config, settings=settings):
        detectors.extend(extra or ())
    session = CheckSession(config, settings, detectors, accepted)
    config.add_cleanup(session.finish)
    session.start()
    config.pluginmanager.register(Checks(session), Checks.name)
    summary = Summary(session)
    config.pluginmanager.register(summary, "asynccheck-summary")
    outputs.register(config, session, summary)
    config.pluginmanager.register(Standalone(session), Standalone.name)
    if not FILTERS_GROUPS:
        config.pluginmanager.register(TracebackTrim(), TracebackTrim.name)
    config.pluginmanager.register(hang.InterruptSummary(), hang.InterruptSummary.name)
    config.pluginmanager.register(stoptrees.TimeoutTrees(session), stoptrees.TimeoutTrees.name)
    config.pluginmanager.register(
        FixtureChecks(session, fixture_finisher(session)), FixtureChecks.name
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    """One line with the effective settings, only when checks are on."""
    settings = config.stash.get(SETTINGS_KEY, None)
    return settings.header() if settings is not None and settings.enabled else None
