"""The plugin's own runner: plain ``async def`` tests and function-scoped async fixtures."""

from __future__ import annotations

import pytest

from tests.helpers import ARGS, ASYNCIO, ASYNCIO_INI, LOOP_SCOPE

FIXTURE_SCOPE = 'loop_scope="module", ' if LOOP_SCOPE == "loop_scope" else ""


def test_async_fixtures_of_both_kinds_run_on_the_tests_loop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import contextvars
        import pytest

        EVENTS = []
        VAR = contextvars.ContextVar("VAR", default="unset")

        @pytest.fixture
        async def coroutine_fixture():
            await asyncio.sleep(0)
            VAR.set("set by fixture")
            return asyncio.get_running_loop()

        @pytest.fixture
        async def generator_fixture():
            loop = asyncio.get_running_loop()
            EVENTS.append("setup")
            yield loop
            await asyncio.sleep(0)
            EVENTS.append(("teardown", asyncio.get_running_loop() is loop))

        async def test_fixtures(coroutine_fixture, generator_fixture):
            loop = asyncio.get_running_loop()
            assert coroutine_fixture is loop
            assert generator_fixture is loop
            assert VAR.get() == "set by fixture"

        async def test_fresh_loop_per_test(generator_fixture):
            assert generator_fixture is asyncio.get_running_loop()

        def test_teardowns_ran_on_the_same_loop():
            assert EVENTS == ["setup", ("teardown", True)] * 2
        """
    )
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_each_test_gets_a_fresh_loop_that_is_closed_afterwards(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        LOOPS = []

        async def test_one():
            LOOPS.append(asyncio.get_running_loop())

        async def test_two():
            LOOPS.append(asyncio.get_running_loop())

        def test_loops():
            assert LOOPS[0] is not LOOPS[1]
            assert all(loop.is_closed() for loop in LOOPS)
        """
    )
    pytester.runpytest(*ARGS).assert_outcomes(passed=3)


def test_async_fixture_teardown_that_yields_twice_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        async def twice():
            yield 1
            yield 2

        async def test_it(twice):
            pass
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*RuntimeError: async fixture 'twice' yielded more than once"])


def test_a_failing_async_test_fails_with_its_own_traceback(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        async def test_fails():
            raise ValueError("boom")
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(['*raise ValueError("boom")', "E       ValueError: boom"])


@pytest.mark.parametrize("scope", ["module", "session", "class"])
def test_wider_scoped_async_fixture_says_which_plugin_to_install(
    pytester: pytest.Pytester, scope: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.fixture(scope="{scope}")
        async def shared():
            return 1

        async def test_it(shared):
            pass
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*async fixture 'shared' has scope '{scope}', but pytest-asynccheck's own runner "
            "runs only function-scoped async fixtures*Install pytest-asyncio*"
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_async_fixture_used_by_a_sync_test_runs_on_its_own_loop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        async def value():
            await asyncio.sleep(0)
            return 42

        def test_sync(value):
            assert value == 42
        """
    )
    pytester.runpytest(*ARGS).assert_outcomes(passed=1)


def test_tests_claimed_by_pytest_asyncio_keep_its_fixture_handling(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n" + ASYNCIO_INI)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import pytest_asyncio

        @pytest_asyncio.fixture({FIXTURE_SCOPE}scope="module")
        async def module_loop():
            return asyncio.get_running_loop()

        @pytest.mark.asyncio({LOOP_SCOPE}="module")
        async def test_module(module_loop):
            assert module_loop is asyncio.get_running_loop()

        @pytest.fixture
        async def standalone_fixture():
            return asyncio.get_running_loop()

        async def test_unclaimed(standalone_fixture):
            assert standalone_fixture is asyncio.get_running_loop()
        """.replace("{LOOP_SCOPE}", LOOP_SCOPE).replace("{FIXTURE_SCOPE}", FIXTURE_SCOPE)
    )
    pytester.runpytest(*ARGS, *ASYNCIO).assert_outcomes(passed=2)


def test_async_generator_tests_are_not_taken(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        async def test_agen():
            yield
        """
    )
    result = pytester.runpytest(*ARGS)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


@pytest.mark.parametrize(
    ("args", "ini", "kept"),
    [
        pytest.param((), "", True, id="standalone-tests"),
        pytest.param(ASYNCIO, "[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI, False, id="claimed"),
    ],
)
def test_the_standalone_runner_stays_only_when_a_test_may_need_it(
    pytester: pytest.Pytester, args: tuple[str, ...], ini: str, kept: bool
) -> None:
    if ini:
        pytester.makeini(ini)
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        async def value():
            return 42

        def pytest_sessionfinish(session):
            plugin = session.config.pluginmanager.get_plugin("asynccheck-standalone")
            print(f"standalone runner registered: {plugin is not None}")
        """
    )
    pytester.makepyfile(
        """
        async def test_it(value):
            assert value == 42
        """
    )
    result = pytester.runpytest(*ARGS, *args, "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*standalone runner registered: {kept}"])
