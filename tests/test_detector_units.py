"""Unit tests of detector paths that end-to-end runs reach only by accident."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import os
import threading
import types
import warnings
from types import SimpleNamespace
from typing import Any, cast

import pytest

from pytest_asynccheck._findings import Finding
from pytest_asynccheck._gc import CollectorPauses
from pytest_asynccheck.detectors import loop_handler
from pytest_asynccheck.detectors.blocking import stuck
from pytest_asynccheck.detectors.budget.timeline import Recorder
from pytest_asynccheck.detectors.task_findings import created_at, suspended_at
from pytest_asynccheck.detectors.tasks import TaskDetector
from pytest_asynccheck.detectors.unawaited import UnawaitedDetector


class StubSession:
    def __init__(self, fail: bool = False) -> None:
        self.current = None
        self.rootpath = "."
        self.collector = CollectorPauses()
        self.reports: list[tuple[Finding, str | None]] = []
        self.fail = fail

    def report(self, finding: Finding, nodeid: str | None = None, phase: str | None = None) -> None:
        if self.fail:
            raise RuntimeError("broken")
        self.reports.append((finding, nodeid))


async def coroutine_function() -> None:
    pass


@pytest.fixture
def previous_hook(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []
    monkeypatch.setattr(warnings, "_warn_unawaited_coroutine", seen.append)
    return seen


def test_coroutines_dropped_outside_any_test_go_to_pythons_warning(
    previous_hook: list[Any],
) -> None:
    detector = UnawaitedDetector()
    session = StubSession()
    detector.session_started(session)  # type: ignore[arg-type]
    try:
        coroutine_function()
        gc.collect()
    finally:
        detector.session_finished(session)  # type: ignore[arg-type]
    assert [c.__qualname__ for c in previous_hook] == ["coroutine_function"]
    assert session.reports == []
    assert warnings._warn_unawaited_coroutine == previous_hook.append  # type: ignore[attr-defined]


def test_a_failing_report_falls_back_to_pythons_warning(previous_hook: list[Any]) -> None:
    detector = UnawaitedDetector()
    session = StubSession(fail=True)
    session.current = object()  # type: ignore[assignment]
    detector.session_started(session)  # type: ignore[arg-type]
    try:
        coroutine_function()
    finally:
        detector.session_finished(session)  # type: ignore[arg-type]
    assert len(previous_hook) == 1


def test_without_a_previous_hook_the_attribute_is_removed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(warnings, "_warn_unawaited_coroutine")
    detector = UnawaitedDetector()
    session = StubSession()
    detector.session_started(session)  # type: ignore[arg-type]
    detector._forward(object())  # nothing to forward to
    detector.session_finished(session)  # type: ignore[arg-type]
    assert not hasattr(warnings, "_warn_unawaited_coroutine")


def test_task_descriptions_without_origin_or_stack() -> None:
    async def main() -> None:
        task = asyncio.create_task(asyncio.sleep(0))
        assert created_at(task, ".") is None  # no origin, no factory noted it
        await task
        assert suspended_at(task, ".") == ""

    asyncio.run(main())


def test_a_pending_task_destroyed_is_reported_and_every_context_still_reaches_the_handler() -> None:
    detector = TaskDetector(leaks=False, lost=True)

    class Check:
        def __init__(self) -> None:
            self.data: dict[str, Any] = {}
            self.added: list[Finding] = []

        def add(self, finding: Finding) -> None:
            self.added.append(finding)

    check = Check()
    seen: list[str] = []
    destroyed = "Task was destroyed but it is pending!"

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        seen.append(context["message"])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(handler)
        detector.task_entered(check, loop, "test")  # type: ignore[arg-type]
        assert loop.get_exception_handler() is handler
        task = loop.create_task(asyncio.sleep(10))
        reporting = loop.call_exception_handler
        loop.call_exception_handler({"message": destroyed, "task": task})
        loop.call_exception_handler({"message": "something else"})
        task.cancel()
        detector.test_finished(check)  # type: ignore[arg-type]
        assert loop.call_exception_handler is not reporting
        assert loop.call_exception_handler.__func__ is type(loop).call_exception_handler  # type: ignore[attr-defined]
        reporting({"message": destroyed, "task": task})  # kept by someone: forwards only

    asyncio.run(main())
    assert seen == [destroyed, "something else", destroyed]
    assert [f.message for f in check.added] == [
        f"task '{check.added[0].message.split(chr(39))[1]}' running sleep() was destroyed "
        "while pending"
    ]


def test_a_function_the_test_put_in_place_of_the_handler_call_is_left_alone() -> None:
    detector = TaskDetector(leaks=False, lost=True)
    check = SimpleNamespace(data={})

    def own(context: dict[str, Any]) -> None:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        detector.task_entered(check, loop, "test")  # type: ignore[arg-type]
        loop.call_exception_handler = own  # type: ignore[method-assign]
        detector.test_finished(check)  # type: ignore[arg-type]
        assert loop.call_exception_handler is own

    asyncio.run(main())


def test_a_function_the_user_put_on_the_loop_before_the_test_is_chained_and_put_back() -> None:
    detector = TaskDetector(leaks=False, lost=True)
    check = SimpleNamespace(data={}, add=lambda finding: None)
    seen: list[str] = []

    def own(context: dict[str, Any]) -> None:
        seen.append(context["message"])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_exception_handler = own  # type: ignore[method-assign]
        detector.task_entered(check, loop, "test")  # type: ignore[arg-type]
        assert loop.call_exception_handler is not own
        loop.call_exception_handler({"message": "during the test"})
        detector.test_finished(check)  # type: ignore[arg-type]
        assert loop.call_exception_handler is own

    asyncio.run(main())
    assert seen == ["during the test"]


def test_a_loop_without_instance_attributes_is_not_checked_for_lost_exceptions() -> None:
    class SlottedLoop:
        __slots__ = ("factory",)

        def get_task_factory(self) -> None:
            return None

        def set_task_factory(self, factory: Any) -> None:
            self.factory = factory

        def call_exception_handler(self, context: dict[str, Any]) -> None:
            pass

    check = SimpleNamespace(data={})
    TaskDetector(leaks=False, lost=True).task_entered(check, SlottedLoop(), "test")  # type: ignore[arg-type]
    assert loop_handler.KEY not in check.data
    assert "tasks.factory" in check.data


def test_recorder_on_a_loop_without_a_selector_records_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> Recorder:
        monkeypatch.setattr(asyncio, "all_tasks", lambda loop: set())
        return Recorder(types.SimpleNamespace(), ".")  # type: ignore[arg-type]

    recorder = asyncio.run(main())
    assert not recorder.active
    recorder.stop()
    assert recorder.sequential_awaits(1.0) == []


def test_recorder_render_with_no_time_is_empty() -> None:
    async def main() -> list[str]:
        recorder = Recorder(asyncio.get_running_loop(), ".")
        recorder.stop()
        recorder.end = recorder.start
        return recorder.render()

    assert asyncio.run(main()) == []


def test_blocking_predicates_recognise_calls_that_cannot_block() -> None:
    import concurrent.futures
    import os

    from pytest_asynccheck.detectors.blocking import catalogue, nonblocking

    done: concurrent.futures.Future[int] = concurrent.futures.Future()
    done.set_result(1)
    pending: concurrent.futures.Future[int] = concurrent.futures.Future()
    assert nonblocking.futures_done([done])
    assert not nonblocking.futures_done([done, pending])
    assert nonblocking.futures_done([pending], timeout=0)
    assert nonblocking.wait3_nohang(os.WNOHANG)
    assert not nonblocking.wait4_nohang(1, 0)
    assert nonblocking.waitid_nohang(0, 0, os.WNOHANG)
    with pytest.raises(ValueError, match="no module for catalogue entry"):
        catalogue._target("no_such_module_anywhere.func")


def test_enums_print_as_their_values() -> None:
    from pytest_asynccheck._findings import Kind, Severity

    assert f"{Severity.WARN} {Kind.LEAKED_TASK}" == "warn leaked-task"


def test_claims_and_targets_of_unusual_items() -> None:
    from pytest_asynccheck._standalone import call_target, is_claimed

    class Item:
        obj = None
        fixturenames = ("aiolib",)
        config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: None))

    assert call_target(Item()) is None  # type: ignore[arg-type]
    assert is_claimed(Item())  # type: ignore[arg-type]


@pytest.mark.skipif(
    not os.path.exists("/proc/self/task"), reason="needs Linux's per-thread scheduling figures"
)
def test_scheduling_figures_stay_few_open_files_and_no_task_has_none() -> None:
    ids: list[int] = []
    for _ in range(stuck._SCHEDSTAT_FILES + 3):
        worker = threading.Thread(target=lambda: ids.append(threading.get_native_id()))
        worker.start()
        worker.join()
    # A thread of no task of this process has no figures (an ended thread's id may already be
    # another thread's, so an id that is no task's stands in for it).
    tasks = {int(name) for name in os.listdir("/proc/self/task")}
    assert stuck.runqueue_wait(max(tasks) + 10_000_000) is None
    # Figures of live threads, read again on the file kept open.
    own = threading.get_native_id()
    first = stuck.runqueue_wait(own)
    assert isinstance(first, int)
    again = stuck.runqueue_wait(own)
    assert isinstance(again, int) and again >= first
    done = threading.Event()
    holders = []
    for _ in range(stuck._SCHEDSTAT_FILES + 2):
        holder = threading.Thread(target=done.wait)
        holder.start()
        holders.append(holder)
    try:
        assert all(isinstance(stuck.runqueue_wait(h.native_id), int) for h in holders)
        assert len(stuck._schedstat_files) <= stuck._SCHEDSTAT_FILES
    finally:
        done.set()
        for holder in holders:
            holder.join()


def test_the_task_factory_methods_are_intercepted_on_the_loop_class_until_the_session_ends() -> (
    None
):
    """On the standard library's loop nothing is put on the loop: its class's ``create_task``
    notes the tasks made while a step runs, whatever factory the test sets, and the class
    methods are the standard library's again afterwards."""
    base = asyncio.BaseEventLoop
    names = ("set_task_factory", "get_task_factory", "create_task")
    originals = tuple(base.__dict__[name] for name in names)
    detector = TaskDetector(leaks=True, lost=False)
    check = SimpleNamespace(data={})
    made: list[object] = []

    def own(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        detector.task_entered(check, loop, "test")  # type: ignore[arg-type]
        assert loop.set_task_factory.__self__ is loop  # a method of the class, not a function
        assert type(loop).get_task_factory(loop) is None  # no factory of the plugin's on it
        await asyncio.create_task(asyncio.sleep(0))
        assert len(check.data["tasks.made"]) == 1
        # Compiled with the original's own parameters, and called with them by keyword.
        intercepted = type(loop).create_task
        assert intercepted is not originals[2]
        assert inspect.signature(intercepted) == inspect.signature(originals[2])
        named = loop.create_task(coro=asyncio.sleep(0), name="named")
        assert named.get_name() == "named"
        await named
        assert len(check.data["tasks.made"]) == 2
        loop.set_task_factory(own)
        assert loop.get_task_factory() is own
        await asyncio.create_task(asyncio.sleep(0))
        assert len(made) == 1 and len(check.data["tasks.made"]) == 3  # the test's factory's too
        with pytest.raises(TypeError):
            loop.set_task_factory(1)  # type: ignore[arg-type]
        notes = check.data["tasks.factory"]
        detector.task_exited(check, loop, "test")  # type: ignore[arg-type]
        await asyncio.create_task(asyncio.sleep(0))  # between steps: not the test's
        assert len(made) == 2 and len(notes.made) == 3
        assert loop.get_task_factory() is own
        detector.test_finished(check)  # type: ignore[arg-type]
        assert type(loop).get_task_factory(loop) is own  # the test's factory stays the loop's
        loop.set_task_factory(None)

    asyncio.run(main())
    assert tuple(base.__dict__[name] for name in names) != originals
    detector.session_finished(StubSession())  # type: ignore[arg-type]
    assert tuple(base.__dict__[name] for name in names) == originals


def test_a_loop_class_with_its_own_task_factory_methods_gets_the_functions_on_its_instance() -> (
    None
):
    calls: list[object] = []

    class OwnLoop(asyncio.SelectorEventLoop):  # type: ignore[misc, valid-type]
        def set_task_factory(self, factory: Any) -> None:
            calls.append(factory)
            super().set_task_factory(factory)

    detector = TaskDetector(leaks=True, lost=False)
    check = SimpleNamespace(data={})
    loop = OwnLoop()
    try:
        detector.task_entered(check, loop, "test")  # type: ignore[arg-type]
        state = check.data["tasks.factory"]
        assert calls == [state]  # set through the loop's own method
        assert type(loop).get_task_factory(loop) is state
        loop.set_task_factory(None)  # the function on the instance: behind the plugin's
        assert state.inner is None and loop.get_task_factory() is None
        detector.task_exited(check, loop, "test")  # type: ignore[arg-type]
        assert type(loop).get_task_factory(loop) is state  # on the loop until the test ends
        detector.test_finished(check)  # type: ignore[arg-type]
        assert loop.set_task_factory.__self__ is loop
        assert type(loop).get_task_factory(loop) is None
    finally:
        loop.close()
        detector.session_finished(StubSession())  # type: ignore[arg-type]


def test_a_registering_init_takes_the_parameters_of_the_one_it_wraps() -> None:
    from pytest_asynccheck.detectors import resource_patches

    calls: list[tuple[Any, ...]] = []

    def original(
        self: Any, a: Any, b: Any = 2, /, c: Any = 3, *rest: Any, d: Any, e: Any = 5, **more: Any
    ) -> None:
        calls.append((self, a, b, c, rest, d, e, more))

    def keyword_only(self: Any, *, d: Any) -> None:
        calls.append((self, d))

    made: list[Any] = []
    init = resource_patches._init_with_parameters_of(original, made.append)
    unannotated = inspect.signature(original).replace(return_annotation=inspect.Signature.empty)
    unannotated = unannotated.replace(
        parameters=[p.replace(annotation=p.empty) for p in unannotated.parameters.values()]
    )
    assert inspect.signature(init) == unannotated
    init("s", 1, d=4)
    init("s", 1, 9, 8, 7, 6, d=4, e=0, x=1)
    init("s", 1, c=8, d=4)
    with pytest.raises(TypeError):
        init("s", 1)  # d missing, as without the wrapper
    only = resource_patches._init_with_parameters_of(keyword_only, made.append)
    only("s", d=1)
    assert calls == [
        ("s", 1, 2, 3, (), 4, 5, {}),
        ("s", 1, 9, 8, (7, 6), 4, 0, {"x": 1}),
        ("s", 1, 2, 8, (), 4, 5, {}),
        ("s", 1),
    ]
    assert made == []  # no test runs here: nothing registered

    # A wrapper put in place before the session takes its own parameters, not the ones of
    # the function it names in ``__wrapped__``.
    def beneath(self: Any, a: Any) -> None:
        calls.append((self, a))

    @functools.wraps(beneath)
    def patched(self: Any, *args: Any, tag: Any = None, **kwargs: Any) -> None:
        calls.append((self, args, tag))

    over_patch = resource_patches._init_with_parameters_of(patched, made.append)
    over_patch("s", 1, tag="mine")
    assert calls[-1] == ("s", (1,), "mine")
    # A C method tells no parameters, and a wrapper taking ``*args`` has no ``self`` of its
    # own: both get the packing one, which forwards all the same.
    packing = resource_patches._init_with_parameters_of(dict.update, made.append)
    assert str(inspect.signature(packing)) == "(self, *args, **kwargs)"
    target: dict[str, int] = {}
    packing(target, {"a": 1}, b=2)
    assert target == {"a": 1, "b": 2}

    def forwarding(*args: Any, **kwargs: Any) -> None:
        calls.append((args, kwargs))

    packed = resource_patches._init_with_parameters_of(forwarding, made.append)
    assert str(inspect.signature(packed)) == "(self, *args, **kwargs)"
    packed("s", 1, x=2)
    assert calls[-1] == (("s", 1), {"x": 2})
    assert made == []


def test_the_watchdog_thread_tells_asyncios_own_clock_by_attributes_alone() -> None:
    """The watchdog's thread asks whether a loop's turns tell their start in real time by
    reading attributes only, never calling the loop's clock: a loop on asyncio's own method
    is exact, a clock replaced on the instance or by a subclass, or a trio token, is not."""
    from pytest_asynccheck.detectors.blocking.stuck import asyncio_clock

    class OwnClock(asyncio.SelectorEventLoop):
        def time(self) -> float:
            raise AssertionError("called from the watchdog's thread")

    class Broken(asyncio.SelectorEventLoop):
        @property
        def time(self) -> Any:  # type: ignore[override]
            raise RuntimeError("a clock that cannot be read")

    loops = [asyncio.new_event_loop(), asyncio.new_event_loop(), OwnClock(), Broken()]
    try:
        plain, patched, own, broken = loops
        patched.time = lambda: 0.0  # type: ignore[method-assign]
        assert asyncio_clock(plain) is True
        assert asyncio_clock(patched) is False
        assert asyncio_clock(own) is False
        assert asyncio_clock(broken) is False
        assert asyncio_clock(object()) is False
    finally:
        for loop in loops:
            loop.close()


def test_detectors_that_only_hand_an_event_on_do_so_until_the_session_rebinds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The blocking and callback checks' own event methods hand each event to what does the
    work (the session dispatches it there directly once started: ``Detectors.rebind``), and
    do nothing before their session has made it."""
    from pytest_asynccheck._events import Detectors
    from pytest_asynccheck.detectors import loop_handler
    from pytest_asynccheck.detectors.blocking.detector import BlockingDetector
    from pytest_asynccheck.detectors.callbacks import CallbackErrorDetector

    calls: list[tuple[Any, ...]] = []

    class Watchdog:
        def step_entered(self, *args: Any) -> None:
            calls.append(("entered", *args))

        def step_exited(self, *args: Any) -> None:
            calls.append(("exited", *args))

    class Interceptor:
        def refresh(self, *args: Any) -> None:
            calls.append(("refresh", *args))

    check: Any = types.SimpleNamespace(data={})
    detector = BlockingDetector(cast(Any, None))
    for method in (detector.test_started, detector.test_finished):
        method(check)
    detector.task_entered(check, None, "test")
    detector.task_exited(check, None, "test")
    assert calls == []  # no session yet
    detector.watchdog = cast(Any, Watchdog())
    detector.interceptor = cast(Any, Interceptor())
    detector.test_started(check)
    detector.task_entered(check, None, "test")
    detector.task_exited(check, None, "test")
    detector.test_finished(check)
    assert calls == [
        ("refresh",),
        ("entered", check, None, "test"),
        ("exited", check, None, "test"),
        ("exited", check),
    ]

    released: list[Any] = []
    callbacks = CallbackErrorDetector()
    registry = Detectors([callbacks])
    monkeypatch.setattr(loop_handler, "release", released.append)
    callbacks.test_finished(check)
    registry.rebind(callbacks, "test_finished", released.append)
    registry.emit("test_finished", check)
    assert released == [check, check]


def test_the_watchdog_hands_a_step_over_to_its_thread_and_back() -> None:
    """The loop thread notes each step; the watchdog's thread makes its watch when the step has
    run for an interval. A watch made as its step ends is taken back, a nested step of the same
    test on the same loop ends with its outer one, and a step that was never detached gives way
    to the next one. (A long threshold keeps the thread itself from making any watch here.)"""
    from pytest_asynccheck.detectors.blocking.watchdog import Watchdog

    watchdog = Watchdog(StubSession(), threshold=600.0)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    first: Any = object()
    second: Any = object()
    try:
        watchdog.step_entered(first, loop)
        watchdog.step_entered(first, loop)  # a step inside the step
        step = watchdog._step
        assert step is not None and step[0] is first and step[1] is loop
        watchdog.step_exited(first, loop, "test")
        assert watchdog._step is step  # the inner one ended, the outer one goes on
        with watchdog._lock:
            watch = watchdog._watch_of(step)
        assert watch is not None and watch.step is step and watch.precise
        assert watch.post == loop.call_soon_threadsafe
        assert watchdog._current_watch() is watch  # made once per step
        watchdog.step_exited(second, loop, "test")  # not its step: nothing happens
        assert watchdog._step is step
        watchdog.step_exited(first, loop, "test")
        assert watchdog._step is None and watchdog._watch is None
        assert watchdog._current_watch() is None

        # Made as the step ended: the thread sees the step gone and takes its watch back.
        watchdog.step_entered(first, loop)
        ended = watchdog._step
        assert ended is not None
        watchdog.step_exited(first, loop, "test")
        with watchdog._lock:
            assert watchdog._watch_of(ended) is None
        assert watchdog._watch is None

        # Never detached: the next step ends its watch.
        watchdog.step_entered(first, loop)
        assert watchdog._current_watch() is not None
        watchdog.step_entered(second, loop)
        assert watchdog._watch is None
        current = watchdog._step
        assert current is not None and current[0] is second
        watchdog.step_exited(second)  # the test's end
        assert watchdog._step is None
    finally:
        watchdog.stop()
        loop.close()
    assert watchdog._thread is None


def test_the_resource_registry_takes_only_what_the_running_test_made_and_tells_ids_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Who owns a resource made now (the test's body on its loop thread, a fixture step on a
    running loop, else nobody), a transport taking over its socket's entry, and an id reused
    by another object after the registered one was freed."""
    from pytest_asynccheck import _session as session_module
    from pytest_asynccheck.detectors import resources

    check = SimpleNamespace(closed=False, phase="call", loop_thread=threading.get_ident())
    other = SimpleNamespace(closed=False, phase="call", loop_thread=threading.get_ident())
    monkeypatch.setattr(session_module, "_active", SimpleNamespace(current=check))
    monkeypatch.setattr(resources, "tracked", {})
    registered: list[Any] = []
    monkeypatch.setattr(resources, "on_registered", [registered.append])

    assert resources.owner() == (check, None)
    elsewhere: list[Any] = []
    thread = threading.Thread(target=lambda: elsewhere.append(resources.owner()))
    thread.start()
    thread.join()
    assert elsewhere == [None]  # not the test's loop thread
    check.phase = "teardown"
    assert resources.owner() is None  # the body's resources are made in its call phase
    check.phase = "call"
    token = session_module.FIXTURE.set(
        session_module.FixtureStep(session_module.FixtureRun("db"), "setup")
    )
    try:
        assert resources.owner() is None  # a fixture's context, but no loop runs here
    finally:
        session_module.FIXTURE.reset(token)

    class Resource:
        pass

    sock, transport = Resource(), Resource()
    site = ("test_mod.py", 3, "test_it")
    entry = resources.register(sock, "socket", "socket.socket", site=site)
    assert entry is not None and entry.site == site and registered == [check]
    assert resources.forget(sock, resources.FILES) is None  # not one of those labels
    assert resources.forget(sock, resources.SOCKETS) is entry
    # A transport made over the socket, during another test, takes its line and tells its test.
    monkeypatch.setattr(session_module, "_active", SimpleNamespace(current=other))
    moved = resources.take_over(entry, transport, "transport", "_SelectorSocketTransport")
    assert moved is not None and moved.site == site and moved.check is other
    assert registered == [check, other]
    # Another object, alive, under the same id is not the registered one.
    key = id(transport)
    alive = Resource()
    stranger = resources.Entry(alive)
    stranger.key, stranger.label = key, "transport"
    resources.tracked[key] = stranger
    assert resources.forget(transport, resources.ASYNCIO_OBJECTS) is None
    assert resources.tracked[key] is stranger
    # Nobody owns what is made between tests.
    monkeypatch.setattr(session_module, "_active", SimpleNamespace(current=None))
    assert resources.register(Resource(), "socket", "socket.socket", site=site) is None
    assert resources.take_over(entry, Resource(), "transport", "t") is None


def test_a_stubborn_test_is_told_of_on_the_terminal_or_else_on_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A test that took every cancellation since its deadline is named, with its await tree,
    through the terminal reporter (with capture off meanwhile), or on the real stderr when no
    reporter runs."""
    import contextlib

    from pytest_asynccheck.detectors.budget import hang

    written: list[str] = []

    class Reporter:
        def ensure_newline(self) -> None:
            written.append("<newline>")

        def write_line(self, line: str) -> None:
            written.append(line)

        def flush(self) -> None:
            pass

    class Capture:
        @contextlib.contextmanager
        def global_and_fixture_disabled(self) -> Any:
            written.append("<capture off>")
            yield

    plugins: dict[str, Any] = {"terminalreporter": Reporter(), "capturemanager": Capture()}
    config = types.SimpleNamespace(pluginmanager=types.SimpleNamespace(get_plugin=plugins.get))
    check: Any = types.SimpleNamespace(
        nodeid="test_mod.py::test_hangs", item=types.SimpleNamespace(config=config)
    )

    async def main() -> None:
        guard = hang.HangGuard(check, asyncio.get_running_loop(), 0.5, os.getcwd())
        waiting = asyncio.Event()
        task = asyncio.create_task(waiting.wait())
        await asyncio.sleep(0)
        guard.attempts = hang.STUBBORN
        try:
            guard._say_unstoppable(task)
            plugins.clear()  # no terminal reporter: the real stderr
            guard._say_unstoppable(task)
        finally:
            guard.disarm()
            task.cancel()

    asyncio.run(main())
    said = (
        "asynccheck: test_mod.py::test_hangs still runs 3.00 s after its max_wall deadline of "
        "500 ms cancelled it, cancelled again 6 times since"
    )
    assert written[:2] == ["<capture off>", "<newline>"]
    assert written[2].startswith(said), written
    assert any("Event.wait" in line for line in written[3:]), written
    assert said in capfd.readouterr().err


def test_the_async_function_pytest_asyncio_before_1_1_keeps_is_found_in_its_closure() -> None:
    """pytest-asyncio before 1.1 replaced an async fixture function with a sync wrapper that
    keeps it in a closure cell (named by its ``__wrapped__``): that cell is found, and nothing
    is found in any other function, or in a wrapper whose cell is empty."""
    from pytest_asynccheck._fixtures import collection_wrapper_cell

    async def fixture() -> None:
        pass

    def make(kept: Any) -> Any:
        def _async_fixture_wrapper() -> Any:
            return kept

        _async_fixture_wrapper.__wrapped__ = fixture  # type: ignore[attr-defined]
        return _async_fixture_wrapper

    wrapper = make(fixture)
    cell = collection_wrapper_cell(wrapper)
    assert cell is not None and cell.cell_contents is fixture
    assert collection_wrapper_cell(make(None)) is None  # the cell holds something else
    assert collection_wrapper_cell(fixture) is None  # not a collection wrapper
    assert collection_wrapper_cell(len) is None  # not a Python function

    def emptied() -> Any:
        late: Any = fixture

        def _asyncgen_fixture_wrapper() -> Any:
            return late  # noqa: F821 - deleted below: an empty closure cell

        del late  # the closure cell is empty now
        _asyncgen_fixture_wrapper.__wrapped__ = fixture  # type: ignore[attr-defined]
        return _asyncgen_fixture_wrapper

    empty = emptied()
    assert empty.__closure__ and len(empty.__closure__) == 1
    assert collection_wrapper_cell(empty) is None


def test_a_loop_class_with_its_own_create_task_keeps_the_users_factory_behind_the_plugins() -> None:
    """On a standard library loop whose class defines ``create_task`` itself, the plugin's task
    factory goes on the loop; a factory the code under test sets meanwhile goes behind it
    (``get_task_factory`` returns that one, a non-callable is refused as asyncio refuses it),
    and it is the loop's when the test ends; the class methods are put back at the end."""
    from pytest_asynccheck.detectors.task_factory import FactoryMethods, in_place

    class OwnCreate(asyncio.SelectorEventLoop):
        def create_task(self, coro: Any, **kwargs: Any) -> Any:
            return super().create_task(coro, **kwargs)

    def user(loop: Any, coro: Any, **kwargs: Any) -> Any:
        return asyncio.Task(coro, loop=loop, **kwargs)

    before = dict(vars(asyncio.BaseEventLoop))
    methods = FactoryMethods()
    loop = OwnCreate()
    try:
        state = methods.install(loop)
        assert state.on_class and not state.by_class and in_place(state)
        loop.set_task_factory(user)
        assert loop.get_task_factory() is user and state.inner is user
        with pytest.raises(TypeError, match="callable or None"):
            loop.set_task_factory(1)  # type: ignore[arg-type]
        methods.remove(state)
        assert loop.get_task_factory() is user
        assert not in_place(state)
    finally:
        methods.restore()
        loop.close()
    for name in ("create_task", "set_task_factory", "get_task_factory"):
        assert vars(asyncio.BaseEventLoop)[name] is before[name]
