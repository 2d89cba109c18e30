"""Async fixtures are checked like the test body, whoever runs them: a finding made in a
fixture's setup or teardown names the fixture and the step, sits at the fixture's line and fails
the test that requested it in that phase; tasks a fixture starts are judged when it is torn
down; and correct fixtures pass."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_asynccheck._fixtures import collection_wrapper_cell
from pytest_asynccheck.detectors.task_findings import FIXTURE_LEAK_FIX, LEAK_FIX
from tests.helpers import (
    ANYIO,
    ARGS,
    ASYNCIO,
    ASYNCIO_INI,
    PYTEST_ASYNCIO_0_23,
    PYTEST_ASYNCIO_COLLECTION_WRAPPERS,
    for_pytest_asyncio,
)

TRIO = ("-p", "trio")


@dataclass(frozen=True)
class Runner:
    """How an inner run declares its async fixtures and tests."""

    name: str
    plugins: tuple[str, ...]
    ini: str
    header: str
    fixture: str
    test_mark: str
    #: Whether tasks are asyncio tasks (leaks, lost exceptions and unclosed resources are
    #: checked on asyncio loops).
    asyncio: bool = True
    #: pytest-trio runs fixtures' setup and teardown in the call phase.
    trio_phases: bool = False
    #: pytest-asyncio 0.23's session loop serves session fixtures only: their teardowns all
    #: come at the session's end, on its last test.
    teardown_at_end: bool = False


def _asyncio_runner(mode: str, loop_scope: str) -> Runner:
    if PYTEST_ASYNCIO_0_23:
        # 0.23 runs a fixture on the loop of its own scope, and knows the marker's ``scope``.
        return Runner(
            f"asyncio-{mode}-{loop_scope}",
            ASYNCIO,
            f"asyncio_mode = {mode}\n",
            "import pytest_asyncio" if mode == "strict" else "",
            f"@{'pytest_asyncio' if mode == 'strict' else 'pytest'}.fixture(scope={loop_scope!r})",
            f"@pytest.mark.asyncio(scope={loop_scope!r})",
            teardown_at_end=loop_scope == "session",
        )
    if mode == "strict":
        return Runner(
            f"asyncio-strict-{loop_scope}",
            ASYNCIO,
            "asyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n",
            "import pytest_asyncio",
            f"@pytest_asyncio.fixture(loop_scope={loop_scope!r})",
            f"@pytest.mark.asyncio(loop_scope={loop_scope!r})",
        )
    return Runner(
        f"asyncio-auto-{loop_scope}",
        ASYNCIO,
        "asyncio_mode = auto\n"
        f"asyncio_default_fixture_loop_scope = {loop_scope}\n"
        f"asyncio_default_test_loop_scope = {loop_scope}\n",
        "",
        "@pytest.fixture",
        "",
    )


RUNNERS = [
    Runner("standalone", (), "", "", "@pytest.fixture", ""),
    *(_asyncio_runner(m, s) for m in ("strict", "auto") for s in ("function", "module", "session")),
    Runner(
        "anyio-asyncio",
        (*ANYIO, "-p", "no:asyncio"),
        "",
        "@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n",
        "@pytest.fixture",
        "@pytest.mark.anyio",
    ),
    Runner(
        "anyio-trio",
        (*ANYIO, "-p", "no:asyncio"),
        "",
        "@pytest.fixture\ndef anyio_backend():\n    return 'trio'\n",
        "@pytest.fixture",
        "@pytest.mark.anyio",
        asyncio=False,
    ),
    Runner(
        "pytest-trio",
        (*TRIO, "-p", "no:asyncio"),
        "",
        "",
        "@pytest.fixture",
        "@pytest.mark.trio",
        asyncio=False,
        trio_phases=True,
    ),
]

#: What a fixture does in the step under check, the finding's kind and the text it shows;
#: ``# HERE`` marks the line the finding must name.
CHECKS = {
    "blocking": (
        "time.sleep(0.01)  # HERE",
        "blocking",
        "blocking call time.sleep()",
    ),
    "stall": (
        "spin(0.4)  # HERE",  # four thresholds: a loaded machine may delay the watchdog
        "blocking",
        "the event loop was stalled for at least",
    ),
    "unawaited": ("helper()  # HERE", "unawaited", "coroutine 'helper' was never awaited"),
    "leaked": (
        "asyncio.create_task(forever())  # HERE",
        "leaked-task",
        "running forever() was still pending when fixture 'fx' was torn down",
    ),
    "lost": (
        "asyncio.create_task(boom())\n    await asyncio.sleep(0.05)",
        "never-retrieved",
        "running boom() raised ValueError: lost, and the exception was never retrieved",
    ),
    "unclosed": (
        "socket.socket()  # HERE",
        "unclosed",
        "socket.socket made here was freed while still open: it was never closed",
    ),
}

PRELUDE = """\
import asyncio
import socket
import time

