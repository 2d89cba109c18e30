"""Tasks a test leaves pending, and task exceptions nobody retrieved, fail the test."""

from __future__ import annotations

import pytest

from pytest_asynccheck._findings import Kind
from pytest_asynccheck.detectors.task_findings import LEAK_FIX, LOST_FIX
from tests.helpers import (
    ANYIO,
    ARGS,
    ASYNCIO,
    ASYNCIO_INI,
    STANDALONE_AND_PYTEST_ASYNCIO,
    anyio_module,
)

KINDS = tuple(kind.value for kind in Kind)

LEAKS = """\
import asyncio
import pytest


async def boom():
    raise ValueError("bad value")


async def test_leaked_sleep():
    asyncio.create_task(asyncio.sleep(10), name="sleeper")


async def test_lost_exception():
    asyncio.create_task(boom())
    await asyncio.sleep(0.01)
"""


@pytest.mark.parametrize("runner", STANDALONE_AND_PYTEST_ASYNCIO)
def test_leaked_task_and_lost_exception_are_reported_with_their_lines(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    if runner:
        pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makepyfile(test_mod=LEAKS)
    result = pytester.runpytest(*ARGS, *runner, "-p", "no:randomly")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_leaked_sleep (call):",
            "?leaked-task? task 'sleeper' running sleep() was still pending when the test returned",
            "  at test_mod.py:10 in test_leaked_sleep",
            "  suspended at asyncio/tasks.py:* in sleep",
            f"  fix: {LEAK_FIX}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_lost_exception (call):",
            "?never-retrieved? task '*' running boom() raised ValueError: bad value, and the "
            "exception was never retrieved",
            "  at test_mod.py:6 in boom",
            "  task created at test_mod.py:14 in test_lost_exception",
            f"  fix: {LOST_FIX}",
        ]
    )
    result.stdout.fnmatch_lines(["ERROR *asyncio*Task exception was never retrieved"])


def test_anyio_leaked_task(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod=anyio_module(
            """
            @pytest.mark.anyio
            async def test_leak(anyio_backend):
                asyncio.create_task(asyncio.sleep(10))
            """
        )
    )
    result = pytester.runpytest(*ARGS, *ANYIO)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["?leaked-task? task *sleep()*", "  at test_mod.py:10 in test_leak"]
    )


