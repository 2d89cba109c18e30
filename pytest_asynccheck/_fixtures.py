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

pytest-asyncio before 1.1 (0.23 to 1.0) replaced each async fixture function with a sync one at
collection, for good, which keeps the original in its closure and runs it on the loop at setup;
there the wrapper is put in that closure cell, for the length of the setup, in place of the
original (found as the cell holding the sync function's ``__wrapped__``).

An async generator fixture's function is swapped for good once collection is over, in every
fixture definition the session knows (asked for by argument or by name), and put back when
the run ends: a hook wrapper asked about every fixture setup (pytest-asyncio's own: two per
test) costs more than the check of the fixture itself (benchmarks/README.md, "Async
fixtures"). A coroutine fixture is swapped per setup by the ``pytest_fixture_setup`` wrapper,
which stays registered only while some fixture needs it: its tasks are judged by a finalizer
that must run before the runner's own (which may close the loop and cancel them), and only a
finalizer added after the setup does. A fixture registered after collection is not checked.

Limits: under pytest-trio a fixture's setup and teardown run in pytest's call phase
(pytest-trio runs them there), and their findings land in that phase.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import types
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator, Iterable
from typing import Any

import pytest

from ._hookholder import HookHolder
from ._session import FIXTURE, CheckSession, FixtureRun, FixtureStep, TestCheck, fixture_step
from ._standalone import dressed_as, is_async_function
from .detectors.budget import hang
from .detectors.tasks import CANCEL_WAIT

#: Judges the tasks of an async fixture that was torn down; ``True`` when called in the
#: fixture's task, where it returns the tasks it cancelled, for the caller to await.
FinishFixture = Callable[[FixtureRun, bool], "list[asyncio.Task[Any]]"]


def _begin_step(
    session: CheckSession, run: FixtureRun, phase: str
) -> tuple[TestCheck | None, contextvars.Token[FixtureStep | None] | None]:
    """Enter one step of a fixture into the check of the test running now, if one is open:
    its findings name the fixture and the step. Returns the check and the context token."""
    check = session.current
    if check is None or check.closed:
        return None, None
    check.is_async = True  # async code of its own ran: the summaries count it as checked
    if check.loop is None:  # until the test body runs (its teardown steps come after it)
        hang.note_fixture_loop(check)
    token = FIXTURE.set(fixture_step((run, phase)))
    session.enter_task(check, run.where)
    return check, token


def _end_step(
    session: CheckSession,
    run: FixtureRun,
    check: TestCheck,
    token: contextvars.Token[FixtureStep | None],
) -> None:
    try:
        session.exit_task(check, run.where)
    finally:
        # Not contextlib.suppress: this runs at every step, and a try costs nothing.
        try:  # noqa: SIM105
            FIXTURE.reset(token)
        except ValueError:  # a runner that ran the step in another context
            pass


async def _step(
    session: CheckSession, run: FixtureRun, phase: str, awaitable: Awaitable[Any]
) -> Any:
    """Await one step of a fixture inside the check of the test running now. (The hang guard
    finds the step's task by this frame and its ``check`` and ``run``.)"""
    __tracebackhide__ = True
    check, token = _begin_step(session, run, phase)
    if check is None or token is None:
        return await awaitable
    try:
        return await awaitable
    finally:
        _end_step(session, run, check, token)


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
            __tracebackhide__ = True
            run = FixtureRun(name)
            where = run.where
            agen = func(*args, **kwargs)
            awaitable: Awaitable[Any] = agen.__anext__()
            phase = "setup"
            while True:
                # Each step entered and left here rather than in ``_step``: a coroutine less
                # per step, and one plugin frame less on a failing fixture's traceback; and
                # ``_begin_step`` and ``_end_step`` written out, two calls less per step
                # (benchmarks/README.md, "Steps handed on directly").
                # (The hang guard finds the step's task by this frame's ``check`` and ``run``.)
                check: TestCheck | None = session.current
                token = None
                if check is not None and not check.closed:
                    check.is_async = True  # async code of its own ran: counted as checked
                    if check.loop is None:  # until the body runs (teardown steps come after)
                        hang.note_fixture_loop(check)
                    token = FIXTURE.set(fixture_step((run, phase)))
                    session.enter_task(check, where)
                try:
                    try:
                        value = await awaitable
                    finally:
                        if check is not None and token is not None:
                            try:
                                session.exit_task(check, where)
                            finally:
                                try:  # noqa: SIM105
                                    FIXTURE.reset(token)
                                except ValueError:  # a runner that ran it in another context
                                    pass
                except StopAsyncIteration:
                    if run.made:  # the tasks it made are judged now, in its task
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
        __tracebackhide__ = True
        run = FixtureRun(name)
        started.append(run)
        coro: Coroutine[Any, Any, Any] = func(*args, **kwargs)
        return await _step(session, run, "setup", coro)

    return dressed_as(func, asynccheck_fixture)


#: The sync functions pytest-asyncio before 1.1 puts in place of async fixture functions at
#: collection (by the name of their code, which ``functools.wraps`` leaves alone).
COLLECTION_WRAPPERS = frozenset(("_async_fixture_wrapper", "_asyncgen_fixture_wrapper"))


def collection_wrapper_cell(func: object) -> types.CellType | None:
    """The closure cell in which pytest-asyncio's (before 1.1) sync wrapper ``func`` keeps the
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


def _async_fixture(func: Any) -> tuple[types.CellType | None, Any, Any, Any] | None:
    """For a fixture function the wrapper checks: the collection wrapper's cell that holds
    the async function (or ``None``), that function, the instance a fixture method is bound to
    (or ``None``) and the plain function it runs; ``None`` for any other fixture."""
    cell = None
    if not is_async_function(getattr(func, "__func__", func)):
        cell = collection_wrapper_cell(func)
        if cell is None:
            return None
    original: Any = func if cell is None else cell.cell_contents
    bound_to = getattr(original, "__self__", None)
    target = original.__func__ if bound_to is not None else original
    if not is_async_function(target):
        return None
    return cell, original, bound_to, target


def _all_definitions(session: pytest.Session) -> Iterable[pytest.FixtureDef[Any]] | None:
    """Every fixture definition the session knows, whether a test asks for it by argument or
    by ``request.getfixturevalue``; ``None`` from a pytest whose table is not known here."""
    manager: Any = getattr(session, "_fixturemanager", None)
    every = getattr(manager, "_get_all_fixture_defs", None)  # pytest 9.2 and later
    if callable(every):
        return every()  # type: ignore[no-any-return]
    by_name = getattr(manager, "_arg2fixturedefs", None)  # pytest 8.0 to 9.1
    if isinstance(by_name, dict):
        return [definition for definitions in by_name.values() for definition in definitions]
    return None


class FixtureChecks(HookHolder):
    """Wraps each async fixture's function; its findings and its tasks' fate are reported on
    the test running then."""

    name = "asynccheck-fixtures"

    def __init__(self, session: CheckSession, finish: FinishFixture) -> None:
        self.session = session
        self.finish = finish
        #: (definition, the collection wrapper's cell or ``None``, what was there) for each
        #: async generator fixture swapped for the session.
        self._swapped: list[tuple[pytest.FixtureDef[Any], types.CellType | None, Any]] = []
        self._swapped_defs: set[int] = set()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Swap every async generator fixture's function for the session; unregister (the
        per-setup wrapper) when no fixture the session knows is a coroutine fixture."""
        definitions = _all_definitions(session)
        if definitions is None:
            return  # a pytest whose table is not known here: every fixture per setup
        wants_wrapper = False
        for definition in definitions:
            checked = _async_fixture(definition.func)
            if checked is None:
                continue
            cell, original, bound_to, target = checked
            if not inspect.isasyncgenfunction(target):
                wants_wrapper = True
                continue
            wrapped = self._wrap(definition, target, bound_to, [])
            self._swapped.append((definition, cell, original))
            self._swapped_defs.add(id(definition))
            _put(definition, cell, wrapped)
        if self._swapped:
            session.config.add_cleanup(self._restore)
        if not wants_wrapper:
            session.config.pluginmanager.unregister(self)  # its cleanup stays with the config

    def _restore(self) -> None:
        for definition, cell, previous in reversed(self._swapped):
            _put(definition, cell, previous)
        self._swapped.clear()
        self._swapped_defs.clear()

    def _wrap(
        self,
        fixturedef: pytest.FixtureDef[Any],
        target: Any,
        bound_to: object,
        started: list[FixtureRun],
    ) -> Any:
        wrapped = checked_fixture_function(self.session, fixturedef, target, self.finish, started)
        if bound_to is not None:
            # A fixture method: its runner rebinds the function to the test's instance.
            wrapped = types.MethodType(wrapped, bound_to)
        return wrapped

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        __tracebackhide__ = True
        func: Any = fixturedef.func
        checked = None if id(fixturedef) in self._swapped_defs else _async_fixture(func)
        if checked is None:
            return (yield)
        cell, original, bound_to, target = checked
        started: list[FixtureRun] = []
        _put(fixturedef, cell, self._wrap(fixturedef, target, bound_to, started))
        try:
            result = yield
        finally:
            _put(fixturedef, cell, original)
        for run in started:
            # Last in, first run: before the runner's own finalizer, which may close its loop
            # (anyio's, when the fixture holds its last lease).
            fixturedef.addfinalizer(functools.partial(self.finish, run, False))
        return result


def _put(fixturedef: pytest.FixtureDef[Any], cell: types.CellType | None, func: Any) -> None:
    """Make ``func`` the fixture's function: on the definition, or in the collection
    wrapper's cell of pytest-asyncio before 1.1."""
    if cell is None:
        fixturedef.func = func  # type: ignore[misc]
    else:
        cell.cell_contents = func
