"""Plain unit tests of the value types and the detector registry."""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import sys
import types

import pytest

import pytest_asynccheck
from pytest_asynccheck import _frames as frames
from pytest_asynccheck._allow import unknown_allow_entry
from pytest_asynccheck._events import EVENTS, Detector, Detectors
from pytest_asynccheck._findings import Finding, Kind, Severity, merge_into
from pytest_asynccheck._session import CheckSession
from pytest_asynccheck._standalone import LoopRunner


def test_public_names_are_exactly_all() -> None:
    public = {
        name
        for name, value in vars(pytest_asynccheck).items()
        if not name.startswith(("_", "@")) and not isinstance(value, types.ModuleType)
    }
    assert public - {"annotations"} == set(pytest_asynccheck.__all__) - {"__version__"}


def test_finding_round_trips_through_builtins() -> None:
    finding = Finding(
        kind="blocking",
        message="m",
        file="a.py",
        line=3,
        stack=("a.py:1 in f",),
        duration=0.5,
        extra={"x": [1]},
    )
    data = finding.to_dict()
    assert data["stack"] == ["a.py:1 in f"]
    assert Finding.from_dict(data) == finding
    assert Finding.from_dict({**data, "unknown": 1}) == finding


def test_finding_keeps_kind_and_severity_plain_strings_that_execnet_carries() -> None:
    # pytest-xdist moves findings with execnet, which serializes exact builtins only.
    execnet = pytest.importorskip("execnet")
    finding = Finding(kind=Kind.BLOCKING.value, message="m", severity=Severity.ACCEPTED.value)
    data = finding.to_dict()
    assert type(data["kind"]) is str and type(data["severity"]) is str
    assert execnet.loads(execnet.dumps(data)) == data
    with pytest.raises(execnet.DataFormatError):
        execnet.dumps({**data, "severity": Severity.ACCEPTED})
    assert finding.kind_enum is Kind.BLOCKING
    assert finding.severity_enum is Severity.ACCEPTED
    assert finding.baseline_key == ("blocking", "", "", "")


def test_same_site_findings_merge_with_a_count_and_the_longest_duration() -> None:
    findings: list[Finding] = []
    merge_into(findings, Finding(kind="blocking", message="m", file="a.py", line=3, duration=0.1))
    merge_into(findings, Finding(kind="blocking", message="m", file="a.py", line=3, duration=0.4))
    merge_into(findings, Finding(kind="blocking", message="m", file="a.py", line=3))
    merge_into(findings, Finding(kind="blocking", message="m", file="a.py", line=4))
    assert [(f.line, f.count, f.duration) for f in findings] == [(3, 3, 0.4), (4, 1, None)]


def test_render_without_location_or_fix() -> None:
    text = Finding(kind="unawaited", message="coroutine 'x' was never awaited").render()
    assert text == "[unawaited] coroutine 'x' was never awaited\n  at <unknown>"
    assert Finding(kind="k", message="m", file="f.py").location == "f.py"


class Recorder(Detector):
    def __init__(self) -> None:
        self.events: list[str] = []

    def test_started(self, test: object) -> None:
        self.events.append("test_started")

    def test_finished(self, test: object) -> None:
        self.events.append("test_finished")


def subscribed(detectors: Detectors, event: str) -> bool:
    """Whether any detector subscribed to ``event`` (an event nobody overrides costs nothing)."""
    return bool(detectors._subscribers[event])


def test_registry_calls_only_the_overridden_events() -> None:
    recorder = Recorder()
    detectors = Detectors([recorder])
    assert [e for e in EVENTS if subscribed(detectors, e)] == ["test_started", "test_finished"]
    for event in EVENTS:
        detectors.emit(event, None)
    assert recorder.events == ["test_started", "test_finished"]
    assert list(detectors) == [recorder]
    detectors.remove(recorder)
    assert not subscribed(detectors, "test_started")


class CallOnly(Detector):
    phases: tuple[str, ...] = ("call",)

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def phase_started(self, test: object, phase: str) -> None:
        self.seen.append(("started", phase))

    def phase_finished(self, test: object, phase: str) -> None:
        self.seen.append(("finished", phase))


