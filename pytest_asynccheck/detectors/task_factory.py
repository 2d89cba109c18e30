"""How the tasks a test makes are seen: from a test's first step on a loop (its body, or a step
of one of its async fixtures) to the test's end, each task made while a step runs is noted,
with where it was made and by which fixture step.

On the standard library's loops ``BaseEventLoop.create_task`` is intercepted on the class, once
per session (``FactoryMethods``): it notes what the loop's own method returns, whatever task
factory made it, and a test step only points the interception at its test's notes
(``FactoryState``). Nothing is set on the loop: a task factory the code under test sets
(``loop.set_task_factory``) is the loop's, as without the plugin. Setting a factory of the
plugin's on each test's loop, taking it off again, and the two calls more per task it cost read
about 5 K instructions per test more (benchmarks/README.md, "Tasks noted by the loop class").

On other loops (uvloop), and on a loop class that defines ``create_task`` or the task factory
methods itself, the plugin's task factory is put in front of the loop's for the test instead: a
factory the code under test sets meanwhile goes behind it, ``get_task_factory`` returns that one,
and it is the loop's when the test ends. ``set_task_factory`` and ``get_task_factory`` are
intercepted on ``asyncio.BaseEventLoop`` for that (replacing a class attribute at every step
would invalidate the interpreter's attribute caches each time); on a loop class that defines the
two methods itself, the two functions are put on the loop instance for the test. A function the
user put on the instance is left alone, and a loop class that takes no instance attributes keeps
its own methods (the factory is set all the same).
"""

from __future__ import annotations

import asyncio
import sys
import types
import weakref
from collections.abc import Callable
from typing import Any

from .. import _clock
from .. import _frames as frames
from .._parameters import compiled_with_parameters_of
from .._session import FIXTURE
from .task_findings import FIXTURE_ATTR, SITE_ATTR

TaskFactory = Callable[..., "asyncio.Task[Any]"]
#: The tasks the factory made for a test, to tell whether any may still wait for the collector.
Made = list["weakref.ref[asyncio.Task[Any]]"]
#: How the plugin reads and sets a loop's factory: (get, set), each taking the loop first.
Access = tuple[Callable[[Any], Any], Callable[[Any, Any], None]]

_BASE = asyncio.BaseEventLoop
_NAMES = ("set_task_factory", "get_task_factory")
#: The standard library's own methods, as the plugin reads and sets a loop's factory whatever
#: stands on the class (another session's functions, under pytester).
_STDLIB: Access = (_BASE.get_task_factory, _BASE.set_task_factory)
#: Made from a weak reference to each task the factory makes and put on the task as its
#: ``cancel`` (the swallowed-cancel check's, for the session; empty otherwise).
CANCEL_HOOK: list[Callable[[weakref.ref[asyncio.Task[Any]]], Callable[..., bool]]] = []


