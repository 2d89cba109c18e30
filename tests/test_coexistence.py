"""The plugin never breaks a suite: interrupts, exits, hangs, other plugins, odd test styles."""

from __future__ import annotations

import json
import sys

import pytest

from tests.helpers import ARGS, ASYNCIO, ASYNCIO_INI


def test_keyboard_interrupt_in_a_test_ends_the_session_cleanly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        async def test_first():
            pass

        async def test_interrupt():
            raise KeyboardInterrupt

        async def test_never_reached():
            pass
        """
    )
    result = pytester.runpytest_subprocess(*ARGS, "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*", "*1 passed*"])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_system_exit_in_a_test_fails_only_that_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        async def test_exit():
            sys.exit(3)

        async def test_after():
            pass
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_a_hanging_test_is_stopped_by_pytest_timeout_and_the_next_one_runs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n" + ASYNCIO_INI)
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.timeout(0.5, method="signal")
        async def test_hangs():
            await asyncio.sleep(30)

        @pytest.mark.asyncio
        async def test_next():
            await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest_subprocess(*ARGS, *ASYNCIO, "-p", "timeout", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Timeout (>0.5s) from pytest-timeout*"])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_unittest_async_test_cases_run_unchanged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import unittest

        class TestCase(unittest.IsolatedAsyncioTestCase):
            async def asyncSetUp(self):
                self.value = 1

            async def test_it(self):
                await asyncio.sleep(0)
                self.assertEqual(self.value, 1)

            async def test_fails(self):
                self.assertEqual(self.value, 2)
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1, failed=1)


def test_sync_tests_that_run_their_own_loops_are_unaffected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        async def work():
            await asyncio.sleep(0)
            return 1

        def test_asyncio_run():
            assert asyncio.run(work()) == 1

        def test_manual_loop():
            loop = asyncio.new_event_loop()
            try:
                assert loop.run_until_complete(work()) == 1
            finally:
                loop.close()
        """
    )
    pytester.runpytest(*ARGS).assert_outcomes(passed=2)


def test_random_order_keeps_every_test_passing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        async def value():
            await asyncio.sleep(0)
            return 7

        @pytest.mark.parametrize("n", range(10))
        async def test_many(n, value):
            assert value == 7
        """
    )
    result = pytester.runpytest(*ARGS, "-p", "randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines(["Using --randomly-seed=*"])


def test_custom_task_factory_and_mocked_clocks_are_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import time
        from unittest import mock

        import pytest

        async def test_task_factory_is_used():
            loop = asyncio.get_running_loop()
            made = []

            def factory(loop, coro, **kwargs):
                made.append(coro)
                return asyncio.Task(coro, loop=loop, **kwargs)

            loop.set_task_factory(factory)
            try:
                await asyncio.create_task(asyncio.sleep(0))
            finally:
                loop.set_task_factory(None)
            assert len(made) == 1

        @pytest.mark.max_wall(5)
        async def test_mocked_clocks():
            with mock.patch("time.perf_counter", return_value=0.0), mock.patch(
                "time.monotonic", return_value=0.0
            ):
                await asyncio.sleep(0)
            assert time.perf_counter() > 0
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["asynccheck: no findings in 2 checked tests"])


def test_a_test_that_leaves_a_thread_running_does_not_hang_the_session(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod="""
        import threading
        import time

        async def test_leaves_a_thread():
            threading.Thread(target=time.sleep, args=(0.5,), daemon=True).start()

        async def test_after():
            pass
        """
    )
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_pytest_timeout_thread_method_kills_a_worker_and_the_rest_is_reported(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import time

        async def test_hangs():
            time.sleep(30)

        async def test_missing_await():
            asyncio.sleep(1)
        """
    )
    result = pytester.runpytest_subprocess(
        *ARGS,
        "-p",
        "xdist",
        "-n",
        "2",
        "-p",
        "timeout",
        "--timeout=1",
        "--timeout-method=thread",
        "--asynccheck-report=r.json",
    )
    result.stdout.fnmatch_lines(["*crashed while running 'test_mod.py::test_hangs'*"])
    data = json.loads((pytester.path / "r.json").read_text())
    assert [f["nodeid"] for f in data["findings"]] == ["test_mod.py::test_missing_await"]


