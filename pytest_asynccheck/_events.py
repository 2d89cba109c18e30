"""The small instrumentation interface every detector implements.

Modelled on trio's ``Instrument``: a detector overrides only the events it needs, and only
overridden methods are ever called. A detector that raises is disabled and logged; it never
fails the user's test or the session.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import TYPE_CHECKING

from ._findings import Phase

if TYPE_CHECKING:
    from ._session import CheckSession, TestCheck

LOGGER = logging.getLogger("pytest_asynccheck")

PHASES: tuple[Phase, ...] = ("setup", "call", "teardown")
#: Events received once per phase: subscribed per phase, as most detectors want one phase.
PHASE_EVENTS = ("phase_started", "phase_finished")

EVENTS = (
    "session_started",
    "session_ending",
    "session_finished",
    "test_started",
    "phase_started",
    "phase_finished",
    "task_entered",
    "task_exited",
    "test_finished",
)
#: Events received at each step of a test's coroutines (``CheckSession.enter_task`` and
#: ``exit_task``).
TASK_EVENTS = ("task_entered", "task_exited")


class Detector:
    """Base class of detectors; every method is an optional no-op event.

    Order for one test: ``test_started``, then for each phase (``setup``, ``call``,
    ``teardown``) ``phase_started`` and ``phase_finished``; inside them, for each coroutine
    of the test that runs on an event loop (the test body, and each setup and teardown of its
    async fixtures, see fixtures.py), ``task_entered`` and ``task_exited``, called in that
    coroutine's own task on the running loop; finally ``test_finished``. Phase and test
    events run on the thread that runs pytest. ``loop`` is ``None`` under trio.
    """

    #: Shown in log messages and in the summary when the detector is disabled.
    name: str = ""
    #: The phases whose ``phase_started`` and ``phase_finished`` this detector receives.
    #: Typed ``str`` rather than ``Phase`` so that a detector declaring ``tuple[str, ...]``
    #: still type-checks.
    phases: tuple[str, ...] = PHASES
    #: Whether ``task_entered`` and ``task_exited`` are wanted for the test body's steps only,
    #: not for its async fixtures' (they are not called for those: two per fixture per test).
    test_steps_only: bool = False

    def session_started(self, session: CheckSession) -> None:
        """The check session begins (configure time, checks enabled)."""

    def session_ending(self, session: CheckSession) -> None:
        """The last test has run; findings reported now still reach the summary."""

    def session_finished(self, session: CheckSession) -> None:
        """The check session ends; undo every patch, stop every thread."""

    def test_started(self, test: TestCheck) -> None:
        """A test is about to be set up."""

    def phase_started(self, test: TestCheck, phase: Phase) -> None:
        """``setup``, ``call`` or ``teardown`` of ``test`` begins."""

    def phase_finished(self, test: TestCheck, phase: Phase) -> None:
        """That phase ended; findings added now still belong to it."""

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        """A coroutine of the test starts running in its task; ``where`` is ``"test"``
        or ``"fixture <name>"``."""

    def task_exited(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        """That coroutine finished (returned or raised), still in its task."""

    def test_finished(self, test: TestCheck) -> None:
        """The test's teardown is over; findings added now belong to the teardown."""


_METHOD = operator.itemgetter(1)
_DETECTOR = operator.itemgetter(0)


def detector_name(detector: Detector) -> str:
    return detector.name or type(detector).__name__


