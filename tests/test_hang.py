"""Hung tests: a budgeted test still running at budget x hang factor is cancelled and fails with
the await tree of its tasks, and the run goes on; pytest-timeout and Ctrl-C show the same tree.

Timings are checked with margins of seconds: these tests must hold on a loaded machine."""

from __future__ import annotations

import pytest

from tests.helpers import ANYIO, ARGS, ASYNCIO, ASYNCIO_INI, LOOP_SCOPE, anyio_module

#: How long an inner run in a process of its own may take before it counts as hung: a hang of
#: the plugin's fails that test instead of stopping the whole suite.
SUBPROCESS_TIMEOUT = 120
#: The same for the trio runs that a signal stops, which take about 5 s: a run that hangs in
#: anyio's guest runner (see below) costs each attempt this much.
TRIO_STOPPED_TIMEOUT = 40

HUNG = """
import asyncio
import pytest


@pytest.mark.max_wall(0.3)
async def test_event():
    event = asyncio.Event()
    await event.wait()


@pytest.mark.max_wall(0.3)
async def test_queue():
    queue = asyncio.Queue()
    await queue.get()


async def transfer(first, second):
    async with first:
        await asyncio.sleep(0.05)
        async with second:
            pass


@pytest.mark.max_wall(0.3)
async def test_lock_cycle():
    lock_a, lock_b = asyncio.Lock(), asyncio.Lock()
    await asyncio.gather(
        asyncio.create_task(transfer(lock_a, lock_b), name="A"),
        asyncio.create_task(transfer(lock_b, lock_a), name="B"),
    )


async def child():
    never = asyncio.Event()
    await never.wait()


@pytest.mark.max_wall(0.3)
async def test_task_awaits_task():
    task = asyncio.create_task(child(), name="child")
    await task


@pytest.mark.max_wall(0.3)
async def test_socket_read():
    accepted = []
    server = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()
    finally:
        for each in [writer, *accepted]:
            each.close()
        server.close()


async def test_next_runs_on_a_clean_loop():
    # Tasks running this module's code (anyio's runner has tasks of its own on the loop).
    left = [t for t in asyncio.all_tasks() if t.get_coro().cr_code.co_filename == __file__]
    assert [t for t in left if t is not asyncio.current_task()] == []
"""

RUNNERS = {
    "standalone": ((), ""),
    "pytest-asyncio": (ASYNCIO, "asyncio_mode = auto\n" + ASYNCIO_INI),
}


def _call_durations(result: pytest.RunResult) -> dict[str, float]:
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    return {r.nodeid.split("::")[-1]: r.duration for r in reports if r.when == "call"}


#: Runners whose tests share one loop (and, under anyio, one runner task) across the module:
#: (plugins, ini, module mark).
SHARED_LOOPS = {
    "pytest-asyncio-module": (
        ASYNCIO,
        "asyncio_mode = auto\n" + ASYNCIO_INI,
        f"pytestmark = pytest.mark.asyncio({LOOP_SCOPE}='module')",
    ),
    "pytest-asyncio-session": (
        ASYNCIO,
        "asyncio_mode = auto\n" + ASYNCIO_INI,
        f"pytestmark = pytest.mark.asyncio({LOOP_SCOPE}='session')",
    ),
    "anyio-asyncio": (
        (*ANYIO, "-p", "no:asyncio"),
        "",
        "pytestmark = pytest.mark.anyio; anyio_backend = pytest.fixture(lambda: 'asyncio')",
    ),
}