def test_coverage_and_pytest_cov_measure_the_same_lines_with_and_without_the_checks(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        workload="""
        import asyncio

        async def work(n):
            if n:
                await asyncio.sleep(0)
                return n
            return 0
        """,
        test_mod="""
        import asyncio
        from workload import work

        async def test_work():
            assert await work(1) == 1
        """,
    )
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytest_args = ("-p", "asyncio", "-p", "asynccheck", "-p", "no:cacheprovider")
    coverage_run = (
        sys.executable,
        "-m",
        "coverage",
        "run",
        "--include=workload.py",
        "-m",
        "pytest",
    )
    pytest_cov = (
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "pytest_cov",
        "--cov=workload",
        "--cov-report=",
    )
    measured = []
    for command in (coverage_run, pytest_cov):
        for extra in ((), ("--asynccheck",)):
            run = pytester.run(*command, *pytest_args, *extra)
            assert run.ret == 0, run.stdout.str()
            pytester.run(sys.executable, "-m", "coverage", "json", "-o", "cov.json")
            files = json.loads((pytester.path / "cov.json").read_text())["files"]
            measured.append(files["workload.py"]["executed_lines"])
    assert measured[0] and all(lines == measured[0] for lines in measured)


#: Echo servers over loopback under each runner: anyio on trio and on asyncio, pytest-trio, and
#: pytest-asyncio with asyncio streams. trio accepts only sockets whose type is exactly
#: ``socket.socket``, and every warning is an error, so a half-made socket left unclosed fails
#: a test.
LOOPBACK = """
import asyncio
import functools

import anyio
import pytest
import trio


async def anyio_echo():
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(stream):
        async with stream:
            await stream.send(await stream.receive())

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve)
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            await client.send(b"ping")
            assert await client.receive() == b"ping"
        group.cancel_scope.cancel()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_anyio(anyio_backend):
    await anyio_echo()


@pytest.mark.trio
async def test_pytest_trio():
    async def serve(stream):
        async with stream:
            await stream.send_all(await stream.receive_some())

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        async with await trio.open_tcp_stream("127.0.0.1", port) as client:
            await client.send_all(b"ping")
            assert await client.receive_some() == b"ping"
        sock = trio.socket.socket()
        with sock:
            await sock.connect(("127.0.0.1", port))
            await sock.send(b"pong")
            assert await sock.recv(10) == b"pong"
        nursery.cancel_scope.cancel()


@pytest.mark.asyncio
async def test_asyncio_streams():
    async def serve(reader, writer):
        writer.write(await reader.read(10))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    assert await reader.read(10) == b"ping"
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


def test_sync():
    pass
"""


def test_loopback_servers_under_every_runner_pass_alike_with_and_without_checks(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n" + ASYNCIO_INI)
    pytester.makepyfile(LOOPBACK)
    # By module: ``-p trio`` and ``-p asyncio`` would name modules already imported, which
    # pytest warns it cannot rewrite, and every warning is an error here.
    runners = (
        "-p",
        "pytest_trio.plugin",
        "-p",
        "anyio.pytest_plugin",
        "-p",
        "pytest_asyncio.plugin",
    )
    runners += ("-p", "no:randomly", "-rA")
    outcomes = {}
    for label, extra in (
        ("off", ("-p", "asynccheck")),
        ("on", ARGS),
        ("warn", (*ARGS, "--asynccheck-mode=warn")),
    ):
        result = pytester.runpytest_subprocess(*extra, *runners)
        outcomes[label] = result.parseoutcomes()
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        for test in ("test_anyio[[]trio[]]", "test_anyio[[]asyncio[]]", "test_pytest_trio"):
            result.stdout.fnmatch_lines([f"PASSED *::{test}"])
        for absent in ("*warning*", "*[[]blocking[]]*", "*Error*", "*INTERNALERROR*"):
            result.stdout.no_fnmatch_line(absent)
    assert outcomes["off"] == outcomes["on"] == outcomes["warn"] == {"passed": 5}