def test_correct_task_handling_is_not_flagged(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest
        import pytest_asyncio

        async def work():
            await asyncio.sleep(0)
            return 1

        async def test_awaited_task():
            assert await asyncio.create_task(work()) == 1

        async def test_fire_and_forget_that_completes_cleanly():
            asyncio.create_task(work())
            await asyncio.sleep(0.01)

        async def test_cancelled_and_awaited():
            task = asyncio.create_task(asyncio.sleep(10))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        async def test_exception_retrieved():
            task = asyncio.create_task(asyncio.sleep(0, result=None))
            await task
            failing = asyncio.create_task(asyncio.to_thread(int, "x"))
            with pytest.raises(ValueError):
                await failing

        @pytest_asyncio.fixture(loop_scope="module", scope="module")
        async def background():
            task = asyncio.create_task(asyncio.sleep(3600))
            yield task
            task.cancel()

        @pytest.mark.asyncio(loop_scope="module")
        async def test_fixture_background_task_is_the_fixtures(background):
            assert not background.done()
        """.replace('loop_scope="module", ', "" if not ASYNCIO_INI else 'loop_scope="module", ')
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO)
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["asynccheck: no findings in 5 checked tests"])


ASYNCIO_LOGS = """\
import asyncio
import gc
import logging

import pytest


async def boom():
    raise ValueError("lost")


def first_lines(caplog):
    return [record.getMessage().splitlines()[0] for record in caplog.records]


@pytest.mark.asynccheck(allow=["never-retrieved", "callback-error"])
async def test_asyncio_logs_its_own_messages(caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    loop = asyncio.get_running_loop()
    asyncio.create_task(boom())
    loop.call_soon(lambda: 1 / 0)
    future = loop.create_future()
    future.set_exception(KeyError("future"))
    del future
    await asyncio.sleep(0.01)
    gc.collect()
    messages = first_lines(caplog)
    assert "Task exception was never retrieved" in messages
    assert "Future exception was never retrieved" in messages
    assert any(message.startswith("Exception in callback") for message in messages)


@pytest.mark.asynccheck(allow=["never-retrieved"])
async def test_own_handler_receives_the_context():
    loop = asyncio.get_running_loop()
    assert loop.get_exception_handler() is None
    seen = []

    def handler(loop, context):
        seen.append(context)

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    asyncio.create_task(boom(), name="lost-one")
    await asyncio.sleep(0.01)
    loop.set_exception_handler(None)
    assert [context["message"] for context in seen] == ["Task exception was never retrieved"]
    assert repr(seen[0]["exception"]) == "ValueError('lost')"
    assert seen[0]["future"].get_name() == "lost-one"


async def test_reported_and_still_logged(caplog):
    asyncio.create_task(boom(), name="reported")
    await asyncio.sleep(0.01)
    assert "Task exception was never retrieved" in first_lines(caplog)


async def test_reported_and_own_handler_still_called():
    seen = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: seen.append(context))
    asyncio.create_task(boom(), name="handled")
    await asyncio.sleep(0.01)
    assert [context["message"] for context in seen] == ["Task exception was never retrieved"]
"""


@pytest.mark.parametrize("runner", STANDALONE_AND_PYTEST_ASYNCIO)
def test_asyncio_log_lines_and_own_handlers_are_as_without_the_checks(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    if runner:
        pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makepyfile(test_mod=ASYNCIO_LOGS)
    # Without the checks: the standalone runner needs the plugin, so its checks are turned off.
    off = [f"--asynccheck-{kind}=off" for kind in KINDS]
    plain = pytester.runpytest(*(runner or (*ARGS, *off)), "-p", "no:randomly")
    plain.assert_outcomes(passed=4)
    result = pytester.runpytest(*ARGS, *runner, "-p", "no:randomly")
    # The last two fail from their findings alone: their own assertions hold, so no
    # AssertionError is printed.
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.no_fnmatch_line("*AssertionError*")
    for name in ("reported", "handled"):
        result.stdout.fnmatch_lines(
            [
                f"?never-retrieved? task '{name}' running boom() raised ValueError: lost, and the "
                "exception was never retrieved",
                "  at test_mod.py:9 in boom",
            ]
        )
    result.stdout.fnmatch_lines(
        ["*Captured log call*", "ERROR *asyncio*Task exception was never retrieved"]
    )
    # This in-process run would inherit the outer run's "error" warning filter.
    warn = pytester.runpytest(
        *ARGS, *runner, "-p", "no:randomly", "--asynccheck-mode=warn", "-W", "default"
    )
    warn.assert_outcomes(passed=4)
    warn.stdout.fnmatch_lines(["asynccheck: 0 errors, 2 warnings in 2 of 4 checked tests"])
    warn.stdout.fnmatch_lines(
        ["*NeverRetrievedWarning: ?never-retrieved? task 'handled' running boom()*"]
    )


def test_a_leaked_task_no_user_line_made_is_reported_at_its_coroutine_function(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import gc

        import pytest

        async def forever():
            await asyncio.Event().wait()

        @pytest.fixture(autouse=True)
        def collected_only_once_the_body_returned():
            # The task waits in a reference cycle: an automatic collection while the body
            # sleeps would free it before it could leak (when depends on what allocated).
            gc.disable()
            yield
            gc.enable()

        async def test_task_made_by_a_loop_callback():
            asyncio.get_running_loop().call_soon(asyncio.ensure_future, forever())
            await asyncio.sleep(0.01)
        """
    )
    # In a subprocess: in this process the outer test's own frames would be a user line.
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "?leaked-task? task '*' running forever() was still pending when the test returned",
            "  at test_mod.py:6 in forever",
            "  made by the event loop or a library, not by a line of yours",
            "  suspended at test_mod.py:7 in forever",
        ]
    )
    # Destroyed while pending, the same task is also lost: reported at the same place.
    result.stdout.fnmatch_lines(["error never-retrieved test_mod.py:6 in forever forever()  x1"])