@pytest.mark.parametrize("runner", [*RUNNERS, *SHARED_LOOPS])
def test_hung_tests_fail_with_their_await_tree_and_the_run_goes_on(
    pytester: pytest.Pytester, runner: str
) -> None:
    plugins, ini, mark = {
        **{name: (*RUNNERS[name], "") for name in RUNNERS},
        **SHARED_LOOPS,
    }[runner]
    pytester.makeini("[pytest]\n" + ini)
    # The mark takes the place of a blank line: the lines below stay where they are.
    pytester.makepyfile(test_hung=HUNG.replace("import pytest\n\n", f"import pytest\n{mark}\n", 1))
    result = pytester.runpytest(*ARGS, *plugins, "-p", "no:randomly")
    result.assert_outcomes(failed=5, passed=1)
    hung = "?max-wall? hung: still running after 600 ms of wall time (max_wall budget of 300 ms,"
    result.stdout.fnmatch_lines(
        [
            "*test_event (call):",
            hung + "*",
            "  at test_hung.py:8 in test_event",
            "  task '*' (the test) waits on Event.wait() on event",
            "      test_hung.py:8 in test_event: await event.wait()",
            "*test_queue (call):",
            hung + "*",
            "  task '*' (the test) waits on Queue.get() on queue",
            "      test_hung.py:14 in test_queue: await queue.get()",
            "*test_lock_cycle (call):",
            hung + "*",
            "  task '*' (the test) waits on gather('A', 'B')",
            "      test_hung.py:27 in test_lock_cycle: await asyncio.gather(",
            "    task 'A' waits on Lock.acquire() on lock_b, held by task 'B'",
            "        test_hung.py:20 in transfer: async with second:",
            "        holds lock_a",
            "    task 'B' waits on Lock.acquire() on lock_a, held by task 'A'",
            "        test_hung.py:20 in transfer: async with second:",
            "        holds lock_b",
            "*test_task_awaits_task (call):",
            hung + "*",
            "  task '*' (the test) waits on task 'child'",
            "      test_hung.py:41 in test_task_awaits_task: await task",
            "    task 'child' waits on Event.wait() on never",
            "        test_hung.py:35 in child: await never.wait()",
            "*test_socket_read (call):",
            hung + "*",
            "  at test_hung.py:51 in test_socket_read",
            "  task '*' (the test) waits on a socket read, "
            "StreamReader.readline() from 127.0.0.1:*",
            "      test_hung.py:51 in test_socket_read: await reader.readline()",
        ]
    )
    durations = _call_durations(result)
    for name in ("test_event", "test_queue", "test_lock_cycle", "test_task_awaits_task"):
        # Cancelled at 0.6 s, never before; a few seconds of margin for a loaded machine.
        assert 0.55 <= durations[name] < 0.6 + 4, (name, durations[name])


def test_a_hang_under_anyio_leaves_its_runner_ready_for_the_next_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod=anyio_module(
            """
            @pytest.mark.anyio
            @pytest.mark.max_wall(0.2)
            async def test_hangs(anyio_backend):
                await asyncio.Event().wait()

            @pytest.mark.anyio
            async def test_next(anyio_backend):
                task = asyncio.current_task()
                assert task.cancelling() == 0 if hasattr(task, "cancelling") else True
                await asyncio.sleep(0.01)
            """
        )
    )
    result = pytester.runpytest(*ARGS, *ANYIO, "-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        ["?max-wall? hung: still running after 400 ms*", "*waits on Event.wait()*"]
    )


TRIO_HUNG = """
import pytest
import trio


async def locker(first, second):
    async with first:
        await trio.sleep(0.05)
        async with second:
            pass


@{marker}
@pytest.mark.max_wall(0.3)
async def test_lock_cycle({fixture}):
    lock_a, lock_b = trio.Lock(), trio.Lock()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(locker, lock_a, lock_b, name="A")
        nursery.start_soon(locker, lock_b, lock_a, name="B")


@{marker}
@pytest.mark.max_wall(0.3)
async def test_receive({fixture}):
    send, receive = trio.open_memory_channel(0)
    async with send, receive:
        await receive.receive()


@{marker}
@pytest.mark.max_wall(0.3)
async def test_event({fixture}):
    event = trio.Event()
    await event.wait()


@{marker}
@pytest.mark.max_wall(0.3)
async def test_socket_read({fixture}):
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with listeners[0], await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.receive_some()


@{marker}
async def test_next({fixture}):
    await trio.sleep(0)
"""

TRIO_RUNNERS = {
    "pytest-trio": (("-p", "trio"), "pytest.mark.trio", ""),
    "anyio-trio": (ANYIO, "pytest.mark.anyio", "anyio_backend"),
}


