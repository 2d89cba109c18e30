"""pytest-asynccheck: fail async tests that leave coroutines un-awaited, block the event loop,
or exceed a concurrency budget."""

from __future__ import annotations

from ._events import Detector
from ._findings import (
    AsynccheckWarning,
    BlockingCallWarning,
    CallbackErrorWarning,
    Finding,
    Kind,
    LeakedTaskWarning,
    NeverRetrievedWarning,
    Severity,
    SwallowedCancelWarning,
    ThreadUnsafeCallWarning,
    UnawaitedCoroutineWarning,
    UnclosedResourceWarning,
    WallBudgetWarning,
)
from ._session import CheckSession, TestCheck, active
from ._version import __version__
from .detectors.blocking.loopthread import allow_blocking

__all__ = (
    "AsynccheckWarning",
    "BlockingCallWarning",
    "CallbackErrorWarning",
    "CheckSession",
    "Detector",
    "Finding",
    "Kind",
    "LeakedTaskWarning",
    "NeverRetrievedWarning",
    "Severity",
    "SwallowedCancelWarning",
    "TestCheck",
    "ThreadUnsafeCallWarning",
    "UnawaitedCoroutineWarning",
    "UnclosedResourceWarning",
    "WallBudgetWarning",
    "__version__",
    "active",
    "allow_blocking",
)