def test_phase_events_reach_only_the_phases_a_detector_names() -> None:
    call_only, every = CallOnly(), CallOnly()
    every.phases = ("setup", "call", "teardown")
    detectors = Detectors([call_only, every])
    for phase in ("setup", "call", "teardown"):
        detectors.emit_phase("phase_started", None, phase)  # type: ignore[arg-type]
        detectors.emit_phase("phase_finished", None, phase)  # type: ignore[arg-type]
    assert call_only.seen == [("started", "call"), ("finished", "call")]
    assert [phase for _, phase in every.seen] == ["setup"] * 2 + ["call"] * 2 + ["teardown"] * 2
    detectors.remove(every)
    detectors.emit_phase("phase_started", None, "setup")  # type: ignore[arg-type]
    assert len(every.seen) == 6


class Steps(Detector):
    def __init__(self, test_steps_only: bool) -> None:
        self.test_steps_only = test_steps_only
        self.seen: list[tuple[str, str]] = []

    def task_entered(self, test: object, loop: object, where: str) -> None:
        self.seen.append(("entered", where))

    def task_exited(self, test: object, loop: object, where: str) -> None:
        self.seen.append(("exited", where))


def step(detectors: Detectors, event: str, where: str) -> None:
    """One step's event, dispatched as the session does (its only use of the session is its
    registry)."""
    session = types.SimpleNamespace(detectors=detectors)
    check = types.SimpleNamespace()
    dispatch = CheckSession.enter_task if event == "task_entered" else CheckSession.exit_task
    dispatch(session, check, where)  # type: ignore[arg-type]


def test_a_fixtures_steps_reach_only_the_detectors_that_want_them() -> None:
    body_only, every = Steps(test_steps_only=True), Steps(test_steps_only=False)
    detectors = Detectors([body_only, every])
    for where in ("fixture db", "test", "fixture db"):
        step(detectors, "task_entered", where)
        step(detectors, "task_exited", where)
    assert body_only.seen == [("entered", "test"), ("exited", "test")]
    assert every.seen == [
        (event, where)
        for where in ("fixture db", "test", "fixture db")
        for event in ("entered", "exited")
    ]
    detectors.remove(every)
    step(detectors, "task_entered", "fixture db")
    assert len(every.seen) == 6


class Exploding(Detector):
    name = "exploding"

    def __init__(self, fail_cleanup: bool) -> None:
        self.fail_cleanup = fail_cleanup
        self.cleaned = False

    def phase_started(self, test: object, phase: str) -> None:
        raise ValueError("bug")

    def session_finished(self, session: object) -> None:
        self.cleaned = True
        if self.fail_cleanup:
            raise OSError("cleanup bug")


@pytest.mark.parametrize("fail_cleanup", [False, True])
def test_a_raising_detector_is_disabled_cleaned_up_and_logged(
    caplog: pytest.LogCaptureFixture, fail_cleanup: bool
) -> None:
    exploding = Exploding(fail_cleanup)
    other = Recorder()
    detectors = Detectors([exploding, other], session=object())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="pytest_asynccheck"):
        detectors.emit_phase("phase_started", None, "call")  # type: ignore[arg-type]
        detectors.emit_phase("phase_started", None, "call")  # type: ignore[arg-type]
        detectors.emit("test_started", None)
    assert exploding.cleaned
    assert detectors.disabled == [
        "detector exploding raised ValueError: bug in phase_started; it has been disabled"
    ]
    assert other.events == ["test_started"]
    assert "it has been disabled" in caplog.text
    assert ("cleanup of exploding failed" in caplog.text) is fail_cleanup


def test_user_files_exclude_the_stdlib_site_packages_and_the_plugin() -> None:
    assert frames.is_user_file(__file__)
    assert not frames.is_user_file(asyncio.__file__)
    assert not frames.is_user_file(pytest.__file__)
    assert not frames.is_user_file(frames.__file__)
    assert not frames.is_user_file("<frozen importlib._bootstrap>")
    assert not frames.is_user_file("")


def test_origin_tells_the_machinery_imports_libraries_and_the_user_apart() -> None:
    import linecache
    import selectors

    origin, Origin = frames.origin, frames.Origin
    stdlib = os.path.dirname(os.__file__)
    assert origin(__file__) is Origin.USER
    assert origin(frames.__file__) is Origin.PLUGIN
    assert origin(asyncio.base_events.__file__) is Origin.MACHINERY
    assert origin(selectors.__file__) is Origin.MACHINERY
    # Handle._run calls the user's callbacks: it is not the machinery.
    assert origin(asyncio.events.__file__) is Origin.STDLIB
    assert origin(os.path.join(stdlib, "json", "decoder.py")) is Origin.STDLIB
    assert origin("<string>") is Origin.STDLIB
    assert origin("<frozen importlib._bootstrap>") is Origin.FROZEN
    assert origin(linecache.__file__) is Origin.FROZEN
    assert origin(pytest.__file__) is Origin.THIRD_PARTY
    site = os.path.join(os.sep, "somewhere", "dist-packages", "lib.py")
    assert origin(site) is Origin.THIRD_PARTY
    coverage = os.path.join(os.sep, "v", "site-packages", "coverage", "control.py")
    assert origin(coverage) is Origin.COVERAGE
    # Under an interpreter's lib directory but neither its stdlib nor site-packages.
    assert origin(os.path.join(sys.prefix, "lib", "loose.py")) is Origin.THIRD_PARTY
    assert not frames.is_user_file(os.path.join(sys.prefix, "lib", "loose.py"))


