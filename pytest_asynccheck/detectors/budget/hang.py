"""Hung tests: a test with a ``max_wall`` budget still running at budget x wall factor x hang
factor is cancelled, and fails with the await tree of its tasks; when pytest-timeout's signal
method or Ctrl-C stops an async test, the same tree is shown beside what they report.

The guard is a timer on the test's own loop, armed when the test body starts, in the clock
the budget uses (the loop's: virtual when the virtual clock is on). At the deadline it captures
the await tree, then cancels the test's task. The test's wrapper (``runner``) recognises that
cancellation, takes it back (``Task.uncancel``), cancels the tasks the test started and waits
for them for at most ``CLEANUP`` seconds, and returns: the test's teardown runs, the budget
detector reports the hang, and the run goes on with the next test on a loop with nothing of
the test left running. A cleanup that hangs in turn is cancelled again every ``CLEANUP``
seconds.

Limits: a timer cannot fire while the loop is blocked (a CPU loop, a blocking call): the
watchdog reports such stalls, and only pytest-timeout can stop them. A test that swallows
every cancellation cannot be stopped from inside the loop: after ``STUBBORN`` cancellations the
terminal is told so, with the tree of that moment (not under pytest-xdist, whose workers'
output is not shown), as no report will ever be made of it.

Under trio (anyio's trio backend, pytest-trio) the test body runs in a cancel scope of the
guard's, cancelled at the deadline (wall time: trio has no virtual clock here) from a timer
thread through the run's token, after the tree was read from trio's task tree. The trees of
pytest-timeout and Ctrl-C are asyncio's only.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import Any

import pytest

from ..._findings import Finding, Kind
from ..._frames import is_user_file, relpath
from ..._hookholder import HookHolder
from ..._session import TestCheck
from ..blocking.loopthread import allow_blocking
from . import awaittree, waits

#: ``TestCheck.data`` keys: the armed guard, and a tree captured as an exception passed.
GUARD = "hang.guard"
TREE = "hang.tree"
#: ``TestCheck.data`` key: set when a signal that stops the test (pytest-timeout's, Ctrl-C) has
#: reached a trio test body (stoptrees.py). trio may then raise the stop in one of its own tasks
#: and fail the test with the ``Cancelled`` its nursery got instead.
SIGNALLED = "hang.signalled"
#: ``TestCheck.data`` key: (loop, thread id) of an async fixture that ran before the body.
FIXTURE_LOOP = "hang.fixture-loop"
#: Seconds a cancelled test's cleanup may take before it is cancelled again.
CLEANUP = 0.5
#: Cancellations of the test's own task after which it is said, on the terminal, to take every
#: one (a cleanup that merely takes a few ends before): the run would otherwise hang silently.
STUBBORN = 7

REPORT_SECTION = "asynccheck await tree"


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


class Guard:
    """The deadline of one test body, and the tree captured when it passed."""

    def __init__(self, check: TestCheck, seconds: float, rootdir: str) -> None:
        self.check = check
        self.seconds = seconds
        self.rootdir = rootdir
        self.tree: list[str] | None = None
        #: The deepest line of the user's code the test's task waited on: (file, line, function).
        self.where: tuple[str, int, str] | None = None
        self.unfinished: list[str] = []

    @property
    def fired(self) -> bool:
        return self.tree is not None

    def disarm(self) -> None:
        raise NotImplementedError

    def _locate(self, steps: list[waits.Step]) -> None:
        user = [(f, line) for f, line in steps if is_user_file(f.f_code.co_filename)]
        if user:
            frame, line = user[-1]
            self.where = (frame.f_code.co_filename, line, frame.f_code.co_name)

    def finding(self, budget_text: str, clock: str) -> Finding:
        item = self.check.item
        path, line, name = item.location
        file, line_number, function = path, (line or 0) + 1, getattr(item, "originalname", name)
        if self.where is not None:
            filename, line_number, function = self.where
            file = relpath(filename, self.rootdir or None)
        stack = list(self.tree or ())
        if self.unfinished:
            stack.append(
                f"still pending {_fmt(CLEANUP)} after they were cancelled: "
                + ", ".join(self.unfinished)
            )
        return Finding(
            kind=Kind.MAX_WALL.value,
            message=(
                f"hung: still running after {_fmt(self.seconds)} of {clock} time (max_wall "
                f"budget of {budget_text}, x {self.check.session.settings.hang_factor:g} "
                "hang factor); cancelled. Await tree, the test's task first:"
            ),
            file=file,
            line=line_number,
            function=function,
            call="max_wall",
            fix=(
                "make sure every await above can complete (set the event, feed the queue, "
                "take locks in one order), or bound the wait with a timeout (asyncio.timeout(), "
                "trio.fail_after())"
            ),
            stack=tuple(stack),
            duration=self.seconds,
            extra={"hung": True, "budget": self.check.budget},
        )


class HangGuard(Guard):
    """A timer on the test's asyncio loop; firing, it cancels the test's task."""

    def __init__(
        self, check: TestCheck, loop: asyncio.AbstractEventLoop, seconds: float, rootdir: str
    ) -> None:
        super().__init__(check, seconds, rootdir)
        self.loop = loop
        self.task = asyncio.current_task(loop)
        #: Tasks that were pending before the test body: not the test's.
        self.before = frozenset(asyncio.all_tasks(loop))
        self.attempts = 0
        self._handle: asyncio.TimerHandle | None = loop.call_later(seconds, self._fire)

    def tasks(self) -> list[asyncio.Task[Any]]:
        """The test's pending tasks: its own and those started since it began."""
        return [t for t in asyncio.all_tasks(self.loop) if t is self.task or t not in self.before]

    def _fire(self) -> None:
        task = self.task
        if task is None or task.done():
            return
        if self.tree is None:
            with allow_blocking():  # reading the source of the lines shown is not the test's
                self.tree = awaittree.capture(self.tasks(), task, self.rootdir)
            self._locate(waits.coroutine_steps(task.get_coro()))
        self.attempts += 1
        if self.attempts == STUBBORN:
            self._say_unstoppable(task)
        task.cancel()
        self._handle = self.loop.call_later(CLEANUP, self._fire)

    def _say_unstoppable(self, task: asyncio.Task[Any]) -> None:
        """Tell the terminal, while the test still runs, that it takes every cancellation: no
        report can be made of a test that never ends, and only pytest-timeout, a signal or the
        CI system's own limit can stop it."""
        with allow_blocking():
            tree = awaittree.capture(self.tasks(), task, self.rootdir)
        cancelled = self.attempts - 1
        lines = [
            f"asynccheck: {self.check.nodeid} still runs {_fmt(cancelled * CLEANUP)} after "
            f"its max_wall deadline of {_fmt(self.seconds)} cancelled it, cancelled again "
            f"{cancelled} times since: code that swallows CancelledError keeps it running, "
            "and only pytest-timeout or a signal can stop it. Await tree now:",
            *tree,
        ]
        config = self.check.item.config
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            print("\n".join(lines), file=sys.__stderr__, flush=True)
            return
        quiet = capture.global_and_fixture_disabled() if capture is not None else None
        with quiet or contextlib.nullcontext():
            reporter.ensure_newline()
            for line in lines:
                reporter.write_line(line)
            reporter.flush()

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class TrioGuard(Guard):
    """A cancel scope around a trio test body, cancelled by a timer thread through the run's
    token. trio cancels everything below it, the test's nurseries included, and keeps every
    later checkpoint inside it cancelled: no cleanup can hang on an unshielded wait."""

    def __init__(self, check: TestCheck, seconds: float, rootdir: str) -> None:
        import trio

        super().__init__(check, seconds, rootdir)
        self.task = trio.lowlevel.current_task()
        self.token = trio.lowlevel.current_trio_token()
        self.scope = trio.CancelScope()
        self._timer = threading.Timer(seconds, self._from_timer)
        self._timer.daemon = True
        self._timer.start()

    def _from_timer(self) -> None:
        with contextlib.suppress(Exception):  # the run ended meanwhile
            self.token.run_sync_soon(self._fire)

    def _fire(self) -> None:
        if self.tree is not None or self.scope.cancel_called:
            return
        with allow_blocking():
            self.tree = awaittree.trio_tree(self.task, self.rootdir)
        self._locate(list(self.task.iter_await_frames()))
        self.scope.cancel()

    def disarm(self) -> None:
        self._timer.cancel()