def _trio_source(template: str, runner: str) -> str:
    """A test module for a trio runner: its mark, and anyio's backend fixture if it needs it."""
    _, marker, fixture = TRIO_RUNNERS[runner]
    source = template.replace("{marker}", marker).replace("{fixture}", fixture)
    if fixture:
        source += '\n\n@pytest.fixture\ndef anyio_backend():\n    return "trio"\n'
    return source


@pytest.mark.parametrize("runner", TRIO_RUNNERS)
def test_hung_trio_tests_are_cancelled_with_trio_task_tree(
    pytester: pytest.Pytester, runner: str
) -> None:
    plugins, _, _ = TRIO_RUNNERS[runner]
    pytester.makepyfile(test_trio_hung=_trio_source(TRIO_HUNG, runner))
    result = pytester.runpytest(*ARGS, *plugins, "-p", "no:randomly")
    result.assert_outcomes(failed=4, passed=1)
    result.stdout.fnmatch_lines(
        [
            "?max-wall? hung: still running after 600 ms of wall time *",
            "  at test_trio_hung.py:16 in test_lock_cycle",
            "  task * (the test) waits on the tasks of its nursery",
            "      test_trio_hung.py:16 in test_lock_cycle: async with trio.open_nursery() as*",
            "    task 'A' waits on Lock.acquire() on lock_b, held by task 'B'",
            "        test_trio_hung.py:8 in locker: async with second:",
            "    task 'B' waits on Lock.acquire() on lock_a, held by task 'A'",
            "?max-wall? hung: *",
            "  task * (the test) waits on MemoryReceiveChannel.receive() on receive",
            "      test_trio_hung.py:26 in test_receive: await receive.receive()",
            "?max-wall? hung: *",
            "  task * (the test) waits on Event.wait() on event",
            "      test_trio_hung.py:33 in test_event: await event.wait()",
            "?max-wall? hung: *",
            "  task * (the test) waits on a socket read, "
            "SocketStream.receive_some() from 127.0.0.1:*",
            "      test_trio_hung.py:42 in test_socket_read: await stream.receive_some()",
        ]
    )
    durations = _call_durations(result)
    assert 0.55 <= durations["test_receive"] < 0.6 + 4


def test_slow_tests_that_end_are_not_cancelled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        @pytest.mark.max_wall(0.5)
        async def test_within_budget():
            await asyncio.sleep(0.05)

        @pytest.mark.max_wall(0.2)
        async def test_over_budget_but_done():
            event = asyncio.Event()
            asyncio.get_running_loop().call_later(0.3, event.set)
            await event.wait()
        """
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-hang-factor=10", "-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["?max-wall? wall time * exceeded the max_wall budget of 200 ms"])
    assert "hung" not in result.stdout.str()


def test_a_budgeted_test_that_fails_fails_as_without_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        @pytest.mark.max_wall(5)
        async def test_fails():
            await asyncio.sleep(0)
            assert 1 + 1 == 3
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([">       assert 1 + 1 == 3", "E       assert (1 + 1) == 3"])
    assert "hung" not in result.stdout.str()
    assert "await tree" not in result.stdout.str()


def test_hang_factor_and_wall_factor_set_the_deadline(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasynccheck_hang_factor = 3\n")
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        @pytest.mark.max_wall(0.2)
        async def test_hangs():
            await asyncio.Event().wait()
        """
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-wall-factor=2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck: *wall-factor=2, hang-factor=3",
            "?max-wall? hung: still running after 1.20 s of wall time (max_wall budget of "
            "200 ms x 2, x 3 hang factor); cancelled.*",
        ]
    )
    assert 1.1 <= _call_durations(result)["test_hangs"] < 1.2 + 4


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_bad_hang_factor_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    result = pytester.runpytest(*ARGS, f"--asynccheck-hang-factor={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--asynccheck-hang-factor*{value}*positive number*"])


