"""Exceptions of loop callbacks, done callbacks and protocol methods, which the event loop only
logs, fail the test at the line that raised them (``callback-error``)."""

from __future__ import annotations

import sys

import pytest

from pytest_asynccheck.detectors.callbacks import CALLBACK_FIX, DONE_CALLBACK_FIX, PROTOCOL_FIX
from tests.helpers import ANYIO, ARGS, STANDALONE_AND_PYTEST_ASYNCIO, write_for_runner

RUNNERS = STANDALONE_AND_PYTEST_ASYNCIO


CALLBACKS = """\
import asyncio
import pytest


def parse_reading(text):
    return float(text)


def on_reading(text, readings):
    readings.append(parse_reading(text))


async def test_call_soon_callback_raises():
    readings = []
    asyncio.get_running_loop().call_soon(on_reading, "12,5", readings)
    await asyncio.sleep(0.01)


async def test_timer_callback_raises():
    asyncio.get_running_loop().call_later(0.001, on_reading, "n/a", [])
    await asyncio.sleep(0.05)


async def fetch_user():
    return {"name": "ada"}


async def test_done_callback_has_a_bug():
    names = []
    task = asyncio.create_task(fetch_user(), name="fetch")
    task.add_done_callback(lambda t: names.append(t.result()["email"]))
    await task
    await asyncio.sleep(0.01)
"""


@pytest.mark.parametrize("runner", RUNNERS)
def test_callback_exceptions_are_reported_at_the_raising_line(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    write_for_runner(pytester, runner, CALLBACKS)
    result = pytester.runpytest(*ARGS, *runner, "-p", "no:randomly")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_call_soon_callback_raises (call):",
            "?callback-error? callback on_reading() raised ValueError: could not convert string "
            "to float: '12,5'; the event loop caught it and only logged it",
            "  at test_mod.py:6 in parse_reading",
            "  run by loop.call_soon (or a callback asyncio scheduled for your code): "
            "<Handle on_reading(*)>",  # Python 3.13 shows no arguments
            "  test_mod.py:10 in on_reading",
            f"  fix: {CALLBACK_FIX}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_timer_callback_raises (call):",
            "?callback-error? callback on_reading() raised ValueError: could not convert string "
            "to float: 'n/a'; *",
            "  at test_mod.py:6 in parse_reading",
            "  run by a timer (loop.call_later or loop.call_at): <TimerHandle when=* "
            "on_reading(*)>",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_done_callback_has_a_bug (call):",
            "?callback-error? callback test_done_callback_has_a_bug.<locals>.<lambda>() raised "
            "KeyError: 'email'; the event loop caught it and only logged it",
            "  at test_mod.py:31 in <lambda>",
            "  run by a done callback of task 'fetch' running fetch_user(): *",
            f"  fix: {DONE_CALLBACK_FIX}",
        ]
    )
    # asyncio's own log line is still there: the finding is added, nothing taken away.
    result.stdout.fnmatch_lines(["*Exception in callback on_reading(*"])


def test_under_anyio_its_runner_raises_them_in_the_test_and_nothing_is_added(
    pytester: pytest.Pytester,
) -> None:
    write_for_runner(pytester, ANYIO, CALLBACKS)
    result = pytester.runpytest(*ARGS, *ANYIO, "-p", "no:randomly")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "E       ValueError: could not convert string to float: '12,5'",
            "test_mod.py:6: ValueError",
        ]
    )
    result.stdout.no_fnmatch_line("*callback-error? callback*")


PROTOCOL = """\
import asyncio


class LineCounter(asyncio.Protocol):
    def __init__(self, counts):
        self.counts = counts

    def data_received(self, data):
        for line in data.split(b"\\n"):
            if line:
                self.counts.append(int(line))


async def test_protocol_data_received_raises():
    counts = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: LineCounter(counts), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"1\\n2\\nthree\\n")
    await writer.drain()
    await reader.read()  # the server closes the connection after the error
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    assert counts == [1, 2]
"""