class FactoryState:
    """The plugin's task factory on one loop for one test, and the factory itself (a task
    factory that notes each task, where it was made and by which fixture, in front of
    ``inner``): the factory behind it, which the code under test may replace meanwhile
    (``None``: the plain ``asyncio.Task``), and the tasks it saw made outside any fixture.

    It stays on the loop from the test's first step on that loop to the test's end, and notes
    tasks only while a step runs (``active``): the runner's own tasks between the steps are
    made as the factory behind it makes them. Put on and taken off at every step, it cost a
    test with one async fixture about 370 bytecodes more (benchmarks/README.md, "Cheaper
    steps")."""

    __slots__ = ("access", "active", "by_class", "inner", "loop", "made", "on_class", "own")

    def __init__(self, loop: asyncio.AbstractEventLoop, inner: TaskFactory | None) -> None:
        self.loop = loop
        self.inner = inner
        self.active = True
        self.made: Made = []
        #: The ``set_task_factory`` and ``get_task_factory`` put on the loop instance, if any.
        self.own: tuple[Callable[..., Any], ...] = ()
        self.access: Access | None = None
        #: Whether the intercepting class methods answer for it (else the functions on the
        #: instance do, and the class methods see it as any other factory).
        self.on_class = False
        #: Whether it is no factory at all, but the notes the intercepted ``create_task`` of
        #: the standard library's loops keeps for the test (``FactoryMethods.noting``).
        self.by_class = False

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        inner = self.inner
        if inner is None:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        else:
            task = inner(loop, coro, **kwargs)
        if self.active:
            self.note(task, sys._getframe(1))
        return task

    def note(self, task: Any, caller: types.FrameType) -> None:
        """Note ``task``, made by the code of ``caller`` (or by what called it), while a step
        runs."""
        try:
            ref = weakref.ref(task)
            step = FIXTURE.get()
            if step is None:
                self.made.append(ref)
            else:
                step.run.made.append(ref)
                setattr(task, FIXTURE_ATTR, (step.run.name, step.phase))
            if CANCEL_HOOK:
                task.cancel = CANCEL_HOOK[0](ref)
            site = frames.user_site(caller)
            if site is not None:
                setattr(task, SITE_ATTR, site)
        except (TypeError, AttributeError):
            pass  # another factory's task type that takes no weak reference or attribute


class FactoryMethods:
    """``create_task``, ``set_task_factory`` and ``get_task_factory`` of
    ``asyncio.BaseEventLoop``, intercepted from the first step on a standard library loop until
    ``restore`` (the session's end). Outside a step they are the loop's own methods."""

    def __init__(self) -> None:
        #: (name, the function put on the class, what was there)
        self._patched: list[tuple[str, Callable[..., Any], Any]] = []
        self._functions: tuple[Callable[..., Any], ...] = ()
        self._create_task: Callable[..., Any] | None = None
        #: The notes of the test whose steps run on a standard library loop now: what the
        #: intercepted ``create_task`` adds to (while a step runs).
        self.noting: FactoryState | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> FactoryState:
        """Start noting the tasks made on ``loop`` for one test; returns its notes."""
        access = self._access_for(loop)
        if access is _STDLIB and type(loop).create_task is self._create_task:
            state = FactoryState(loop, None)
            state.by_class = True
            self.noting = state
            return state
        on_class = access is not None
        if access is None:
            # Through the class: a function the test put on the loop instance does not stand
            # in for the loop's own methods here.
            loop_class: Any = type(loop)
            access = (loop_class.get_task_factory, loop_class.set_task_factory)
        state = FactoryState(loop, access[0](loop))
        state.access = access
        state.on_class = on_class
        access[1](loop, state)
        if not on_class:
            _intercept_on_instance(state)
        return state

    def remove(self, state: FactoryState) -> None:
        """Stop noting for ``state``'s test: its factory taken off its loop (the factory the
        code under test left, or the one the loop had, is the loop's again, unless the code
        under test set one another way)."""
        if state.by_class:
            if self.noting is state:
                self.noting = None
            return
        loop = state.loop
        for name, own in zip(_NAMES, state.own, strict=False):
            if getattr(loop, name, None) is own:  # unless the test put its own there since
                delattr(loop, name)
        # The state and the functions on the instance refer to each other: without this the
        # loop they hold would wait for the garbage collector (benchmarks/README.md,
        # "Reference cycles").
        state.own = ()
        access = state.access
        if access is not None and access[0](loop) is state:
            access[1](loop, state.inner)

    def restore(self) -> None:
        for name, function, original in reversed(self._patched):
            if _BASE.__dict__.get(name) is function:  # unless someone else patched it since
                setattr(_BASE, name, original)
        self._patched = []
        self._functions = ()
        self._create_task = None
        self.noting = None

    def _access_for(self, loop: asyncio.AbstractEventLoop) -> Access | None:
        """The standard library's own methods, when the loop's class methods are the
        intercepting ones; ``None`` when the functions go on the instance. (A function the
        user put on the instance stands in front of either, and is left alone.)"""
        if not isinstance(loop, _BASE):
            return None
        if not self._patched:
            self._patch()
        loop_class: Any = type(loop)
        if (loop_class.set_task_factory, loop_class.get_task_factory) != self._functions:
            return None  # a class that defines them itself, or someone else's functions
        return _STDLIB

    def _patch(self) -> None:
        original_set = _BASE.__dict__["set_task_factory"]
        original_get = _BASE.__dict__["get_task_factory"]
        original_create = _BASE.__dict__["create_task"]
        raw_get = _STDLIB[0]
        methods = self

        def set_task_factory(self: Any, factory: TaskFactory | None) -> None:
            __tracebackhide__ = True
            front = raw_get(self)
            if type(front) is not FactoryState or not front.on_class:
                return original_set(self, factory)  # type: ignore[no-any-return]
            if factory is not None and not callable(factory):
                raise TypeError("task factory must be a callable or None")
            front.inner = factory
            return None

        def get_task_factory(self: Any) -> TaskFactory | None:
            front = raw_get(self)
            if type(front) is FactoryState and front.on_class:
                return front.inner
            return front  # type: ignore[no-any-return]

        create_task = compiled_with_parameters_of(
            original_create,
            _CREATE_TASK,
            "create_task",
            {
                "_asynccheck_original": original_create,
                "_asynccheck_methods": methods,
                "_asynccheck_getframe": sys._getframe,
            },
            __file__,
        )
        for function, original in (
            (set_task_factory, original_set),
            (get_task_factory, original_get),
            (create_task, original_create),
        ):
            function.__qualname__ = original.__qualname__
            function.__doc__ = original.__doc__
        self._patched = [
            ("set_task_factory", set_task_factory, original_set),
            ("get_task_factory", get_task_factory, original_get),
            ("create_task", create_task, original_create),
        ]
        for name, function, _ in self._patched:
            setattr(_BASE, name, function)
        self._functions = (set_task_factory, get_task_factory)
        self._create_task = create_task