def test_virtual_clock_cancels_in_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        @pytest.mark.max_wall(30)
        async def test_hangs():
            await asyncio.Event().wait()
        """
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-clock=virtual")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["?max-wall? hung: still running after 60.00 s of virtual time*"])
    assert _call_durations(result)["test_hangs"] < 5


def test_a_cleanup_that_hangs_is_cancelled_again(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        async def stubborn():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                await asyncio.sleep(2)  # outlives the cleanup's wait, ends on the next cancel

        @pytest.mark.max_wall(0.2)
        async def test_hangs():
            asyncio.create_task(stubborn(), name="stubborn")
            try:
                await asyncio.Event().wait()
            finally:
                for _ in range(3):  # a cleanup that takes several cancellations to end
                    try:
                        await asyncio.Event().wait()
                    except asyncio.CancelledError:
                        pass

        def test_next():
            pass
        """
    )
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "?max-wall? hung: *",
            "*task 'stubborn' waits on sleep(3600)",
            "*still pending 500 ms after they were cancelled: 'stubborn'",
        ]
    )
    assert _call_durations(result)["test_hangs"] < 0.4 + 0.5 * 4 + 4
    result.stdout.no_fnmatch_line("*swallows CancelledError*")


def test_a_test_that_takes_every_cancellation_says_so_while_it_runs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        async def consume():
            while True:
                try:
                    await asyncio.sleep(3600)
                except BaseException:
                    continue

        @pytest.mark.max_wall(0.2)
        async def test_hangs():
            await consume()
        """
    )
    # Nothing inside the loop can end it: pytest-timeout's thread method ends the process.
    result = pytester.runpytest_subprocess(
        *ARGS,
        "-p",
        "timeout",
        "--timeout=8",
        "--timeout-method=thread",
        timeout=SUBPROCESS_TIMEOUT,
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck: test_mod.py::test_hangs still runs 3.00 s after its max_wall deadline "
            "of 400 ms cancelled it, cancelled again 6 times since: code that swallows "
            "CancelledError keeps it running, and only pytest-timeout or a signal can stop it. "
            "Await tree now:",
            "task * (the test) waits on sleep(3600)",
            "    test_mod.py:13 in test_hangs: await consume()",
            "    test_mod.py:7 in consume: await asyncio.sleep(3600)",
            "*+ Timeout +*",
        ]
    )


def test_warn_mode_cancels_the_hung_test_and_fails_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        @pytest.mark.max_wall(0.2)
        async def test_hangs():
            await asyncio.Event().wait()
        """
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-mode=warn")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*hung: still running after 400 ms*"])


def test_a_test_cancelling_itself_fails_as_without_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        @pytest.mark.max_wall(5)
        async def test_cancels_itself():
            asyncio.current_task().cancel()
            await asyncio.sleep(1)
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CancelledError*"])
    assert "hung" not in result.stdout.str()
    assert "await tree" not in result.stdout.str()


@pytest.mark.parametrize("runner", RUNNERS)
def test_pytest_timeout_signal_method_shows_the_await_tree(
    pytester: pytest.Pytester, runner: str
) -> None:
    plugins, ini = RUNNERS[runner]
    pytester.makeini("[pytest]\n" + ini)
    pytester.makepyfile(
        test_mod="""
        import asyncio
        import pytest

        async def waiter(event):
            await event.wait()

        # pytest-timeout's stack dump holds the loop: a stall, not this test's subject.
        @pytest.mark.timeout(0.5, method="signal")
        @pytest.mark.asynccheck(allow=["blocking"])
        async def test_times_out():
            event = asyncio.Event()
            await asyncio.gather(asyncio.create_task(waiter(event), name="waiter"))

        def test_next():
            pass
        """
    )
    result = pytester.runpytest(*ARGS, *plugins, "-p", "timeout", "-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*Captured asynccheck await tree call*",
            "task '*' (the test) waits on gather('waiter')",
            "    test_mod.py:12 in test_times_out: await asyncio.gather(*",
            "  task 'waiter' waits on Event.wait() on event",
            "      test_mod.py:5 in waiter: await event.wait()",
            "FAILED test_mod.py::test_times_out - Failed: Timeout*",
        ]
    )


#: A test that holds its loop until pytest-timeout stops it.
SPINS = """
import time
import pytest

@pytest.mark.timeout(0.4, method="{method}")
@pytest.mark.asynccheck(allow=["blocking"])
async def test_spins():
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pass
"""