import pytest
{header}

def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:  # SPIN
        pass

async def helper():
    pass

async def forever():
    while True:
        await asyncio.sleep(0.01)

async def boom():
    raise ValueError("lost")  # BOOM

"""

FIXTURE = """\
{decorator}
async def fx():
    {setup}
    yield 1
    {teardown}

{test_mark}
async def test_it(fx):
    assert fx == 1
"""

#: A fixture that is a coroutine function: it has a setup only.
COROUTINE_FIXTURE = """\
{decorator}
async def fx():
    {setup}
    return 1

{test_mark}
async def test_it(fx):
    assert fx == 1
"""

GOOD = """\
{decorator}
async def fx():
    task = asyncio.create_task(forever())
    await asyncio.to_thread(time.sleep, 0.01)
    yield 1
    await asyncio.to_thread(time.sleep, 0.01)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass

{test_mark}
async def test_it(fx):
    await asyncio.sleep(0)
"""

TRIO_GOOD = """\
import trio

{decorator}
async def fx():
    await trio.to_thread.run_sync(time.sleep, 0.01)
    yield 1
    await trio.sleep(0)

{test_mark}
async def test_it(fx):
    assert fx == 1
"""


def _line_of(source: str, marker: str) -> int:
    return next(n for n, line in enumerate(source.splitlines(), 1) if marker in line)


def _finding_in(output: str, nodeid: str, phase: str, kind: str, first: str, rest: str) -> bool:
    """Whether the report of ``nodeid``'s ``phase`` holds a ``kind`` finding whose line shows
    ``first`` and ends with ``rest``'s first line, followed by ``rest``'s second line."""
    head = re.search(rf"asynccheck found \d+ problems? in {re.escape(nodeid)} \({phase}\):", output)
    if head is None:
        return False
    section = output[head.end() :].split("\nasynccheck found ", 1)[0].split("\n_____", 1)[0]
    ending, where = rest.split("\n")
    for finding in section.split(f"\n[{kind}] ")[1:]:
        line, at = [*finding.split("\n"), ""][:2]
        if first in line and line.endswith(ending) and at == where:
            return True
    return False


# Each inner run frees sockets, tasks and coroutines across its fixtures' steps; on a loaded
# machine one of them was once freed a phase late (seen once in hundreds of runs of the matrix).
@pytest.mark.flaky(reruns=2)
@pytest.mark.parametrize("runner", RUNNERS, ids=[r.name for r in RUNNERS])
def test_each_check_sees_async_fixtures_in_setup_and_teardown(
    pytester: pytest.Pytester, runner: Runner
) -> None:
    pytester.makeini("[pytest]\n" + runner.ini)
    prelude = PRELUDE.format(header=runner.header)
    cases = []
    files = {}
    for check, (code, kind, text) in CHECKS.items():
        if kind in ("leaked-task", "never-retrieved", "unclosed") and not runner.asyncio:
            continue
        for variant in ("setup", "teardown", "coroutine"):
            if variant == "coroutine" and check == "stall":
                continue  # the watchdog sees a thread, whatever runs on it: one stall less
            step = "teardown" if variant == "teardown" else "setup"
            body = (COROUTINE_FIXTURE if variant == "coroutine" else FIXTURE).format(
                decorator=runner.fixture,
                test_mark=runner.test_mark,
                setup=code if step == "setup" else "pass",
                teardown=code if step == "teardown" else "pass",
            )
            source = prelude + body
            name = f"test_{check}_{variant}"
            files[name] = source
            marker = {"stall": "# SPIN", "lost": "# BOOM"}.get(check, "# HERE")
            function = {"stall": "spin", "lost": "boom"}.get(check, "fx")
            line = _line_of(source, marker)
            cases.append((name, kind, text, step, line, function))
    good = TRIO_GOOD if not runner.asyncio else GOOD
    files["test_good"] = prelude + good.format(decorator=runner.fixture, test_mark=runner.test_mark)
    pytester.makepyfile(**files)
    result = pytester.runpytest(*ARGS, *runner.plugins, "-p", "no:randomly")
    output = result.stdout.str()
    last = f"{max(files)}.py::test_it"
    reported: set[tuple[str, str]] = set()
    for name, kind, text, step, line, function in cases:
        # A leak is judged when the fixture is torn down, wherever its task was started.
        phase = "teardown" if kind == "leaked-task" else step
        if runner.trio_phases:
            phase = "call"
        nodeid = last if phase == "teardown" and runner.teardown_at_end else f"{name}.py::test_it"
        reported.add((nodeid, phase))
        where = f", in fixture 'fx' ({step})\n  at {name}.py:{line} in {function}"
        assert _finding_in(output, nodeid, phase, kind, text, where), (name, output)
    if any(kind == "leaked-task" for _, kind, *_ in cases):
        # The fixture's own teardown is where its task is stopped, not the test.
        assert f"  fix: {FIXTURE_LEAK_FIX}\n" in output
        assert f"  fix: {LEAK_FIX}\n" not in output
    outcomes = result.parseoutcomes()
    outcomes.pop("warnings", None)  # pytest's own, about re-imported plugins in-process
    tests = len(files)
    failed = {nodeid for nodeid, phase in reported if phase != "teardown"}
    if runner.trio_phases:
        assert outcomes == {"failed": len(failed), "passed": tests - len(failed)}, output
    else:
        # A test whose fixture failed in its teardown passed first, as pytest counts.
        assert outcomes == {"errors": len(reported), "passed": tests - len(failed)}, output
    assert "test_good.py::test_it" not in output


def test_a_wider_fixture_reports_once_on_the_test_it_set_up_or_tore_down_in(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n" + ASYNCIO_INI)
    pytester.makepyfile(
        for_pytest_asyncio(
            """
            import asyncio
            import time
            import pytest
            import pytest_asyncio

            @pytest_asyncio.fixture(scope="module", loop_scope="module")
            async def shared():
                time.sleep(0.01)
                yield 1
                time.sleep(0.02)

            @pytest.mark.asyncio(loop_scope="module")
            async def test_first(shared):
                pass

            @pytest.mark.asyncio(loop_scope="module")
            async def test_second(shared):
                pass

            @pytest.mark.asyncio(loop_scope="module")
            async def test_last(shared):
                pass
            """
        )
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO, "-p", "no:randomly", "-v")
    result.stdout.fnmatch_lines(
        [
            "*::test_first ERROR*",
            "*::test_second PASSED*",
            "*::test_last PASSED*",
            "*::test_last ERROR*",
        ]
    )
    output = result.stdout.str()
    file = "test_a_wider_fixture_reports_once_on_the_test_it_set_up_or_tore_down_in.py"
    assert output.count("[blocking] blocking call time.sleep()") == 2
    result.stdout.fnmatch_lines(
        [
            f"asynccheck found 1 problem in {file}::test_first (setup):",
            "[[]blocking[]] blocking call time.sleep()*, in fixture 'shared' (setup)",
            f"  at {file}:8 in shared",
            f"asynccheck found 1 problem in {file}::test_last (teardown):",
            "[[]blocking[]] blocking call time.sleep()*, in fixture 'shared' (teardown)",
            f"  at {file}:10 in shared",
        ]
    )


def test_a_session_fixture_task_may_live_across_tests_until_its_teardown(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n" + ASYNCIO_INI)
    pytester.makepyfile(
        for_pytest_asyncio(
            """
            import asyncio
            import pytest
            import pytest_asyncio

            TICKS = []

            async def ticker():
                while True:
                    TICKS.append(1)
                    await asyncio.sleep(0.001)

            @pytest_asyncio.fixture(scope="session", loop_scope="session")
            async def server():
                task = asyncio.create_task(ticker())
                yield task
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

            @pytest.mark.asyncio(loop_scope="session")
            async def test_one(server):
                await asyncio.sleep(0.01)
                assert not server.done()

            @pytest.mark.asyncio(loop_scope="session")
            async def test_two(server):
                await asyncio.sleep(0.01)
                assert not server.done() and TICKS
            """
        )
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO)
    result.assert_outcomes(passed=2)


USER_SWITCHES = """
import asyncio
import sys