class Detectors:
    """The registry: one tuple of subscribers per event, so an event nobody overrides costs
    one empty loop, and emitting copies nothing (removal builds new tuples)."""

    def __init__(
        self, detectors: Iterable[Detector] = (), session: CheckSession | None = None
    ) -> None:
        self.session = session
        #: event -> ((detector, its bound method for the event), ...)
        self._subscribers: dict[str, tuple[tuple[Detector, Callable[..., None]], ...]] = {
            event: () for event in EVENTS
        }
        #: event -> the bound methods alone, in the same order: what ``emit`` loops over (an
        #: event per step of every test; unpacking pairs cost a tenth of the dispatch).
        self._methods: dict[str, tuple[Callable[..., None], ...]] = {event: () for event in EVENTS}
        #: The methods a step of the test body and a step of a fixture are dispatched to, on
        #: entering and on leaving: the session's step dispatch reads one attribute, not two
        #: dictionaries.
        self.test_entered: tuple[Callable[..., None], ...] = ()
        self.test_exited: tuple[Callable[..., None], ...] = ()
        self.fixture_entered: tuple[Callable[..., None], ...] = ()
        self.fixture_exited: tuple[Callable[..., None], ...] = ()
        #: event -> phase -> subscribers, for the two per-phase events.
        self.by_phase: dict[str, dict[str, tuple[tuple[Detector, Callable[..., None]], ...]]] = {
            event: {phase: () for phase in PHASES} for event in PHASE_EVENTS
        }
        self._all: list[Detector] = []
        self.disabled: list[str] = []
        for detector in detectors:
            self.add(detector)

    def __iter__(self) -> Iterator[Detector]:
        return iter(list(self._all))

    def add(self, detector: Detector) -> None:
        self._all.append(detector)
        for event in EVENTS:
            if getattr(type(detector), event) is not getattr(Detector, event):
                subscriber = ((detector, getattr(detector, event)),)
                self._set(event, self._subscribers[event] + subscriber)
                if event in PHASE_EVENTS:
                    for phase in detector.phases:
                        self.by_phase[event][phase] += subscriber

    def remove(self, detector: Detector) -> None:
        if detector in self._all:
            self._all.remove(detector)
        for event, subscribers in list(self._subscribers.items()):
            self._set(event, tuple(s for s in subscribers if s[0] is not detector))
        for by_phase in self.by_phase.values():
            for phase, subscribers in by_phase.items():
                by_phase[phase] = tuple(s for s in subscribers if s[0] is not detector)

    def subscribe(self, detector: Detector, event: str) -> None:
        """Have ``detector`` receive ``event`` (not a per-phase one) from now on, without
        registering it: for a detector that wants an event only while it has work for it."""
        subscribers = self._subscribers[event]
        # Asked in C: this runs whenever a test makes its first resource (``unclosed``).
        if all(map(operator.is_not, map(_DETECTOR, subscribers), repeat(detector))):
            self._set(event, (*subscribers, (detector, getattr(detector, event))))

    def rebind(self, detector: Detector, event: str, method: Callable[..., None]) -> None:
        """Dispatch ``event`` to ``method`` in place of ``detector``'s own method for it: a
        detector that only hands a step event on to a helper of its own has the helper called
        directly (a Python call less at every step). Still the detector's: an exception from
        ``method`` disables ``detector``."""
        self._set(
            event,
            tuple(
                (subscribed, method if subscribed is detector else bound)
                for subscribed, bound in self._subscribers[event]
            ),
        )

    def unsubscribe(self, detector: Detector, event: str) -> None:
        subscribers = self._subscribers[event]
        if subscribers and subscribers[-1][0] is detector:
            self._set(event, subscribers[:-1])  # the usual case: the last one subscribed
        else:
            self._set(event, tuple(s for s in subscribers if s[0] is not detector))

    def _set(
        self, event: str, subscribers: tuple[tuple[Detector, Callable[..., None]], ...]
    ) -> None:
        self._subscribers[event] = subscribers
        self._methods[event] = methods = tuple(map(_METHOD, subscribers))  # in C
        if event in TASK_EVENTS:
            for_fixtures = tuple(
                method for detector, method in subscribers if not detector.test_steps_only
            )
            if event == "task_entered":
                self.test_entered, self.fixture_entered = methods, for_fixtures
            else:
                self.test_exited, self.fixture_exited = methods, for_fixtures

    def emit(self, event: str, *args: object) -> None:
        for method in self._methods[event]:
            try:
                method(*args)
            except Exception as exc:
                self.disable_method(method, event, exc)

    def emit_phase(self, event: str, test: TestCheck, phase: Phase) -> None:
        """``phase_started`` or ``phase_finished``, to the detectors that want this phase."""
        for detector, method in self.by_phase[event][phase]:
            try:
                method(test, phase)
            except Exception as exc:
                self._disable(detector, event, exc)

    def disable_method(self, method: Callable[..., None], event: str, exc: BaseException) -> None:
        for detector, subscribed in self._subscribers[event]:
            if subscribed is method:
                self._disable(detector, event, exc)
                return

    def _disable(self, detector: Detector, event: str, exc: BaseException) -> None:
        name = detector_name(detector)
        note = (
            f"detector {name} raised {type(exc).__name__}: {exc} in {event}; it has been disabled"
        )
        self.disabled.append(note)
        LOGGER.error("asynccheck: %s", note, exc_info=exc)
        self.remove(detector)
        if event != "session_finished" and self.session is not None:
            # A disabled detector still gets the chance to undo its patches and stop its threads.
            try:
                detector.session_finished(self.session)
            except Exception as cleanup_exc:
                LOGGER.error("asynccheck: cleanup of %s failed: %s", name, cleanup_exc)


#: The code of the registry's dispatch (with the session's own, ``_session.DISPATCH_CODES``).
EVENT_CODES = frozenset((Detectors.emit.__code__, Detectors.emit_phase.__code__))