def test_pytest_timeout_inside_the_task_shows_the_unwound_chain(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=SPINS.format(method="signal"))
    result = pytester.runpytest(*ARGS, "-p", "timeout")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*Captured asynccheck await tree call*",
            "task '*' (the test) was stopped at",
            "    test_mod.py:8 in test_spins: while time.monotonic() < deadline:",
        ]
    )


@pytest.mark.parametrize("runner", RUNNERS)
def test_ctrl_c_shows_the_await_tree(pytester: pytest.Pytester, runner: str) -> None:
    plugins, ini = RUNNERS[runner]
    pytester.makeini("[pytest]\n" + ini)
    pytester.makepyfile(
        test_mod="""
        import asyncio

        async def waiter(event):
            await event.wait()

        def interrupt():
            raise KeyboardInterrupt

        async def test_interrupted():
            event = asyncio.Event()
            asyncio.get_running_loop().call_later(0.2, interrupt)
            await asyncio.create_task(waiter(event), name="waiter")
        """
    )
    # In a process of its own: the interrupted run leaves its loop and tasks behind.
    result = pytester.runpytest_subprocess(*ARGS, *plugins, timeout=SUBPROCESS_TIMEOUT)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*asynccheck: await tree of test_mod.py::test_interrupted when interrupted*",
            "task '*' (the test) waits on task 'waiter'",
            "    test_mod.py:12 in test_interrupted: await asyncio.create_task(*",
            "  task 'waiter' waits on Event.wait() on event",
            "      test_mod.py:4 in waiter: await event.wait()",
            "*KeyboardInterrupt*",
        ]
    )


THREAD_TIMEOUT = {
    "waits": (
        """
        import asyncio
        import pytest

        async def waiter(event):
            await event.wait()

        @pytest.mark.timeout(0.5, method="thread")
        async def test_times_out():
            event = asyncio.Event()
            await asyncio.gather(asyncio.create_task(waiter(event), name="waiter"))
        """,
        [
            "task '*' (the test) waits on gather('waiter')",
            "    test_mod.py:10 in test_times_out: await asyncio.gather(*",
            "  task 'waiter' waits on Event.wait() on event",
            "      test_mod.py:5 in waiter: await event.wait()",
        ],
    ),
    "spins": (
        SPINS.format(method="thread"),
        [
            "task '*' (the test) was stopped at",
            "    test_mod.py:8 in test_spins: while time.monotonic() < deadline:",
        ],
    ),
}


@pytest.mark.parametrize(
    ("runner", "case"),
    [("standalone", "waits"), ("pytest-asyncio", "waits"), ("standalone", "spins")],
)
def test_pytest_timeout_thread_method_writes_the_await_tree_before_it_ends_the_process(
    pytester: pytest.Pytester, runner: str, case: str
) -> None:
    plugins, ini = RUNNERS[runner]
    source, tree = THREAD_TIMEOUT[case]
    pytester.makeini("[pytest]\n" + ini)
    pytester.makepyfile(test_mod=source)
    # pytest-timeout's thread method ends the process: in a process of its own.
    result = pytester.runpytest_subprocess(
        *ARGS, *plugins, "-p", "timeout", "-p", "no:randomly", timeout=SUBPROCESS_TIMEOUT
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*+ Timeout +*",
            "*+ asynccheck: await tree of test_mod.py::test_* at the timeout +*",
            *tree,
            "*Stack of MainThread*",
            "*+ Timeout +*",
        ]
    )


TRIO_STOPPED = """
import contextlib
import os
import signal
import threading

import pytest
import trio


async def waiter(event):
    await event.wait()


def set_later(event):
    # A test pytest-timeout stopped is left pending on anyio's runner: this ends it.
    token = trio.lowlevel.current_trio_token()

    def set_event():
        with contextlib.suppress(Exception):
            token.run_sync_soon(event.set)

    timer = threading.Timer(4, set_event)
    timer.daemon = True
    timer.start()


@{marker}
async def test_interrupted({fixture}):
    event = trio.Event()
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, event, name="waiter")


@{marker}
@pytest.mark.timeout(1.5, method="signal")  # a margin for trio to start the body
async def test_times_out({fixture}):
    event = trio.Event()
    set_later(event)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, event, name="waiter")
"""


