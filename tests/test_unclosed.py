"""Transports, connections, sockets, subprocess transports and loops a test makes and never
closes fail it at the line that made them; closed ones, and ResourceWarnings, are left alone."""

from __future__ import annotations

import pytest

from pytest_asynccheck.detectors.unclosed import FIXES, LIBRARY_FIX
from tests.helpers import ARGS, ASYNCIO, ASYNCIO_INI
from tests.test_cancellation import RUNNERS, run_with

# The leaks the inner runs make are findings; asyncio's ResourceWarnings about them are shown
# where a test says so, never raised by this suite's own error filter.
pytestmark = pytest.mark.filterwarnings("default::ResourceWarning")

LEAKS = """\
import asyncio
import socket
import sys

import pytest


async def answer(reader, writer):
    await reader.readline()
    writer.write(b"pong\\n")
    await writer.drain()
    writer.close()


@pytest.fixture
async def port():
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_client_forgets_to_close(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping\\n")
    assert await reader.readline() == b"pong\\n"


async def test_socket_never_closed():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))


class Exited(asyncio.SubprocessProtocol):
    def __init__(self, done):
        self.done = done

    def process_exited(self):
        self.done.set_result(None)


async def test_subprocess_transport_never_closed():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    await loop.subprocess_exec(lambda: Exited(done), sys.executable, "-c", "pass")
    await done


async def test_event_loop_never_closed():
    other = asyncio.new_event_loop()
    assert not other.is_closed()


class Holder:
    pass


async def test_socket_left_in_a_reference_cycle():
    holder = Holder()
    holder.me = holder
    holder.sock = socket.socket()
"""


@pytest.mark.parametrize("runner", RUNNERS)
def test_unclosed_resources_fail_at_the_line_that_made_them(
    pytester: pytest.Pytester, runner: str
) -> None:
    result = run_with(pytester, runner, LEAKS)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 5, outcomes
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_client_forgets_to_close *",
            "?unclosed? StreamWriter made here was * it was never closed",
            "  at test_mod.py:24 in test_client_forgets_to_close",
            f"  fix: {FIXES['StreamWriter']}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_socket_never_closed *",
            "?unclosed? socket.socket made here was freed while still open: it was never closed",
            "  at test_mod.py:30 in test_socket_never_closed",
            f"  fix: {FIXES['socket']}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_subprocess_transport_never_closed *",
            "?unclosed? subprocess transport made here was * it was never closed",
            "  at test_mod.py:45 in test_subprocess_transport_never_closed",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_event_loop_never_closed *",
            "?unclosed? event loop made here was * it was never closed",
            "  at test_mod.py:50 in test_event_loop_never_closed",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_socket_left_in_a_reference_cycle *",
            "?unclosed? socket.socket made here was freed while still open*",
            "  at test_mod.py:61 in test_socket_left_in_a_reference_cycle",
        ]
    )


CLOSED = """\
import asyncio
import socket
import sys

import pytest

KEPT = []


async def answer(reader, writer):
    await reader.readline()
    writer.write(b"pong\\n")
    await writer.drain()
    writer.close()


@pytest.fixture
async def port():
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_stream_closed_in_finally_without_wait_closed(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"ping\\n")
        assert await reader.readline() == b"pong\\n"
    finally:
        writer.close()


async def test_socket_closed_by_its_with_block():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))


async def test_server_closed_at_teardown(request):
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    request.addfinalizer(server.close)


async def test_subprocess_awaited():
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    assert await proc.wait() == 0


async def test_event_loop_closed():
    other = asyncio.new_event_loop()
    other.close()


async def test_pooled_socket_kept_open():
    if not KEPT:
        KEPT.append(socket.socket())


def test_pool_closed_at_the_end():
    KEPT.pop().close()
"""


@pytest.mark.parametrize("runner", RUNNERS)
def test_closed_resources_pass(pytester: pytest.Pytester, runner: str) -> None:
    result = run_with(pytester, runner, CLOSED)
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["asynccheck: no findings in 6 checked tests"])


FAKE_LIBRARY = """\
import asyncio


class ClientSession:
    def __init__(self):
        self._loop = asyncio.get_running_loop()
        self.closed = False

    async def close(self):
        self.closed = True

    def __del__(self):
        if not self.closed:
            self._loop.call_exception_handler(
                {"message": "Unclosed client session", "client_session": self}
            )
"""

LIBRARY_USE = """\
import fakelib


async def test_session_dropped_open():
    session = fakelib.ClientSession()
    del session


async def test_session_closed():
    session = fakelib.ClientSession()
    await session.close()
"""


def test_a_library_report_through_the_loop_handler_is_a_finding(
    pytester: pytest.Pytester,
) -> None:
    # In a directory named like an installed package's, so its frames are not the user's.
    library = pytester.mkdir("site-packages")
    (library / "fakelib.py").write_text(FAKE_LIBRARY)
    pytester.makeconftest(f"import sys\nsys.path.insert(0, {str(library)!r})\n")
    pytester.makepyfile(test_mod=LIBRARY_USE)
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_session_dropped_open (call):",
            "?unclosed? Unclosed client session: a client session (ClientSession) was freed "
            "here while still open",
            "  at test_mod.py:6 in test_session_dropped_open",
            f"  fix: {LIBRARY_FIX}",
        ]
    )
    # The library's own log line is still written by the loop's handler.
    result.stdout.fnmatch_lines(["*Unclosed client session*", "client_session: <fakelib*"])