#: ``BaseEventLoop.create_task``, intercepted: the loop's own method, then the task noted if a
#: step of the test ``FactoryMethods.noting`` is for runs on this loop. Compiled with the
#: original's own parameters: every task of the session is made through it, and passing the
#: arguments on packed cost about a thousand instructions per task more.
_CREATE_TASK = """
def create_task({declared}):
    __tracebackhide__ = True
    _asynccheck_task = _asynccheck_original({passed})
    _asynccheck_state = _asynccheck_methods.noting
    if (
        _asynccheck_state is not None
        and _asynccheck_state.active
        and _asynccheck_state.loop is {first}
    ):
        _asynccheck_state.note(_asynccheck_task, _asynccheck_getframe(1))
    return _asynccheck_task
"""


def _intercept_on_instance(state: FactoryState) -> None:
    """A factory the code under test sets goes behind the plugin's, not in its place: the two
    functions on the loop instance, for a loop whose class methods are not intercepted."""
    loop = state.loop
    if _clock.set_on_instance(loop, "set_task_factory"):
        return  # the user's own function on the instance: left alone

    def set_task_factory(factory: TaskFactory | None) -> None:
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        state.inner = factory

    def get_task_factory() -> TaskFactory | None:
        return state.inner

    try:
        loop.set_task_factory = set_task_factory  # type: ignore[method-assign, assignment]
        loop.get_task_factory = get_task_factory  # type: ignore[method-assign]
    except AttributeError:
        return  # a loop class without instance attributes
    state.own = (set_task_factory, get_task_factory)


def in_place(state: FactoryState) -> bool:
    """Whether ``state`` still notes its loop's tasks (the code under test may have set a
    factory another way, or a runner another loop's)."""
    if state.by_class:
        return True
    access = state.access
    return access is not None and access[0](state.loop) is state