import pytest

CALLS = []

def my_factory(loop, coro, **kwargs):
    CALLS.append("factory")
    return asyncio.Task(coro, loop=loop, **kwargs)

def my_handler(loop, context):
    CALLS.append("handler: " + context["message"])

async def forever():
    await asyncio.sleep(3600)

async def boom():
    raise ValueError("lost")

async def test_own_factory():
    loop = asyncio.get_running_loop()
    with pytest.raises(TypeError):
        loop.set_task_factory(1)
    loop.set_task_factory(my_factory)
    assert loop.get_task_factory() is my_factory
    asyncio.create_task(forever())  # LEAK
    await asyncio.sleep(0)

async def test_own_handler():
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(my_handler)
    asyncio.create_task(boom())
    await asyncio.sleep(0.01)
    assert loop.get_exception_handler() is my_handler

async def test_no_handler():
    asyncio.get_running_loop().set_exception_handler(None)
    asyncio.create_task(boom())
    await asyncio.sleep(0.01)

@pytest.fixture
async def app():
    # Start-up code of an application, run by a fixture: its factory stays on the loop.
    asyncio.get_running_loop().set_task_factory(my_factory)
    yield

async def test_factory_of_a_fixture(app):
    asyncio.create_task(forever())  # FIXTURE LEAK
    await asyncio.sleep(0)

