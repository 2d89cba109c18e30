"""One value type for everything a detector reports, and the warnings it becomes at warn level."""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, final

import pytest


class Severity(str, enum.Enum):
    """What a finding of one kind does to the test it belongs to."""

    ERROR = "error"
    WARN = "warn"
    OFF = "off"
    #: A finding the baseline accepts: reported, never failing, never warning.
    ACCEPTED = "accepted"
    #: A finding of an attempt that pytest-rerunfailures ran again: listed, counting for nothing.
    RERUN = "rerun"

    def __str__(self) -> str:
        return self.value


#: The severities an option may give a kind; the others are given by the run itself.
SETTABLE_SEVERITIES: tuple[Severity, ...] = (Severity.ERROR, Severity.WARN, Severity.OFF)

#: The phases of a test, as pytest names them (``report.when``).
Phase = Literal["setup", "call", "teardown"]


class Kind(str, enum.Enum):
    """The kinds of finding; each has its own severity option ``--asynccheck-<kind>``."""

    UNAWAITED = "unawaited"
    LEAKED_TASK = "leaked-task"
    NEVER_RETRIEVED = "never-retrieved"
    BLOCKING = "blocking"
    MAX_WALL = "max-wall"
    # Errors of callbacks and off-thread loop calls (callbacks.py, threadsafety.py).
    CALLBACK_ERROR = "callback-error"
    THREAD_UNSAFE = "thread-unsafe"
    # Cancellations a task caught and did not pass on (cancellation.py; Python 3.11+).
    SWALLOWED_CANCEL = "swallowed-cancel"
    # Resources left open (unclosed.py).
    UNCLOSED = "unclosed"

    def __str__(self) -> str:
        return self.value


class AsynccheckWarning(pytest.PytestWarning):
    """Base class of every warning pytest-asynccheck issues: for a warn-level finding (a
    subclass per kind), a bad marker in warn mode, or a check it cannot make as asked.

    Each is shown under the package's name (``pytest_asynccheck.LeakedTaskWarning``), the
    name ``-W``/``filterwarnings`` take."""

    __module__ = "pytest_asynccheck"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.__module__ = "pytest_asynccheck"


class UnawaitedCoroutineWarning(AsynccheckWarning):
    """A coroutine was created and destroyed without being awaited."""


class LeakedTaskWarning(AsynccheckWarning):
    """A task created by the test was still pending when the test returned."""


class NeverRetrievedWarning(AsynccheckWarning):
    """A task's exception was never retrieved, or a pending task was destroyed."""


class BlockingCallWarning(AsynccheckWarning):
    """A call blocked the event-loop thread while the loop was running."""


class WallBudgetWarning(AsynccheckWarning):
    """A test exceeded its ``max_wall`` budget."""


class CallbackErrorWarning(AsynccheckWarning):
    """A callback run by the event loop raised, and the loop only logged the exception."""


class ThreadUnsafeCallWarning(AsynccheckWarning):
    """A loop method that is not thread-safe was called from another thread."""


class SwallowedCancelWarning(AsynccheckWarning):
    """A task was cancelled and returned normally, without ``uncancel()``."""


class UnclosedResourceWarning(AsynccheckWarning):
    """A connection, socket, file or event loop made by the test was never closed."""


WARNING_FOR_KIND: Mapping[Kind, type[AsynccheckWarning]] = {
    Kind.UNAWAITED: UnawaitedCoroutineWarning,
    Kind.LEAKED_TASK: LeakedTaskWarning,
    Kind.NEVER_RETRIEVED: NeverRetrievedWarning,
    Kind.BLOCKING: BlockingCallWarning,
    Kind.MAX_WALL: WallBudgetWarning,
    Kind.CALLBACK_ERROR: CallbackErrorWarning,
    Kind.THREAD_UNSAFE: ThreadUnsafeCallWarning,
    Kind.SWALLOWED_CANCEL: SwallowedCancelWarning,
    Kind.UNCLOSED: UnclosedResourceWarning,
}


#: A baseline entry: a finding's kind, file, function and call.
BaselineKey = tuple[str, str, str, str]