def test_user_frame_and_chain_point_at_this_test() -> None:
    def helper() -> tuple[object, tuple[str, ...]]:
        frame = sys._getframe()
        return frames.user_frame(frames.walk(frame)), frames.user_chain(frame)

    found, chain = helper()
    assert found is not None
    here = os.path.relpath(__file__)
    assert chain[-1].startswith(f"{here}:") and chain[-1].endswith(" in helper")
    assert chain[-2].endswith(" in test_user_frame_and_chain_point_at_this_test")
    assert frames.user_frame(iter(())) is None
    assert frames.relpath("/elsewhere/x.py", os.path.dirname(__file__)) == "/elsewhere/x.py"


def test_qualified_name_reads_qualname_then_name_then_the_default() -> None:
    class Proto:
        def connection_made(self) -> None: ...

    nameless = types.SimpleNamespace()
    assert frames.qualified_name(Proto.connection_made).endswith("Proto.connection_made")
    assert frames.qualified_name(types.SimpleNamespace(__name__="boom")) == "boom"
    assert frames.qualified_name(nameless) == "SimpleNamespace"
    assert frames.qualified_name(nameless, default="?") == "?"


def test_loop_runner_shares_one_loop_and_closes_it() -> None:
    runner = LoopRunner()

    async def loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    first = runner.run(loop())
    assert runner.run(loop()) is first
    runner.close()
    assert first.is_closed()


def test_set_on_instance_tells_an_instance_clock_from_the_class_method() -> None:
    import asyncio

    from pytest_asynccheck import _clock

    loop = asyncio.new_event_loop()
    try:
        assert not _clock.set_on_instance(loop, "time")
        loop.time = lambda: 0.0  # type: ignore[method-assign]
        assert _clock.set_on_instance(loop, "time")
        del loop.time
        assert not _clock.set_on_instance(loop, "time")
        assert not _clock.set_on_instance(loop._selector, "select")  # type: ignore[attr-defined]
    finally:
        loop.close()


def test_the_creating_line_skips_awaited_calls_and_looks_into_comprehensions(
    tmp_path: pathlib.Path,
) -> None:
    import textwrap

    from pytest_asynccheck.detectors.unawaited import creating_line

    source = textwrap.dedent(
        """
        async def body(urls):
            await fetch(0)
            pending = [fetch(u) for u in urls]
            other = fetch(1)
            return pending, other
        """
    )
    path = tmp_path / "made.py"
    path.write_text(source)
    namespace: dict[str, object] = {}
    exec(compile(source, str(path), "exec"), namespace)
    code = namespace["body"].__code__  # type: ignore[attr-defined]
    first = code.co_firstlineno
    assert creating_line(code, "fetch", first + 4) == first + 3  # the last one before the drop
    assert creating_line(code, "fetch", first + 2) == first + 2  # in the comprehension
    # The awaited call is never the creator: the first unawaited one after it is.
    assert creating_line(code, "fetch", first + 1) == first + 2
    assert creating_line(code, "nothing", first + 4) is None