async def test_switch_interval():
    sys.setswitchinterval(2.5)

def test_user_code_still_ran():
    # The factory the test left is the loop's, and makes the tasks that close it too.
    assert CALLS[0] == "factory"
    assert [call for call in CALLS if call != "factory"] == [
        "handler: Task exception was never retrieved"
    ]
    assert sys.getswitchinterval() != 2.5
"""


#: (plugins, ini, a line in place of a blank one): the standalone runner's loop per test,
#: pytest-asyncio's, and anyio's runner, whose loop all the module's tests share.
SWITCH_RUNNERS = {
    "standalone": ((), "", ""),
    "pytest-asyncio": (ASYNCIO, "asyncio_mode = auto\n" + ASYNCIO_INI, ""),
    "anyio-asyncio": (
        (*ANYIO, "-p", "no:asyncio"),
        "",
        "pytestmark = pytest.mark.anyio; anyio_backend = pytest.fixture(lambda: 'asyncio')",
    ),
}


@pytest.mark.parametrize("runner", SWITCH_RUNNERS)
def test_code_under_test_cannot_switch_the_checks_off(
    pytester: pytest.Pytester, runner: str
) -> None:
    plugins, ini, line = SWITCH_RUNNERS[runner]
    pytester.makeini("[pytest]\n" + ini)
    source = USER_SWITCHES.replace("import pytest\n\n", f"import pytest\n{line}\n", 1)
    pytester.makepyfile(test_switches=source)
    result = pytester.runpytest(*ARGS, *plugins, "-p", "no:randomly", "-v")
    leak = _line_of(USER_SWITCHES, "# LEAK") - 1  # the source starts with a blank line
    fixture_leak = _line_of(USER_SWITCHES, "# FIXTURE LEAK") - 1
    raised = _line_of(USER_SWITCHES, 'raise ValueError("lost")') - 1
    result.stdout.fnmatch_lines(
        [
            "*::test_own_factory FAILED*",
            "*::test_own_handler FAILED*",
            "*::test_no_handler FAILED*",
            "*::test_factory_of_a_fixture FAILED*",
            "*::test_switch_interval PASSED*",
            "*::test_user_code_still_ran PASSED*",
        ]
    )
    for test, line_number in (
        ("test_own_factory", leak),
        ("test_factory_of_a_fixture", fixture_leak),
    ):
        result.stdout.fnmatch_lines(
            [
                "[[]leaked-task[]] task * running forever() was still pending when the test "
                "returned",
                f"  at test_switches.py:{line_number} in {test}",
            ]
        )
    assert result.stdout.str().count(f"  at test_switches.py:{raised} in boom") == 2
    result.stdout.fnmatch_lines(
        [
            "*test_switches.py:*: AsynccheckWarning: sys.setswitchinterval(2.5) was left in place"
            " by the test (it was 0.005); asynccheck put it back*"
        ]
    )


@pytest.mark.parametrize("how", ["off", "ini", "cli"])
def test_leaked_tasks_can_be_cancelled_where_they_leaked(
    pytester: pytest.Pytester, how: str
) -> None:
    ini = ASYNCIO_INI
    if how == "ini":
        ini += "asynccheck_cancel_leaked = true\n"
    pytester.makeini("[pytest]\n" + ini)
    source = for_pytest_asyncio(
        """
        import asyncio
        import pytest
        import pytest_asyncio

        LEAKED = []

        async def forever():
            await asyncio.sleep(3600)

        @pytest_asyncio.fixture(loop_scope="module")
        async def leaky():
            LEAKED.append(asyncio.create_task(forever()))
            yield

        @pytest.mark.asyncio(loop_scope="module")
        async def test_body_leaks():
            LEAKED.append(asyncio.create_task(forever()))
            await asyncio.sleep(0)

        @pytest_asyncio.fixture(loop_scope="module")
        async def leaky_coroutine():
            LEAKED.append(asyncio.create_task(forever()))

        @pytest.mark.asyncio(loop_scope="module")
        async def test_fixture_leaks(leaky, leaky_coroutine):
            pass

        @pytest.mark.asyncio(loop_scope="module")
        async def test_later():
            await asyncio.sleep(0)
            print("cancelled:", [task.cancelled() for task in LEAKED])
        """
    )
    if PYTEST_ASYNCIO_0_23:
        # 0.23 runs a function-scoped fixture on the function's loop only: so do the tests.
        source = source.replace('(scope="module")', "")
    pytester.makepyfile(source)
    extra = ("--asynccheck-cancel-leaked",) if how == "cli" else ()
    result = pytester.runpytest(*ARGS, *ASYNCIO, *extra, "-s", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    cancelled = how != "off"
    result.stdout.fnmatch_lines([f"*cancelled: [[]{cancelled}, {cancelled}, {cancelled}[]]*"])
    note = "  cancelled and awaited where it was found (asynccheck_cancel_leaked)"
    assert result.stdout.lines.count(note) == (3 if cancelled else 0)
    if cancelled:
        result.stdout.fnmatch_lines(["asynccheck: *cancel-leaked*"])


def test_a_fixture_method_runs_bound_to_the_test_instance(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n" + ASYNCIO_INI)
    pytester.makepyfile(
        """
        import time
        import pytest
        import pytest_asyncio

        class TestInClass:
            @pytest_asyncio.fixture
            async def fx(self):
                self.seen = True
                yield self

            @pytest_asyncio.fixture
            async def slow(self):
                time.sleep(0.01)

            @pytest.mark.asyncio
            async def test_bound(self, fx):
                assert fx is self and self.seen

            @pytest.mark.asyncio
            async def test_slow(self, slow):
                pass
        """
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "[[]blocking[]] blocking call time.sleep()*, in fixture 'slow' (setup)",
            # The test whose fixture failed its setup was checked too.
            "asynccheck: 1 error, 0 warnings in 1 of 2 checked tests",
        ]
    )


@pytest.mark.parametrize("kind", ["coroutine", "generator"])
def test_an_async_fixture_asked_for_only_by_name_is_checked(
    pytester: pytest.Pytester, kind: str
) -> None:
    """No test names the async fixture as an argument (``request.getfixturevalue`` asks for
    it): a coroutine fixture keeps the per-setup wrapper, a generator fixture is swapped all
    the same."""
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    ending = "return 1" if kind == "coroutine" else "yield 1"
    pytester.makepyfile(
        f"""
        import time
        import pytest

        @pytest.fixture
        async def slow():
            time.sleep(0.01)
            {ending}

        @pytest.fixture
        def chosen(request):
            return request.getfixturevalue("slow")

        async def test_chosen(chosen):
            assert chosen == 1
        """
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_an_async_fixture_asked_for_only_by_name_is_checked.py:6*"])
    result.stdout.fnmatch_lines(
        ["[[]blocking[]] blocking call time.sleep()*, in fixture 'slow' (setup)"]
    )


def test_fixtures_run_as_usual_with_the_task_checks_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        async def started():
            return asyncio.create_task(asyncio.sleep(3600))

        async def test_it(started):
            assert not started.done()
        """
    )
    off = ("--asynccheck-leaked-task=off", "--asynccheck-never-retrieved=off")
    result = pytester.runpytest(*ARGS, *off)
    result.assert_outcomes(passed=1)