@pytest.mark.parametrize("runner", STANDALONE_AND_PYTEST_ASYNCIO)
def test_a_finding_no_line_of_the_users_explains_is_placed_at_its_test_or_fixture(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    # Made by a loop callback and running the standard library's own coroutines: neither where
    # the tasks were made nor what they run is the user's (what asyncio's server does with
    # each TLS connection's handshake task, say).
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest


        @pytest.fixture
        async def server():
            asyncio.get_running_loop().call_soon(asyncio.ensure_future, asyncio.sleep(10))
            await asyncio.sleep(0)
            yield


        async def test_with_server(server):
            await asyncio.sleep(0)


        async def test_in_body():
            loop = asyncio.get_running_loop()
            loop.call_soon(asyncio.ensure_future, asyncio.sleep(10))
            loop.call_soon(asyncio.ensure_future, asyncio.sleep("not a delay"))
            await asyncio.sleep(0.01)
        """
    )
    result = pytester.runpytest_subprocess(*ARGS, *runner, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    note = (
        "  no line of your code made or runs this (the event loop or a library did): shown at "
        "the definition of the test or fixture it was found in"
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_with_server (teardown):",
            "?leaked-task? task '*' running sleep() was still pending when fixture 'server' was "
            "torn down, in fixture 'server' (setup)",
            "  at test_mod.py:5 in server",
            "  suspended at asyncio/tasks.py:* in sleep",
            note,
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 2 problems in test_mod.py::test_in_body (call):",
            "?never-retrieved? task '*' running sleep() raised TypeError: *, and the exception "
            "was never retrieved",
            "  at test_mod.py:16 in test_in_body",
            note,
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "?leaked-task? task '*' running sleep() was still pending when the test returned",
            "  at test_mod.py:16 in test_in_body",
            "  suspended at asyncio/tasks.py:* in sleep",
            note,
        ]
    )
    result.stdout.no_fnmatch_line("*<unknown>*")


ACCEPTING_SERVER = """
import asyncio
import ssl


async def server_accepting():
    # TLS with a client that never says hello: asyncio's task that accepted the connection
    # waits for the handshake until its timeout (60 s).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(1000):
        if any("_accept_connection" in t.get_coro().__qualname__ for t in asyncio.all_tasks()):
            return server, writer
        await asyncio.sleep(0.01)
    raise AssertionError("the server never accepted the connection")


async def test_closes_its_server():
    server, writer = await server_accepting()
    server.close()
    writer.close()


async def test_leaves_its_server_serving():
    server, writer = await server_accepting()
    writer.close()
"""


@pytest.mark.parametrize("runner", STANDALONE_AND_PYTEST_ASYNCIO)
def test_the_accept_task_of_a_closed_server_is_not_a_leak_and_of_a_serving_one_is(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    # Python 3.12.1 on, Server.wait_closed() waits for it; before, a test that closed its
    # server and returned leaves it pending for a turn or two, or for a whole TLS handshake.
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makepyfile(test_mod=ACCEPTING_SERVER)
    result = pytester.runpytest_subprocess(*ARGS, *runner, "-p", "no:randomly")
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("failed")) == (1, 1)
    # The serving server's socket is freed open at the teardown (an unclosed error there),
    # except where the runner closes the loop with the accept task still pending (as
    # pytest-asyncio 0.23 does): the task holds the server until it is destroyed.
    assert outcomes.get("errors", 0) <= 1
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_leaves_its_server_serving (call):",
            "?leaked-task? task '*' running BaseSelectorEventLoop._accept_connection2() was "
            "still pending when the test returned",
            "  at test_mod.py:25 in test_leaves_its_server_serving",
        ]
    )
    result.stdout.no_fnmatch_line("*test_closes_its_server*")


def test_allow_marker_and_severity(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        @pytest.mark.asynccheck(allow=["leaked-task"])
        async def test_allowed():
            asyncio.create_task(asyncio.sleep(10))

        async def test_not_allowed():
            asyncio.create_task(asyncio.sleep(10))
        """
    )
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    off = pytester.runpytest(*ARGS, "--asynccheck-leaked-task=off")
    off.assert_outcomes(passed=2)


def test_a_failed_task_held_in_a_reference_cycle_is_reported_in_its_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod="""
import asyncio

async def boom():
    me = asyncio.current_task()  # the traceback keeps this frame, and so the task: a cycle
    raise ValueError("in a cycle")

async def test_lost_in_a_cycle():
    asyncio.create_task(boom())
    await asyncio.sleep(0.01)

async def test_next():
    pass
"""
    )
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_lost_in_a_cycle (call):",
            "?never-retrieved? task '*' running boom() raised ValueError: in a cycle, and the "
            "exception was never retrieved",
            "  at test_mod.py:5 in boom",
            "  task created at test_mod.py:8 in test_lost_in_a_cycle",
        ]
    )


def test_under_a_task_factory_of_the_tests_own_leaks_are_still_found(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        MADE = []

        def plain_factory(loop, coro, **kwargs):
            MADE.append(coro)
            return asyncio.Task(coro, loop=loop, **kwargs)

        @pytest.fixture
        async def own_factory():
            loop = asyncio.get_running_loop()
            loop.set_task_factory(plain_factory)
            background = asyncio.create_task(asyncio.sleep(10))  # the fixture's, not the test's
            yield
            background.cancel()
            loop.set_task_factory(None)

        async def test_leak(own_factory):
            asyncio.create_task(asyncio.sleep(10), name="left")

        async def test_clean(own_factory):
            made = len(MADE)
            await asyncio.create_task(asyncio.sleep(0))
            assert len(MADE) == made + 1  # the test's factory still makes the tasks
        """
    )
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_leak (call):",
            "?leaked-task? task 'left' running sleep() was still pending when the test returned",
            "  at test_mod.py:20 in test_leak",
        ]
    )
    result.stdout.no_fnmatch_line("*test_clean*leaked*")


def test_tasks_made_between_a_tests_steps_are_not_the_tests(pytester: pytest.Pytester) -> None:
    """The plugin's factory stays on the loop from the first step to the test's end, but notes
    only what the steps make: a task a sync fixture starts on the loop between two steps (and
    stops at its teardown) is no leak of the test, while the body's own task still is one."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        async def forever():
            await asyncio.sleep(3600)

        @pytest.fixture
        async def loop():
            yield asyncio.get_running_loop()
            await asyncio.sleep(0)

        @pytest.fixture
        def background(loop):
            task = loop.create_task(forever())
            yield task
            task.cancel()

        async def test_uses_the_background_task(background):
            await asyncio.sleep(0)
            assert not background.done()

        async def test_leaks_its_own(background):
            task = asyncio.create_task(forever())
            await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO, "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_leaks_its_own*", "*[[]leaked-task[]] task * running forever() was still pending*"]
    )
    result.stdout.no_fnmatch_line("*test_uses_the_background_task*FAILED*")
    assert result.stdout.str().count("[leaked-task]") == 1