def arm_trio(check: TestCheck, seconds: float, rootdir: str) -> None:
    """Start the guard of a trio test body, when trio runs it."""
    trio = sys.modules.get("trio")
    if trio is None:
        return
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return  # another library without an asyncio loop
    check.data[GUARD] = TrioGuard(check, seconds, rootdir)


def trio_scope(check: TestCheck) -> Any:
    """The cancel scope the test's wrapper runs a guarded trio test body in, if any."""
    guard = check.data.get(GUARD)
    return guard.scope if isinstance(guard, TrioGuard) else None


def arm(check: TestCheck, loop: asyncio.AbstractEventLoop, seconds: float, rootdir: str) -> None:
    """Start the guard of the test body now running in the current task of ``loop``."""
    check.data[GUARD] = HangGuard(check, loop, seconds, rootdir)


def disarm(check: TestCheck, drop: bool = False) -> Guard | None:
    guard: Guard | None = check.data.pop(GUARD, None) if drop else check.data.get(GUARD)
    if guard is not None:
        guard.disarm()
    return guard


def is_timeout(exc: BaseException) -> bool:
    """pytest-timeout's signal method: ``pytest.fail`` with its own message."""
    return isinstance(exc, pytest.fail.Exception) and "pytest-timeout" in str(exc)


def _stops_the_test(exc: BaseException) -> bool:
    # A cancellation too: on Ctrl-C ``asyncio.Runner`` cancels the test's task first, and
    # raises ``KeyboardInterrupt`` once the task is gone.
    return isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) or is_timeout(exc)


