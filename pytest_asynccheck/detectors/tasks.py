"""Tasks a test leaves behind: still pending when the test returns (``leaked-task``), or failed
with an exception nobody retrieved, or destroyed while pending (``never-retrieved``).

From the first step of a test on a loop (its body, or a step of one of its async fixtures, see
fixtures.py) to the test's end, the plugin sees each task made on the loop while a step runs
(``task_factory``: through ``create_task`` on the standard library's loops, through a task
factory in front of the loop's on others) and notes, on the task, the first user frame that
made it and the fixture step it was made in, if any: a few microseconds per task, where
tracking every coroutine's origin would cost that per coroutine.
The test's leaks are its own tasks not done when the body returns (an ``IsolatedAsyncioTestCase``
method's: when its ``asyncTearDown`` and cleanups are over); a fixture's (any scope) are
those not done when the fixture is torn down, after its teardown had one more turn of the loop.
A factory the code under test sets meanwhile (``loop.set_task_factory``) still makes the
tasks, ``get_task_factory`` returns it, and it is the loop's when the test ends. A task made
by calling ``asyncio.Task(...)`` directly bypasses ``create_task`` and is not checked for leaks,
nor is a library's task made to run until its loop closes (``LOOP_SERVICES``), nor asyncio's
own task that sets up a connection a server accepted once that server is closed: it is the
server's to finish (before Python 3.12.1, ``Server.wait_closed()`` does not wait for it), and a
test that closed its server and returned did nothing wrong. A server still serving is the
test's, and so is its accept task.
With ``asynccheck_cancel_leaked`` the leaked tasks are cancelled and awaited for up to
``CANCEL_WAIT`` seconds: in the fixture's task at the end of an async generator fixture's
teardown, else between the phases, on the loop, when it is not running (a closed or running loop
gets only the cancellation).

Lost exceptions reach the loop's ``call_exception_handler`` when the task is destroyed; the
plugin reads them there for the test's duration (``loop_handler``), before the loop's own
method runs, so every handler and log line ("Task exception was never retrieved") is as it
would be without the plugin. A loop whose class takes no instance attributes is not checked
for lost exceptions.

This module is the detector; how tasks are seen made (``create_task`` on the loop class, the
task factory and the interception of ``set_task_factory``) is in ``task_factory``, and the
findings themselves (what they say of a task, and where it was made) are made in
``task_findings``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

from .._events import Detector
from .._findings import Kind, Severity
from .._options import Settings
from .._session import (
    CheckSession,
    FixtureRun,
    TestCheck,
    collect_young_once,
    in_fixture,
    isolated_asyncio_case,
)
from . import loop_handler
from .task_factory import FactoryMethods, FactoryState, Made, in_place
from .task_findings import FIXTURE_ATTR, FIXTURE_LEAK_FIX, leak_finding, lost_finding

LOST_MESSAGES = ("Task exception was never retrieved", "Task was destroyed but it is pending!")

#: Libraries' tasks that are made to run until their loop closes, which cancels them (module,
#: coroutine's qualified name): never a test's leak. anyio's first ``to_process.run_sync`` on a
#: loop starts the one that stops its worker processes.
LOOP_SERVICES = frozenset({("anyio._backends._asyncio", "_shutdown_process_pool_on_exit")})


#: asyncio's task that makes the transport of a connection its server accepted and, over TLS,
#: waits for the handshake (the standard library's selector loop).
_ACCEPT_CONNECTION = asyncio.selector_events.BaseSelectorEventLoop._accept_connection2.__code__  # type: ignore[attr-defined]


def _loop_service(task: asyncio.Task[Any]) -> bool:
    coro = task.get_coro()
    frame = getattr(coro, "cr_frame", None)
    if frame is None:
        return False
    if frame.f_code is _ACCEPT_CONNECTION:
        server = frame.f_locals.get("server")
        return server is not None and not server.is_serving()
    return (frame.f_globals.get("__name__"), getattr(coro, "__qualname__", None)) in LOOP_SERVICES


#: How long leaked tasks being cancelled (``asynccheck_cancel_leaked``) may take to finish.
CANCEL_WAIT = 1.0


def _cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel leaked tasks and let them finish (up to ``CANCEL_WAIT`` seconds), on a loop
    that is not running now (between the phases of a test)."""
    for task in tasks:
        task.cancel()
    loops = {task.get_loop() for task in tasks}
    for loop in loops:
        if loop.is_closed() or loop.is_running():
            continue  # cancelled; the loop finishes them when it runs again
        mine = [task for task in tasks if task.get_loop() is loop]
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait(mine, timeout=CANCEL_WAIT))


#: What ``unittest.IsolatedAsyncioTestCase`` calls once the test, its ``asyncTearDown`` and its
#: cleanups have run, to close its loop (Python 3.11+, and 3.10).
_UNITTEST_LOOP_ENDS = ("_tearDownAsyncioRunner", "_tearDownAsyncioLoop")


def _after_unittest_teardown(test: TestCheck, judge: Callable[[], None]) -> bool:
    """For a test method of an ``IsolatedAsyncioTestCase``: have ``judge`` run once the case's
    ``asyncTearDown`` and cleanups are over, just before unittest closes the case's loop (which
    cancels what is left), as a task the method started may be the teardown's to stop; whether
    it will. Asked only when the method left a task pending."""
    case = isolated_asyncio_case(getattr(test.item, "obj", None))
    if case is None:
        return False
    for name in _UNITTEST_LOOP_ENDS:
        close = getattr(case, name, None)
        if close is None or name in vars(case):
            continue

        def judged_then_closed(name: str = name, close: Callable[[], object] = close) -> object:
            vars(case).pop(name, None)  # once, and the case as it was
            with contextlib.suppress(Exception):  # the loop is closed whatever happens here
                judge()
            return close()

        setattr(case, name, judged_then_closed)
        return True
    return False