def test_a_fixture_generator_passes_on_what_its_runner_throws_in() -> None:
    """The wrapper forwards ``athrow`` and ``aclose`` to the fixture (no runner in use today
    sends them, but an async generator may receive them)."""
    import asyncio
    import functools
    from types import SimpleNamespace

    from pytest_asynccheck._fixtures import checked_fixture_function

    seen: list[str] = []

    async def fixture() -> Any:
        try:
            yield 1
        except KeyError:
            seen.append("thrown")
            yield 2
        finally:
            seen.append("closed")

    session: Any = SimpleNamespace(current=None)
    fixturedef: Any = SimpleNamespace(argname="fixture")
    wrapped = checked_fixture_function(session, fixturedef, fixture, lambda run, t: [], [])

    async def drive() -> None:
        agen = wrapped()
        assert await agen.__anext__() == 1
        assert await agen.athrow(KeyError()) == 2
        await agen.aclose()

    asyncio.run(drive())
    assert seen == ["thrown", "closed"]

    async def add(a: int, b: int) -> int:
        return a + b

    partial = checked_fixture_function(
        session, fixturedef, functools.partial(add, 1), lambda run, t: [], []
    )
    assert partial.__wrapped__.func is add  # type: ignore[attr-defined]
    assert asyncio.run(partial(2)) == 3