# Where the signal lands decides how trio unwinds: in trio's own code running as anyio's guest,
# the run ends and the waiting runner is never told, so the inner run never ends (seen once,
# under coverage). Bounded, and tried again.
@pytest.mark.flaky(reruns=2)
@pytest.mark.parametrize("test", ["test_interrupted", "test_times_out"])
@pytest.mark.parametrize("runner", TRIO_RUNNERS)
def test_ctrl_c_and_pytest_timeout_show_trio_task_tree(
    pytester: pytest.Pytester, runner: str, test: str
) -> None:
    plugins, _, fixture = TRIO_RUNNERS[runner]
    source = _trio_source(TRIO_STOPPED, runner)
    pytester.makepyfile(test_mod=source)
    # In a process of its own: a signal that stops trio.run leaves trio's run state behind.
    result = pytester.runpytest_subprocess(
        *ARGS,
        *plugins,
        *("-p", "timeout", "-p", "no:randomly", "-k", test),
        *("-W", "ignore::pytest.PytestUnraisableExceptionWarning"),
        timeout=TRIO_STOPPED_TIMEOUT,
    )
    # trio's nursery hands Ctrl-C on as a group: the runners report it as the test's failure.
    result.assert_outcomes(failed=1, deselected=1)
    lines = source.lstrip("\n").splitlines()
    waits = lines.index("    await event.wait()") + 1
    start = lines.index(f"async def {test}({fixture}):")
    nursery = lines.index("    async with trio.open_nursery() as nursery:", start) + 1
    result.stdout.fnmatch_lines(
        [
            f"*_ {test} _*",
            "*Captured asynccheck await tree call*",
            "task * (the test) waits on the tasks of its nursery",
            f"    test_mod.py:{nursery} in {test}: async with trio.open_nursery() as nursery:",
            "  task 'waiter' waits on Event.wait() on event",
            f"      test_mod.py:{waits} in waiter: await event.wait()",
        ]
    )


HUNG_FIXTURE = """
import asyncio
import pytest
import pytest_asyncio

async def waiter(event):
    await event.wait()

@pytest_asyncio.fixture
async def server():
    event = asyncio.Event()
    await asyncio.gather(asyncio.create_task(waiter(event), name="waiter"))
    yield

# pytest-timeout's stack dump holds the loop: a stall, not this test's subject.
@pytest.mark.timeout(0.5, method="{method}")
@pytest.mark.asynccheck(allow=["blocking"])
@pytest.mark.asyncio
async def test_setup_hangs(server):
    pass

def test_next():
    pass
"""


@pytest.mark.parametrize("method", ["signal", "thread"])
def test_pytest_timeout_in_an_async_fixture_shows_the_fixture_tree(
    pytester: pytest.Pytester, method: str
) -> None:
    pytester.makeini("[pytest]\n" + ASYNCIO_INI)
    pytester.makepyfile(test_mod=HUNG_FIXTURE.format(method=method))
    args = (*ARGS, *ASYNCIO, "-p", "timeout", "-p", "no:randomly")
    tree = [
        "task '*' (fixture 'server') waits on gather('waiter')",
        "    test_mod.py:11 in server: await asyncio.gather(*",
        "  task 'waiter' waits on Event.wait() on event",
        "      test_mod.py:6 in waiter: await event.wait()",
    ]
    if method == "signal":
        result = pytester.runpytest(*args)
        result.assert_outcomes(errors=1, passed=1)
        result.stdout.fnmatch_lines(["*Captured asynccheck await tree setup*", *tree])
    else:
        # pytest-timeout's thread method ends the process: in a process of its own.
        result = pytester.runpytest_subprocess(*args, timeout=SUBPROCESS_TIMEOUT)
        assert result.ret == 1
        result.stdout.fnmatch_lines(
            ["*+ asynccheck: await tree of test_mod.py::test_setup_hangs at the timeout +*", *tree]
        )