@pytest.mark.parametrize(
    ("entry", "known"),
    [
        ("os.path.join", True),  # a module already imported: looked into
        ("os.path.no_such_function", False),
        ("os.no_such_module.call", False),  # a standard library module that does not import
        ("asynccheck_vendored_client.fetch", True),  # found on the path, never imported
        ("asynccheck_no_such_package.sub.call", False),  # its parent package is not found
    ],
)
def test_an_allow_entry_naming_a_function_is_found_without_importing_the_code_under_test(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, entry: str, known: bool
) -> None:
    (tmp_path / "asynccheck_vendored_client.py").write_text("raise AssertionError\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    problem = unknown_allow_entry(entry)
    assert (problem is None) is known
    assert "asynccheck_vendored_client" not in sys.modules


def test_each_plugin_object_lists_its_hooks_and_every_one_is_registered(
    pytester: pytest.Pytester,
) -> None:
    """pytest reads what ``dir()`` lists of a registered object (for hooks and fixtures):
    the plugin's objects list their ``pytest_*`` methods only, and each is registered."""
    pytester.makeconftest(
        """
        def pytest_sessionfinish(session):
            manager = session.config.pluginmanager
            for name, plugin in sorted(manager.list_name_plugin(), key=lambda pair: pair[0]):
                if not name.startswith("asynccheck-"):
                    continue
                hooks = sorted(n for n in vars(type(plugin)) if n.startswith("pytest_"))
                for base in type(plugin).__mro__[1:]:
                    hooks += [n for n in vars(base) if n.startswith("pytest_")]
                listed = sorted(dir(plugin))
                registered = sorted(
                    caller.name for caller in manager.get_hookcallers(plugin) or ()
                )
                print("PLUGIN", name, listed == sorted(set(hooks)) == registered, listed)
        """
    )
    pytester.makepyfile("async def test_it():\n    pass\n")
    result = pytester.runpytest("-p", "asynccheck", "--asynccheck", "-s")
    result.assert_outcomes(passed=1)
    lines = [line[line.index("PLUGIN") :] for line in result.outlines if "PLUGIN" in line]
    assert {line.split()[1] for line in lines} >= {
        "asynccheck-checks",
        "asynccheck-summary",
        "asynccheck-interrupt",
        "asynccheck-timeout-trees",
    }
    assert all(line.split()[2] == "True" for line in lines), lines


def test_a_stalls_own_time_leaves_out_the_waits_for_a_cpu_of_the_turns_around_it() -> None:
    from pytest_asynccheck.detectors.blocking.stalls import _own_time
    from pytest_asynccheck.detectors.blocking.stuck import Stall

    ms = 1_000_000  # nanoseconds

    def stall(waited_at: float | None, waited: int | None, seen_at: float, seen: int) -> Stall:
        return Stall(0.0, None, 0.0, waited, waited_at, seen_waiting=(seen_at, seen))

    # Last answer read at 10.0 with 100 ms waited; the turn began at 10.2 and was seen stuck
    # at 10.3 (300 ms waited), ended at 12.3 with 2,260 ms waited: 2 s seen, 1.96 s of it
    # waiting, and of the 0.1 s before, at least 0.1 - 0.2 (more waited than passed): none.
    own = _own_time(stall(10.0, 100 * ms, 10.3, 300 * ms), 10.2, (12.3, 2260 * ms))
    assert own == pytest.approx(0.04)
    # Not waiting at all: the whole turn is its own.
    assert _own_time(stall(10.0, 0, 10.3, 0), 10.2, (12.3, 0)) == pytest.approx(2.1)
    # The last answer was read inside the turn: its start up to that reading is not counted.
    assert _own_time(stall(10.25, 0, 10.3, 0), 10.2, (10.5, 0)) == pytest.approx(0.25)
    # Seen before any reading (before the step's first heartbeat): no waits known before.
    assert _own_time(stall(None, None, 10.3, 0), 10.2, (10.5, 150 * ms)) == pytest.approx(0.15)


class RaisingOnSteps(Detector):
    name = "raising-on-steps"

    def test_started(self, test: object) -> None:
        raise KeyError("started")

    def task_exited(self, test: object, loop: object, where: str) -> None:
        raise LookupError("exited")


@pytest.mark.parametrize("event", ["test_started", "task_exited"])
def test_a_detector_raising_in_an_event_or_a_step_is_disabled_for_every_event(
    caplog: pytest.LogCaptureFixture, event: str
) -> None:
    raising, steps = RaisingOnSteps(), Steps(test_steps_only=False)
    detectors = Detectors([raising, steps])
    with caplog.at_level(logging.ERROR, logger="pytest_asynccheck"):
        if event == "test_started":
            detectors.emit("test_started", None)
        else:
            step(detectors, "task_exited", "fixture db")
    raised = "KeyError: 'started'" if event == "test_started" else "LookupError: exited"
    assert detectors.disabled == [
        f"detector raising-on-steps raised {raised} in {event}; it has been disabled"
    ]
    # Gone from every event, steps of the body and of fixtures included.
    assert raising not in list(detectors)
    seen = len(steps.seen)
    detectors.emit("test_started", None)
    for where in ("test", "fixture db"):
        step(detectors, "task_exited", where)
    assert steps.seen[seen:] == [("exited", "test"), ("exited", "fixture db")]
    assert len(detectors.disabled) == 1  # nothing raised again
