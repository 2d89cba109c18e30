"""The built-in detectors, in the order they see each event."""

from __future__ import annotations

from collections.abc import Callable

from .._events import Detector
from .._options import Settings
from .blocking.detector import blocking_detector
from .budget.detector import budget_detector
from .callbacks import callback_detector
from .cancellation import cancel_detector
from .guards import switch_interval_guard
from .tasks import task_detector
from .threadsafety import thread_detector
from .unawaited import unawaited_detector
from .unclosed import unclosed_detector

DetectorFactory = Callable[[Settings], "Detector | None"]

#: Each factory returns its detector, or ``None`` when its kind is switched off.
BUILTIN: tuple[DetectorFactory, ...] = (
    blocking_detector,
    unawaited_detector,
    cancel_detector,
    task_detector,
    callback_detector,
    thread_detector,
    budget_detector,
    switch_interval_guard,
    # After blocking: its open() goes on top of blocking's, and comes off first (session_ending).
    unclosed_detector,
)


def builtin_detectors(settings: Settings) -> list[Detector]:
    detectors = [factory(settings) for factory in BUILTIN]
    return [d for d in detectors if d is not None]
