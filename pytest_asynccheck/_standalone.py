"""Running coroutine tests: the wrapper that puts every async test inside its check, and the
standalone runner for async tests no other plugin claims (the ``Standalone`` plugin object,
registered when the checks are on and dropped after collection when no test needs it)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import sys
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar, cast

import pytest

from ._hookholder import HookHolder
from ._session import CheckSession, TestCheck, isolated_asyncio_case
from .detectors.budget import hang, stoptrees

T = TypeVar("T")

CLAIMING_FIXTURES = ("anyio_backend", "aiolib")

WIDER_SCOPE_FIXTURE = (
    "async fixture {name!r} has scope {scope!r}, but pytest-asynccheck's own runner runs "
    "only function-scoped async fixtures (one event loop per test). Install pytest-asyncio "
    "(and declare it with @pytest_asyncio.fixture(loop_scope={scope!r})) or use anyio's "
    "pytest plugin (@pytest.mark.anyio) to share a loop across tests."
)


def call_target(item: pytest.Item) -> tuple[object, str, Any, bool] | None:
    """Where the test's coroutine function is looked up when the test runs, and the function:
    ``(owner, attribute, function, shadows)``, or ``None`` for a test that is not a coroutine
    function. ``shadows``: the attribute is set on an instance in front of its class's method,
    and is to be deleted afterwards, not set back."""
    obj = getattr(item, "obj", None)
    if obj is None:
        return None
    hypothesis = getattr(obj, "hypothesis", None)
    inner = getattr(hypothesis, "inner_test", None)
    if inner is not None:
        return (hypothesis, "inner_test", inner, False) if is_coroutine_function(inner) else None
    if not is_coroutine_function(obj):
        return None
    # A plain function is no unittest method (asked of every coroutine test: a call less).
    case = isolated_asyncio_case(obj) if type(obj) is not types.FunctionType else None
    if case is not None:
        # unittest runs getattr(case, methodName) on its own loop, never item.obj.
        return (case, item.name, obj, True)
    return (item, "obj", obj, False)


def _plain_function_flags(func: object) -> int | None:
    """A plain function's code flags, or ``None`` when only ``inspect`` can tell (a partial, a
    method, a function marked with ``inspect.markcoroutinefunction``). This is asked of every
    test and fixture, and the flags answer for nearly all of them."""
    if type(func) is types.FunctionType:
        marks = func.__dict__
        if "_is_coroutine_marker" not in marks and "__partialmethod__" not in marks:
            return func.__code__.co_flags
    return None


def is_coroutine_function(func: object) -> bool:
    flags = _plain_function_flags(func)
    if flags is not None:
        return bool(flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(func)


def is_async_function(func: object) -> bool:
    """A coroutine function or an async generator function."""
    flags = _plain_function_flags(func)
    if flags is not None:
        return bool(flags & (inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR))
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


def checked_coroutine_function(
    check: TestCheck, func: Callable[..., Coroutine[Any, Any, T]], where: str
) -> Callable[..., Coroutine[Any, Any, T]]:
    """``func`` made to announce itself to the detectors from inside its own task."""

    async def asynccheck_wrapper(*args: Any, **kwargs: Any) -> T:
        __tracebackhide__ = True
        check.session.enter_task(check, where)
        try:
            if where != "test" or check.loop is not None:
                return await func(*args, **kwargs)
            # trio (no asyncio loop runs): a guarded body runs in the hang guard's scope; a
            # signal that stops it reads its tree first.
            with stoptrees.trio_stops(check):
                scope = hang.trio_scope(check)
                if scope is None:
                    return await func(*args, **kwargs)
                with scope:
                    return await func(*args, **kwargs)
            return cast(T, None)  # trio: cancelled as hung, and reported so
        except BaseException as exc:
            if where == "test" and await hang.absorb(check, exc):
                return cast(T, None)  # cancelled as hung, and reported so
            raise
        finally:
            check.session.exit_task(check, where)

    return dressed_as(func, asynccheck_wrapper)


def dressed_as(func: Callable[..., Any], wrapper: Callable[..., Any]) -> Callable[..., Any]:
    """``wrapper`` made to look like ``func``: what ``functools.wraps`` copies (runners read
    markers such as ``_force_asyncio_fixture`` and ``_loop_scope`` from the function's
    ``__dict__``), save the annotations of a plain function: nothing reads them here, reading
    them makes a dictionary, and this is done for every test and every async fixture's setup."""
    if type(func) is not types.FunctionType:
        return functools.wraps(func)(wrapper)
    target: Any = wrapper
    target.__dict__.update(func.__dict__)
    target.__module__ = func.__module__
    target.__name__ = func.__name__
    target.__qualname__ = func.__qualname__
    target.__doc__ = func.__doc__
    target.__wrapped__ = func
    return wrapper


def asyncio_item_class(config: pytest.Config) -> type | None:
    """pytest-asyncio's item class, if that plugin is loaded."""
    item_class = getattr(config.pluginmanager.get_plugin("asyncio"), "PytestAsyncioFunction", None)
    return item_class if isinstance(item_class, type) else None


def is_claimed(item: pytest.Item) -> bool:
    """Whether another async plugin runs this test (then the standalone runner never does)."""
    return _claimed(item, asyncio_item_class(item.config))