@final
@dataclass(frozen=True)
class Finding:
    """One problem found by a detector, in builtins only so it can cross process boundaries.

    ``file``/``line``/``function`` point at the user's code (the first frame outside the
    standard library, site-packages and this plugin); ``in_test_file`` says whether that is a
    test file (see :func:`is_test_file`) or the code under test. ``call`` names what was done there
    (``time.sleep``, ``coroutine 'fetch'``); ``fix`` says how to do it right. ``nodeid`` and
    ``phase`` are filled in when the finding is attached to a test.
    """

    kind: str
    message: str
    file: str = ""
    line: int = 0
    function: str = ""
    call: str = ""
    fix: str = ""
    stack: tuple[str, ...] = ()
    nodeid: str = ""
    phase: str = ""
    duration: float | None = None
    count: int = 1
    severity: str = Severity.ERROR.value
    in_test_file: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def location(self) -> str:
        if not self.file:
            return "<unknown>"
        return f"{self.file}:{self.line}" if self.line else self.file

    @property
    def key(self) -> tuple[str, str, int, str, str]:
        """Findings with the same key are one problem seen several times."""
        return (self.kind, self.file, self.line, self.function, self.call)

    @property
    def baseline_key(self) -> BaselineKey:
        """What a baseline entry records of the finding: not its line, so unrelated edits that
        move code keep the entry."""
        return (self.kind, self.file, self.function, self.call)

    # ``kind`` and ``severity`` are plain ``str`` fields, not the enums: pytest-xdist carries
    # findings through execnet, which serializes exact builtins only and refuses a ``str``
    # subclass such as a ``str`` enum member. These read them typed.
    @property
    def kind_enum(self) -> Kind:
        return Kind(self.kind)

    @property
    def severity_enum(self) -> Severity:
        return Severity(self.severity)

    def merged(self, other: Finding) -> Finding:
        """This finding seen once more: counts add up, the longest duration is kept, and with it
        the message, stack and details of the occurrence that took it (a message names its
        duration: the first one's could say 10 ms of a site that also held the loop for 100 ms)."""
        durations = [d for d in (self.duration, other.duration) if d is not None]
        longest = self
        if other.duration is not None and (self.duration is None or other.duration > self.duration):
            longest = other
        extra = dict(longest.extra)
        if durations:
            extra["total_duration"] = self.total_duration + other.total_duration
        return replace(
            self,
            message=longest.message,
            stack=longest.stack,
            count=self.count + other.count,
            duration=max(durations) if durations else None,
            extra=extra,
        )

    @property
    def total_duration(self) -> float:
        """The summed duration of every occurrence (``duration`` is the longest one)."""
        return float(self.extra.get("total_duration", self.duration or 0.0))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stack"] = list(self.stack)
        data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["stack"] = tuple(known.get("stack", ()))
        known["extra"] = dict(known.get("extra", {}))
        return cls(**known)

    def render(self) -> str:
        """The finding as the lines a developer reads in a failure or a warning."""
        head = f"[{self.kind}] {self.message}"
        if self.count > 1:
            head += f" ({self.count} times)"
        lines = [head]
        where = self.location
        if self.function:
            where += f" in {self.function}"
        lines.append(f"  at {where}")
        lines.extend(f"  {entry}" for entry in self.stack)
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


def is_test_file(file: str, nodeid: str, python_files: Sequence[str]) -> bool:
    """Whether ``file`` (relative to the rootdir, as findings and node ids give it) is the
    test's own file, a ``conftest.py``, or named like a test module (``python_files``)."""
    if not file:
        return False
    path = file.replace("\\", "/")
    if nodeid and path == nodeid.split("::", 1)[0]:
        return True
    name = path.rsplit("/", 1)[-1]
    return name == "conftest.py" or any(
        fnmatch.fnmatch(path if "/" in pattern else name, pattern) for pattern in python_files
    )


def merge_into(findings: list[Finding], finding: Finding) -> None:
    """Add ``finding`` to ``findings``, folding it into an earlier one with the same key."""
    for index, seen in enumerate(findings):
        if seen.key == finding.key:
            findings[index] = seen.merged(finding)
            return
    findings.append(finding)