def test_a_set_task_factory_the_test_puts_on_the_loop_itself_is_left_alone(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n" + ASYNCIO_INI)
    pytester.makepyfile(
        for_pytest_asyncio(
            """
            import asyncio
            import pytest

            SET = []

            def fake_set_task_factory(factory):
                SET.append(factory)

            async def forever():
                await asyncio.sleep(3600)

            @pytest.mark.asyncio(loop_scope="module")
            async def test_puts_its_own():
                asyncio.get_running_loop().set_task_factory = fake_set_task_factory

            @pytest.mark.asyncio(loop_scope="module")
            async def test_later_leaks():
                loop = asyncio.get_running_loop()
                assert loop.set_task_factory is fake_set_task_factory
                loop.set_task_factory(None)
                task = asyncio.create_task(forever())  # still seen: the factory stayed
                await asyncio.sleep(0)
                assert SET == [None]
                assert not task.done()
            """
        )
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["[[]leaked-task[]] task * running forever() was still pending*"])


def test_a_swapped_fixture_is_the_users_own_again_after_the_run_and_lists_as_before(
    pytester: pytest.Pytester,
) -> None:
    """An async generator fixture's function is swapped for the whole run: ``--fixtures``
    lists it at its own line with its own docstring, and once the run is over the definition
    holds the user's function again."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        async def server():
            \"\"\"A local server for the tests.\"\"\"
            yield 1
        """
    )
    pytester.makepyfile(
        """
        async def test_it(server):
            assert server == 1
        """
    )
    listings = [
        pytester.runpytest(*extra, *ASYNCIO, "--fixtures", "-p", "no:randomly").stdout.lines
        for extra in ((), ARGS)
    ]
    server = [line for line in listings[0] if line.startswith("server")]
    assert server and "conftest.py:" in server[0]
    assert [line for line in listings[1] if line.startswith("server")] == server
    assert "    A local server for the tests." in listings[1]

    reprec = pytester.inline_run(*ARGS, *ASYNCIO, "-p", "no:randomly")
    reprec.assertoutcome(passed=1)
    (call,) = reprec.getcalls("pytest_collection_finish")
    item: Any = call.session.items[0]
    (definition,) = item._fixtureinfo.name2fixturedefs["server"]
    func = definition.func
    if PYTEST_ASYNCIO_COLLECTION_WRAPPERS:
        # Its own sync wrapper stays; the cell it runs holds the user's function again.
        assert collection_wrapper_cell(func) is not None
        func = func.__wrapped__
    assert func.__code__.co_name == "server"
    assert func.__code__.co_filename.endswith("conftest.py")
