"""Settings of the interpreter that code under test could change to hide a problem from the
checks, put back after each test.

``sys.setswitchinterval``: the watchdog is a thread; with a switch interval of seconds, a loop
thread busy in Python code keeps the GIL that long and the watchdog cannot see the stall while
it lasts. A test that leaves the interval changed has it restored when it ends, with a warning
naming the test, so the tests after it are checked as usual. Within the test the value it set
holds (the watchdog may then miss a stall in that test).
"""

from __future__ import annotations

import sys

from .._events import Detector
from .._findings import Kind, Severity
from .._options import Settings
from .._session import TestCheck
from .._warnings import warn_at_item

SWITCH_INTERVAL_CHANGED = (
    "sys.setswitchinterval({value:g}) was left in place by the test (it was {before:g}); "
    "asynccheck put it back, as the watchdog thread needs its turns to see a stalled loop"
)


class SwitchIntervalGuard(Detector):
    name = "switch-interval"

    def __init__(self) -> None:
        #: The interval when the session began, and as each test leaves it (not read again at
        #: each test's start: a change made between two tests, by a hook, is put back after
        #: the next test, as if that test had made it).
        self._before = sys.getswitchinterval()

    def test_finished(self, test: TestCheck) -> None:
        value = sys.getswitchinterval()
        if value != self._before:
            sys.setswitchinterval(self._before)
            warn_at_item(
                test.item, SWITCH_INTERVAL_CHANGED.format(value=value, before=self._before)
            )


def switch_interval_guard(settings: Settings) -> Detector | None:
    """Only the watchdog needs its turns: off with the blocking checks."""
    if settings.severity(Kind.BLOCKING) is Severity.OFF:
        return None
    return SwitchIntervalGuard()