RESOURCE_WARNINGS = """\
import gc
import socket

import pytest


def make_and_drop():
    socket.socket()


def test_sync_test_drops_a_socket():
    make_and_drop()
    gc.collect()


@pytest.fixture
def dropped():
    make_and_drop()
    gc.collect()


async def test_fixture_drops_a_socket(dropped):
    pass


async def test_closed_socket():
    with socket.socket():
        pass
"""

LEAK_TOO = """

async def test_body_drops_a_socket():
    make_and_drop()
"""


@pytest.mark.parametrize("flag", ["default", "error"])
def test_resource_warnings_reach_pytest_as_without_the_checks(
    pytester: pytest.Pytester, flag: str
) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makepyfile(test_mod=RESOURCE_WARNINGS)
    run = ("-p", "no:randomly", *ASYNCIO, "-W", f"{flag}::ResourceWarning")
    plain = pytester.runpytest("-p", "asynccheck", *run)
    checked = pytester.runpytest(*ARGS, *run)
    assert checked.parseoutcomes() == plain.parseoutcomes()
    assert plain.parseoutcomes().get("passed") == (3 if flag == "default" else 1)
    expected = ["*ResourceWarning*unclosed <socket.socket*"]
    for result in (plain, checked):
        result.stdout.fnmatch_lines(expected)
    # A leak the checks report is still the ResourceWarning it was, besides the finding.
    pytester.makepyfile(test_mod=RESOURCE_WARNINGS + LEAK_TOO)
    checked = pytester.runpytest(*ARGS, *run, "-k", "body")
    checked.stdout.fnmatch_lines(["?unclosed? socket.socket made here was freed while still open*"])
    if flag == "error":
        checked.stdout.fnmatch_lines(
            ["*ResourceWarning: unclosed <socket.socket*", "*PytestUnraisableExceptionWarning*"]
        )
    else:
        checked.stdout.fnmatch_lines(["*ResourceWarning: unclosed <socket.socket*"])


def test_warn_level_and_allow_marker(pytester: pytest.Pytester) -> None:
    source = LEAKS.replace(
        "async def test_socket_never_closed",
        "@pytest.mark.asynccheck(allow=['unclosed'])\nasync def test_socket_never_closed",
    )
    pytester.makepyfile(test_mod=source)
    result = pytester.runpytest(*ARGS, "-p", "no:randomly", "--asynccheck-unclosed=warn")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*UnclosedResourceWarning: ?unclosed? event loop made here*"])
    assert "test_socket_never_closed" not in result.stdout.str().split("== asynccheck ==")[-1]


CI_TESTS = """\
import asyncio
import socket


async def test_socket_never_closed():
    socket.socket()


async def test_cancel_swallowed():
    async def swallow():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return None

    task = asyncio.create_task(swallow())
    await asyncio.sleep(0)
    task.cancel()
    await task
"""


def test_json_report_annotations_and_baseline_carry_the_new_kinds(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import sys

    import jsonschema
    from pytest_asynccheck.reporting.json_report import SCHEMA

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pytester.makepyfile(test_mod=CI_TESTS)
    result = pytester.runpytest(*ARGS, "--asynccheck-report=r.json", "-p", "no:randomly")
    expected = ["unclosed"] + (["swallowed-cancel"] if sys.version_info >= (3, 11) else [])
    data = json.loads((pytester.path / "r.json").read_text())
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert sorted(f["kind"] for f in data["findings"]) == sorted(expected)
    commands = [line for line in result.outlines if line.startswith("::error")]
    assert any(
        line.startswith("::error file=test_mod.py,line=6,title=asynccheck unclosed in ")
        for line in commands
    ), commands
    if sys.version_info >= (3, 11):
        assert any("line=12,title=asynccheck swallowed-cancel" in line for line in commands)
    baseline = ("--asynccheck-baseline=b.json",)
    pytester.runpytest(*ARGS, *baseline, "--asynccheck-update-baseline").assert_outcomes(passed=2)
    pytester.runpytest(*ARGS, *baseline).assert_outcomes(passed=2)


MORE = """\
import asyncio

import pytest

KEPT = []


async def test_datagram_transport_never_closed():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))


async def test_loop_kept_open_past_the_test():
    KEPT.append(asyncio.new_event_loop())


@pytest.mark.asyncio(loop_scope="module")
async def test_pooled_connection_on_a_shared_loop():
    loop = asyncio.get_running_loop()
    KEPT.append(
        await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_pool_closed_by_a_later_test():
    transport, _protocol = KEPT.pop()
    transport.close()
    KEPT.pop().close()


async def test_other_handler_reports_are_not_findings():
    loop = asyncio.get_running_loop()
    loop.call_exception_handler({"message": "something else"})
    loop.call_exception_handler({"message": "Unclosed thing", "thing": object()})
"""


def test_datagram_transports_loops_kept_open_and_pools_on_a_shared_loop(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    pytester.makepyfile(test_mod=MORE)
    result = pytester.runpytest(*ARGS, *ASYNCIO, "-p", "no:randomly")
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(
        [
            "?unclosed? _SelectorDatagramTransport made here was * it was never closed",
            "  at test_mod.py:10 in test_datagram_transport_never_closed",
            f"  fix: {FIXES['transport']}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "?unclosed? event loop made here was still open when the test ended: *",
            "  at test_mod.py:14 in test_loop_kept_open_past_the_test",
        ]
    )