class TaskDetector(Detector):
    name = "tasks"
    phases: tuple[str, ...] = ("call",)

    def __init__(self, leaks: bool, lost: bool, cancel_leaked: bool = False) -> None:
        self.leaks = leaks
        self.lost = lost
        self.cancel_leaked = cancel_leaked
        self._session: CheckSession | None = None
        self._methods = FactoryMethods()

    def session_started(self, session: CheckSession) -> None:
        self._session = session

    def session_finished(self, session: CheckSession) -> None:
        self._methods.restore()

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if loop is None:
            return
        data = test.data
        state: FactoryState | None = data.get("tasks.factory")
        # ``in_place`` asked only off the class interception (``by_class``): a call less.
        if state is None or state.loop is not loop or not (state.by_class or in_place(state)):
            if state is not None:
                self._remove_factory(test)  # steps of one test never nest: one factory at a time
            state = data["tasks.factory"] = self._methods.install(loop)
            if self.lost and "tasks.reading" not in data:  # once per test: at its first step
                data["tasks.reading"] = loop_handler.read_contexts(test, loop, self._reader(test))
        else:
            state.active = True  # the same loop as the test's last step: still in front
        if where == "test":
            data["tasks.made"] = state.made

    def task_exited(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if loop is None:
            return
        state: FactoryState | None = test.data.get("tasks.factory")
        if state is not None:
            state.active = False  # taken off at the test's end
        if where != "test":
            return
        made: Made | None = test.data.pop("tasks.made", None)
        if not made:
            return
        tasks = [task for ref in made if (task := ref()) is not None]
        if tasks:
            test.data["tasks.alive"] = True
        if not self.leaks:
            return
        current = asyncio.current_task()
        leaked = [
            task
            for task in tasks
            if task is not current and not task.done() and not _loop_service(task)
        ]
        if leaked and _after_unittest_teardown(
            test, lambda: self._leaked(test, leaked, "the test and its asyncTearDown returned")
        ):
            return
        self._leaked(test, leaked, "the test returned")

    def _leaked(self, test: TestCheck, tasks: list[asyncio.Task[Any]], when: str) -> None:
        """Report those of the test body's ``tasks`` still pending now."""
        leaked = [task for task in tasks if not task.done()]
        root = self._rootpath()
        for task in leaked:
            test.add(leak_finding(task, when, root, self.cancel_leaked))
        if leaked and self.cancel_leaked:
            test.data.setdefault("tasks.cancel", []).extend(leaked)

    def fixture_finished(self, run: FixtureRun, in_task: bool) -> list[asyncio.Task[Any]]:
        """An async fixture was torn down: the tasks it made that are still pending leaked.
        In the fixture's task (``in_task``) the ones cancelled are returned, to be awaited."""
        tasks = [
            task
            for ref in run.made
            if (task := ref()) is not None and not task.done() and not _loop_service(task)
        ]
        run.made.clear()
        session = self._session
        check = session.current if session is not None else None
        if not tasks or check is None or check.closed or not self.leaks:
            return []
        for task in tasks:
            made_in = getattr(task, FIXTURE_ATTR, (run.name, "setup"))
            finding = leak_finding(
                task,
                f"fixture {run.name!r} was torn down",
                self._rootpath(),
                self.cancel_leaked,
                FIXTURE_LEAK_FIX,
            )
            check.add(in_fixture(finding, *made_in))
        if not self.cancel_leaked:
            return []
        if in_task:
            for task in tasks:
                task.cancel()
            return tasks
        _cancel_and_wait(tasks)
        return []

    def _remove_factory(self, test: TestCheck) -> None:
        state: FactoryState | None = test.data.pop("tasks.factory", None)
        if state is not None:
            self._methods.remove(state)

    def phase_finished(self, test: TestCheck, phase: str) -> None:
        if phase != "call":
            return
        cancel = test.data.pop("tasks.cancel", None)
        if cancel:
            _cancel_and_wait(cancel)
        # Only a task the test made that is still alive when its body returns may wait in a
        # reference cycle for the collector; most tests' tasks are freed as they finish.
        if test.data.get("tasks.reading") and test.data.get("tasks.alive"):
            collect_young_once(test)  # a failed task nobody holds is destroyed now, in its test

    def test_finished(self, test: TestCheck) -> None:
        self._remove_factory(test)
        test.data.pop("tasks.made", None)  # the body did not return (cancelled, say)
        loop_handler.release(test)

    def _reader(self, test: TestCheck) -> loop_handler.Reader:
        """Reports lost task exceptions among the contexts the loop's handler receives."""

        def read(context: loop_handler.Context) -> None:
            task = context.get("task") or context.get("future")
            if (
                context.get("message") in LOST_MESSAGES
                and isinstance(task, asyncio.Task)
                and "tasks.reading" in test.data  # not once the test is over
            ):
                test.add(lost_finding(task, context, self._rootpath()))

        return read

    def _rootpath(self) -> str:
        return self._session.rootpath if self._session is not None else ""


def task_detector(settings: Settings) -> Detector | None:
    leaks = settings.severity(Kind.LEAKED_TASK) is not Severity.OFF
    lost = settings.severity(Kind.NEVER_RETRIEVED) is not Severity.OFF
    # The swallowed-cancel check needs the factory alone (Task.cancelling() is new in 3.11).
    cancels = sys.version_info >= (3, 11) and (
        settings.severity(Kind.SWALLOWED_CANCEL) is not Severity.OFF
    )
    return TaskDetector(leaks, lost, settings.cancel_leaked) if leaks or lost or cancels else None
