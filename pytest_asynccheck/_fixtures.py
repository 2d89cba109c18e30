"""Async fixtures checked like the test body, whoever runs them.

A ``pytest_fixture_setup`` wrapper that runs before every other one swaps an async fixture's
function (a coroutine function or an async generator function) for one of the same kind for the
length of its setup; pytest-asyncio (1.0 and later), anyio, pytest-trio and the standalone runner
all read the function after that, recognise it as async (``functools.wraps`` carries their
markers over) and run it as they would the original. Each step of the fixture (its setup, and an
async generator's teardown) announces itself from inside the task that runs it, as the test body
does (``task_entered``/``task_exited`` with ``where="fixture <name>"``), and runs with
``session.FIXTURE`` set, so every finding made in it, and in tasks it starts, says
``in fixture 'db' (setup)`` and belongs to the test being set up or torn down then: a fixture of
a wider scope reports on the test during which it set up or tore down.

Tasks a fixture starts are its own: they are judged when the fixture is torn down (a leak is a
task still pending then), never by the tests that ran meanwhile.

pytest-asyncio before 1.0 (0.23 to 0.26) replaced each async fixture function with a sync one at
collection, for good, which keeps the original in its closure and runs it on the loop at setup;
there the wrapper is put in that closure cell, for the length of the setup, in place of the
original (found as the cell holding the sync function's ``__wrapped__``).

Limits: under pytest-trio a fixture's setup and teardown run in pytest's call phase
(pytest-trio runs them there), and their findings land in that phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import types
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator
from typing import Any

import pytest

from ._session import FIXTURE, CheckSession, FixtureRun, FixtureStep
from ._standalone import dressed_as, is_async_function
from .detectors.budget import hang
from .detectors.tasks import CANCEL_WAIT

#: Judges the tasks of an async fixture that was torn down; ``True`` when called in the
#: fixture's task, where it returns the tasks it cancelled, for the caller to await.
FinishFixture = Callable[[FixtureRun, bool], "list[asyncio.Task[Any]]"]


async def _step(
    session: CheckSession, run: FixtureRun, phase: str, awaitable: Awaitable[Any]
) -> Any:
    """Await one step of a fixture inside the check of the test running now."""
    check = session.current
    if check is None or check.closed:
        return await awaitable
    where = f"fixture {run.name}"
    check.is_async = True  # async code of its own ran: the summaries count it as checked
    hang.note_fixture_loop(check)
    token = FIXTURE.set(FixtureStep(run, phase))
    try:
        session.enter_task(check, where)
        try:
            return await awaitable
        finally:
            session.exit_task(check, where)
    finally:
        with contextlib.suppress(ValueError):  # a runner that ran the step in another context
            FIXTURE.reset(token)


def checked_fixture_function(
    session: CheckSession,
    fixturedef: pytest.FixtureDef[Any],
    func: Callable[..., Any],
    finish: FinishFixture,
    started: list[FixtureRun],
) -> Callable[..., Any]:
    """``func``, an async fixture function, made to run each step inside the check. An async
    generator's tasks are judged at the end of its teardown, in its task; a coroutine
    function's when pytest tears it down (each ``FixtureRun`` made is put in ``started``)."""
    name = fixturedef.argname

    if inspect.isasyncgenfunction(func):

        async def asynccheck_fixture_generator(*args: Any, **kwargs: Any) -> AsyncGenerator[Any]:
            run = FixtureRun(name)
            agen = func(*args, **kwargs)
            awaitable: Awaitable[Any] = agen.__anext__()
            phase = "setup"
            while True:
                try:
                    value = await _step(session, run, phase, awaitable)
                except StopAsyncIteration:
                    if any((task := ref()) is not None and not task.done() for ref in run.made):
                        # One turn of the loop for a task the teardown cancelled to finish.
                        await asyncio.sleep(0)
                    cancelled = finish(run, True)
                    if cancelled:
                        await asyncio.wait(cancelled, timeout=CANCEL_WAIT)
                    return
                phase = "teardown"
                try:
                    yield value
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as exc:  # thrown in by the runner: the fixture's to see
                    awaitable = agen.athrow(exc)
                else:
                    awaitable = agen.__anext__()

        return dressed_as(func, asynccheck_fixture_generator)

    async def asynccheck_fixture(*args: Any, **kwargs: Any) -> Any:
        run = FixtureRun(name)
        started.append(run)
        coro: Coroutine[Any, Any, Any] = func(*args, **kwargs)
        return await _step(session, run, "setup", coro)

    return dressed_as(func, asynccheck_fixture)


#: The sync functions pytest-asyncio before 1.0 puts in place of async fixture functions at
#: collection (by the name of their code, which ``functools.wraps`` leaves alone).
COLLECTION_WRAPPERS = frozenset(("_async_fixture_wrapper", "_asyncgen_fixture_wrapper"))


def collection_wrapper_cell(func: object) -> types.CellType | None:
    """The closure cell in which pytest-asyncio's (before 1.0) sync wrapper ``func`` keeps the
    async fixture function it runs (its ``__wrapped__``), or ``None`` for any other function."""
    if not isinstance(func, types.FunctionType):
        return None
    if func.__code__.co_name not in COLLECTION_WRAPPERS:
        return None
    wrapped = getattr(func, "__wrapped__", None)
    for cell in func.__closure__ or ():
        try:
            if cell.cell_contents is wrapped:
                return cell
        except ValueError:  # an empty cell
            continue
    return None


class FixtureChecks:
    """Wraps each async fixture's function for its setup; its findings and its tasks' fate
    are reported on the test running then."""

    name = "asynccheck-fixtures"

    def __init__(self, session: CheckSession, finish: FinishFixture) -> None:
        self.session = session
        self.finish = finish

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        func: Any = fixturedef.func
        cell = None
        if not is_async_function(getattr(func, "__func__", func)):
            cell = collection_wrapper_cell(func)
            if cell is None:
                return (yield)
        original: Any = func if cell is None else cell.cell_contents
        bound_to = getattr(original, "__self__", None)
        target = original.__func__ if bound_to is not None else original
        if not is_async_function(target):
            return (yield)
        started: list[FixtureRun] = []
        wrapped = checked_fixture_function(self.session, fixturedef, target, self.finish, started)
        if bound_to is not None:
            # A fixture method: its runner rebinds the function to the test's instance.
            wrapped = types.MethodType(wrapped, bound_to)
        if cell is None:
            fixturedef.func = wrapped  # type: ignore[misc]
        else:
            cell.cell_contents = wrapped
        try:
            result = yield
        finally:
            if cell is None:
                fixturedef.func = func  # type: ignore[misc]
            else:
                cell.cell_contents = original
        for run in started:
            # Last in, first run: before the runner's own finalizer, which may close its loop
            # (anyio's, when the fixture holds its last lease).
            fixturedef.addfinalizer(functools.partial(self.finish, run, False))
        return result
