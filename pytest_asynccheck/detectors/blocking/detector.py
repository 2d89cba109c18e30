"""Kind ``blocking``: the detector that installs interception for a check session and runs
the watchdog, and tells both which thread runs the test's loop."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..._events import Detector
from ..._findings import Kind, Severity
from ..._options import Settings
from . import loopthread
from .intercept import Interceptor
from .watchdog import Watchdog

if TYPE_CHECKING:
    from ..._session import CheckSession, TestCheck


class BlockingDetector(Detector):
    """Kind ``blocking``: catalogued calls intercepted on the loop thread, plus the watchdog."""

    name = "blocking"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.interceptor: Interceptor | None = None
        self.watchdog: Watchdog | None = None

    def session_started(self, session: CheckSession) -> None:
        self.interceptor = Interceptor(session, self.settings.blocking_allow)
        self.interceptor.install()
        self.watchdog = watchdog = Watchdog(session, self.settings.stall_threshold)
        # The events go to their handlers themselves: a call less at each, for every test.
        detectors = session.detectors
        detectors.rebind(self, "test_started", self.interceptor.refresh)
        detectors.rebind(self, "task_entered", watchdog.step_entered)
        detectors.rebind(self, "task_exited", watchdog.step_exited)
        detectors.rebind(self, "test_finished", watchdog.step_exited)

    def session_finished(self, session: CheckSession) -> None:
        loopthread.clear_foreign_loop_thread()
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.interceptor is not None:
            self.interceptor.uninstall()

    def test_started(self, test: TestCheck) -> None:
        """Handed to the interceptor's ``refresh`` once the session has started."""
        if self.interceptor is not None:
            self.interceptor.refresh()

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        """Handed to the watchdog's ``step_entered`` once the session has started."""
        if self.watchdog is not None:
            self.watchdog.step_entered(test, loop, where)

    def task_exited(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        """Handed to the watchdog's ``step_exited`` once the session has started."""
        if self.watchdog is not None:
            self.watchdog.step_exited(test, loop, where)

    def test_finished(self, test: TestCheck) -> None:
        """Handed to the watchdog's ``step_exited`` (with the test alone: its end) once the
        session has started."""
        if self.watchdog is not None:
            self.watchdog.step_exited(test)


def blocking_detector(settings: Settings) -> Detector | None:
    """The registry's factory: ``None`` when ``--asynccheck-blocking=off``."""
    if settings.severity(Kind.BLOCKING) is Severity.OFF:
        return None
    return BlockingDetector(settings)