def _claimed(item: pytest.Item, item_class: type | None) -> bool:
    """``is_claimed``, with pytest-asyncio's item class looked up once for many items.
    Cheapest question first: this is asked of every test."""
    # Its items are its classes' own subclasses: found in the MRO, without the ABC's
    # instance check (a Python call per test).
    if item_class is not None and item_class in type(item).__mro__:
        return True
    fixturenames = getattr(item, "fixturenames", ())
    if any(name in fixturenames for name in CLAIMING_FIXTURES):
        return True
    return item.get_closest_marker("trio") is not None


class LoopRunner:
    """One fresh event loop per test, shared by its async fixtures and its body, with one
    context so context variables set in fixtures are seen by the test."""

    def __init__(self) -> None:
        self._runner: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context = contextvars.copy_context()
        if sys.version_info >= (3, 11):
            # With a factory the runner does not make its loop the thread's current loop, so
            # another plugin tearing down "the current loop" cannot close ours under us.
            self._runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        __tracebackhide__ = True
        if self._runner is not None:
            result: T = self._runner.run(coro, context=self._context)
            return result
        return self._run_without_runner(coro)  # pragma: no cover - Python 3.10 only

    def _run_without_runner(self, coro: Coroutine[Any, Any, T]) -> T:  # pragma: no cover
        # Before 3.11 a task cannot run in a given context, only in a copy of it: carry the
        # copy's values forward so the test sees what its fixtures set.
        __tracebackhide__ = True
        if self._loop is None:
            self._loop = asyncio.new_event_loop()

        async def step() -> tuple[T, contextvars.Context]:
            __tracebackhide__ = True
            return await coro, contextvars.copy_context()

        task = self._context.run(self._loop.create_task, step())
        result, self._context = self._loop.run_until_complete(task)
        return result

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            return
        loop = self._loop  # pragma: no cover - Python 3.10 only
        if loop is None:  # pragma: no cover - Python 3.10 only
            return
        try:  # pragma: no cover - Python 3.10 only
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:  # pragma: no cover - Python 3.10 only
            loop.close()
            self._loop = None


def run_test(item: pytest.Function, runner: LoopRunner) -> None:
    __tracebackhide__ = True
    testfunction = item.obj
    funcargs = item.funcargs
    testargs = {arg: funcargs[arg] for arg in item._fixtureinfo.argnames}
    runner.run(testfunction(**testargs))


async def _awaited(awaitable: Any) -> Any:
    __tracebackhide__ = True
    return await awaitable  # a task runs coroutines only, not an async generator's step


def sync_fixture(
    func: Callable[..., Any], check: TestCheck, runner: LoopRunner, name: str
) -> Callable[..., Any]:
    """An async fixture function made synchronous, running on the test's own loop (its steps
    announce themselves to the check from inside: see fixtures.py)."""
    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        def run_asyncgen_fixture(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            agen = func(*args, **kwargs)
            yield runner.run(_awaited(agen.__anext__()))
            try:
                runner.run(_awaited(agen.__anext__()))
            except StopAsyncIteration:
                return
            runner.run(agen.aclose())
            raise RuntimeError(f"async fixture {name!r} yielded more than once")

        return run_asyncgen_fixture

    @functools.wraps(func)
    def run_coroutine_fixture(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        return runner.run(func(*args, **kwargs))

    return run_coroutine_fixture


def _loop_runner(session: CheckSession, item: pytest.Item) -> LoopRunner:
    runners = session.runners
    runner = runners.get(item)
    if runner is None:
        runner = runners[item] = LoopRunner()
    return runner


class Standalone(HookHolder):
    """The standalone runner: async tests no other async plugin claims, and their async
    fixtures, on a fresh loop per test.

    A plugin of its own, as its hooks run for every test and for the setup of every fixture of
    every test: when collection finds no test that needs it (every async test claimed by
    pytest-asyncio or anyio, say), it is unregistered and costs nothing."""

    name = "asynccheck-standalone"

    def __init__(self, session: CheckSession) -> None:
        self.session = session

    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        __tracebackhide__ = True
        if not is_coroutine_function(pyfuncitem.obj) or is_claimed(pyfuncitem):
            return None
        run_test(pyfuncitem, _loop_runner(self.session, pyfuncitem))
        return True

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        __tracebackhide__ = True
        func = fixturedef.func
        if not is_async_function(func):
            return (yield)
        scope = fixturedef.scope
        item = request.node if scope == "function" else getattr(request, "_pyfuncitem", None)
        if not isinstance(item, pytest.Item) or is_claimed(item):
            return (yield)
        if scope != "function":
            pytest.fail(
                WIDER_SCOPE_FIXTURE.format(name=fixturedef.argname, scope=scope), pytrace=False
            )
        session = self.session
        check = session.open.get(item.nodeid)
        if check is None:
            return (yield)
        runner = _loop_runner(session, item)
        fixturedef.func = sync_fixture(func, check, runner, fixturedef.argname)  # type: ignore[misc]
        try:
            return (yield)
        finally:
            fixturedef.func = func  # type: ignore[misc]


def standalone_needed(items: list[pytest.Item], config: pytest.Config) -> bool:
    """Whether any of ``items`` is an async test, or asks for an async fixture, that no other
    plugin runs."""
    item_class = asyncio_item_class(config)
    return any(_needs_standalone(item, item_class) for item in items)


def _needs_standalone(item: pytest.Item, item_class: type | None) -> bool:
    if _claimed(item, item_class):
        return False
    if is_coroutine_function(getattr(item, "obj", None)):
        return True  # it may ask for any fixture by name while it runs
    info = getattr(item, "_fixtureinfo", None)
    definitions = getattr(info, "name2fixturedefs", {})
    return any(is_async_function(d.func) for defs in definitions.values() for d in defs)