async def absorb(check: TestCheck, exc: BaseException) -> bool:
    """Called by the test's wrapper with what its body raised, in its task: ``True`` when
    that is the guard's cancellation, taken back after the test's other tasks were cancelled
    too (the wrapper then returns). Otherwise keeps the tree of an exception that stops the
    test (Ctrl-C, pytest-timeout), while the test's other tasks still wait."""
    if not _stops_the_test(exc):
        return False  # the test's own failure, or GeneratorExit as a dropped test is closed
    guard = check.data.get(GUARD)
    if not isinstance(guard, HangGuard | None):
        return False  # trio: its scope took the cancellation already
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False  # trio stopped by Ctrl-C or pytest-timeout: no asyncio tree
    if isinstance(exc, asyncio.CancelledError) and guard is not None and guard.fired:
        guard.disarm()
        if sys.version_info >= (3, 11) and task is not None:
            # Only the guard's requests: a shared runner task (anyio) must not carry them on.
            for _ in range(guard.attempts):
                if task.cancelling():
                    task.uncancel()
        leftovers = [t for t in guard.tasks() if t is not task and not t.done()]
        for leftover in leftovers:
            leftover.cancel()
        if leftovers:
            _, pending = await asyncio.wait(leftovers, timeout=CLEANUP)
            guard.unfinished = sorted(repr(t.get_name()) for t in pending)
        return True
    if TREE not in check.data and task is not None:
        steps = waits.traceback_steps(exc.__traceback__)
        with allow_blocking():
            check.data[TREE] = awaittree.capture(
                asyncio.all_tasks(), task, check.session.rootpath, steps
            )
    return False


#: The functions whose frame, holding the test's check, marks the task running the test's
#: body or one of its async fixtures' steps.
_WRAPPERS = frozenset(("asynccheck_wrapper", "_step", "asynccheck_fixture_generator"))


def tree_of(check: TestCheck, tasks: set[asyncio.Task[Any]]) -> list[str]:
    """The await tree of ``tasks``, from the task running the test's body or, before it runs,
    the step of one of its async fixtures."""
    for task in tasks:
        for frame, _ in waits.coroutine_steps(task.get_coro()):
            if frame.f_code.co_name in _WRAPPERS and frame.f_locals.get("check") is check:
                run = frame.f_locals.get("run")
                label = f"fixture {run.name!r}" if run is not None else "the test"
                return awaittree.capture(tasks, task, check.session.rootpath, root_label=label)
    return awaittree.capture(tasks, None, check.session.rootpath)


def note_fixture_loop(check: TestCheck) -> None:
    """Called from an async fixture's step: until the test body runs, its loop and thread are
    the test's (for the tree of a setup that pytest-timeout or Ctrl-C stops)."""
    if check.loop is None and FIXTURE_LOOP not in check.data:
        # Not contextlib.suppress: three calls more at every test with an async fixture.
        try:  # noqa: SIM105
            check.data[FIXTURE_LOOP] = (asyncio.get_running_loop(), threading.get_ident())
        except RuntimeError:  # trio: its fixtures run in the call phase
            pass


def loop_of(check: TestCheck) -> tuple[asyncio.AbstractEventLoop | None, int | None]:
    """The loop the test's async code runs on, and its thread: the body's, else the loop of
    an async fixture of the test."""
    if check.loop is not None:
        return check.loop, check.loop_thread
    loop, thread = check.data.get(FIXTURE_LOOP, (None, None))
    return loop, thread


def _is_stop(exc: BaseException) -> bool:
    """Ctrl-C or pytest-timeout, or a group holding one (trio's nurseries wrap what a task
    raised: pytest-trio then reports Ctrl-C as the test's failure)."""
    if isinstance(exc, KeyboardInterrupt) or is_timeout(exc):
        return True
    group = getattr(exc, "exceptions", None)
    return isinstance(group, tuple) and any(
        isinstance(inner, BaseException) and _is_stop(inner) for inner in group
    )


def stopped(check: TestCheck, exc: BaseException) -> None:
    """The phase was stopped by ``exc``: on Ctrl-C or pytest-timeout, show the tree of the
    test's tasks as a section of its report (and, for Ctrl-C, at the end of the run)."""
    if not check.is_async or not (_is_stop(exc) or SIGNALLED in check.data):
        return
    lines: list[str] | None = check.data.get(TREE)
    loop, _ = loop_of(check)
    if lines is None and loop is not None and not loop.is_closed():
        tasks = asyncio.all_tasks(loop)
        lines = tree_of(check, tasks)
    if not lines:
        return
    text = "\n".join(lines)
    check.item.add_report_section(check.phase, REPORT_SECTION, text)
    if isinstance(exc, KeyboardInterrupt):
        INTERRUPTED.append((check.nodeid, text))


#: (node id, tree) of the test Ctrl-C stopped: pytest makes no report for it.
INTERRUPTED: list[tuple[str, str]] = []


class InterruptSummary(HookHolder):
    """Prints the await tree of the test Ctrl-C stopped, in the run's terminal summary."""

    name = "asynccheck-interrupt"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        while INTERRUPTED:
            nodeid, text = INTERRUPTED.pop(0)
            terminalreporter.write_sep("=", f"asynccheck: await tree of {nodeid} when interrupted")
            terminalreporter.write_line(text)
