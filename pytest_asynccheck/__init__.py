"""pytest-asynccheck: fail async tests that leave coroutines un-awaited, block the event loop,
or exceed a concurrency budget."""

from __future__ import annotations

from .blocking import allow_blocking
from .detector import Detector
from .findings import (
    AsynccheckWarning,
    BlockingCallWarning,
    Finding,
    Kind,
    LeakedTaskWarning,
    NeverRetrievedWarning,
    Severity,
    SwallowedCancelWarning,
    UnawaitedCoroutineWarning,
    UnclosedResourceWarning,
    WallBudgetWarning,
)
from .session import CheckSession, TestCheck, active

__version__ = "0.1.0"

__all__ = (
    "AsynccheckWarning",
    "BlockingCallWarning",
    "CheckSession",
    "Detector",
    "Finding",
    "Kind",
    "LeakedTaskWarning",
    "NeverRetrievedWarning",
    "Severity",
    "SwallowedCancelWarning",
    "TestCheck",
    "UnawaitedCoroutineWarning",
    "UnclosedResourceWarning",
    "WallBudgetWarning",
    "__version__",
    "active",
    "allow_blocking",
)