@pytest.mark.parametrize("runner", RUNNERS[:2])
def test_a_protocol_method_that_raises_is_reported(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    write_for_runner(pytester, runner, PROTOCOL)
    result = pytester.runpytest(*ARGS, *runner, "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "?callback-error? callback LineCounter.data_received() raised ValueError: invalid "
            "literal for int() with base 10: b'three'; the event loop caught it and only logged it",
            "  at test_mod.py:11 in data_received",
            "  run by protocol LineCounter: Fatal error: protocol.data_received() call failed.",
            f"  fix: {PROTOCOL_FIX}",
        ]
    )


LOOK_ALIKES = """\
import asyncio
import logging


def on_reading(text, readings):
    try:
        readings.append(float(text))
    except ValueError:
        logging.getLogger("sensor").warning("bad reading %r", text)


async def test_callback_that_handles_its_own_error():
    readings = []
    asyncio.get_running_loop().call_soon(on_reading, "12,5", readings)
    asyncio.get_running_loop().call_soon(on_reading, "12.5", readings)
    await asyncio.sleep(0.01)
    assert readings == [12.5]


def parse(text):
    return int(text)


async def test_own_exception_handler_consumes_the_error():
    seen = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: seen.append(context["exception"]))
    try:
        loop.call_soon(parse, "x")
        await asyncio.sleep(0.01)
    finally:
        loop.set_exception_handler(None)
    assert [type(e) for e in seen] == [ValueError]


async def boom():
    raise ValueError("lost")


async def test_lost_task_exception_stays_never_retrieved():
    asyncio.create_task(boom())
    await asyncio.sleep(0.01)
"""


@pytest.mark.parametrize("runner", RUNNERS[:2])
def test_look_alikes_are_not_callback_errors(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    write_for_runner(pytester, runner, LOOK_ALIKES)
    result = pytester.runpytest(*ARGS, *runner, "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["?never-retrieved? task '*' running boom() raised ValueError: lost, *"]
    )
    result.stdout.no_fnmatch_line("*callback-error? *")


def test_warn_level_allow_marker_and_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""\
import asyncio
import pytest


def parse(text):
    return int(text)


async def test_warned():
    asyncio.get_running_loop().call_soon(parse, "x")
    await asyncio.sleep(0.01)


@pytest.mark.asynccheck(allow=["callback-error"])
async def test_allowed():
    asyncio.get_running_loop().call_soon(parse, "x")
    await asyncio.sleep(0.01)
"""
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-callback-error=warn", "-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*CallbackErrorWarning: ?callback-error? callback parse() raised ValueError: invalid "
            "literal for int() with base 10: 'x'*",
        ]
    )
    assert "asynccheck: mode=error" in result.stdout.str()
    off = pytester.runpytest(*ARGS, "--asynccheck-callback-error=off", "-p", "no:randomly")
    off.assert_outcomes(passed=2)
    off.stdout.fnmatch_lines(["*callback-error=off*"])


READERS_AND_SERVERS = """\
import asyncio
import socket


async def test_reader_callback_raises_every_time_it_runs():
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    counts = []

    def on_readable():
        counts.append(len(a.recv(1)))
        raise RuntimeError("cannot parse")

    loop.add_reader(a.fileno(), on_readable)
    b.send(b"xyz")
    await asyncio.sleep(0.05)
    loop.remove_reader(a.fileno())
    a.close()
    b.close()
    assert counts == [1, 1, 1]


async def test_server_callback_raises():
    async def handle(reader, writer):
        writer.close()
        raise ValueError("bad request")

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.read()
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    await asyncio.sleep(0.01)
"""


def test_readers_that_keep_raising_and_server_callbacks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=READERS_AND_SERVERS)
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "?callback-error? callback test_reader_callback_raises_every_time_it_runs.<locals>."
            "on_readable() raised RuntimeError: cannot parse; the event loop caught it and only "
            "logged it (3 times)",
            "  at test_mod.py:14 in on_readable",
            "  run by a reader of file descriptor * (loop.add_reader): *",
        ]
    )
    if sys.version_info >= (3, 11):  # 3.10 leaves the failed task to the collector
        result.stdout.fnmatch_lines(
            [
                "?callback-error? callback *handle() raised ValueError: bad request; *",
                "  at test_mod.py:28 in handle",
                "  run by the event loop: Unhandled exception in client_connected_cb",
                f"  fix: {CALLBACK_FIX}",
            ]
        )
    else:
        result.stdout.fnmatch_lines(["?never-retrieved? *handle() raised ValueError: bad request*"])
