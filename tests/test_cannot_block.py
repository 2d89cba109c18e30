"""Catalogued calls that cannot wait in the way they are made: a datagram socket's ``connect``
(it records the peer; anyio's suite connects Unix datagram sockets in its fixtures), and
``Popen.wait`` for a child that has already exited (trio's ``Process.wait`` calls it once the
child's pidfd is readable). Their look-alikes that can wait are still reported."""

from __future__ import annotations

import pytest

from tests.helpers import (
    ARGS,
    STANDALONE_AND_PYTEST_ASYNCIO,
    anyio_module,
    write_for_runner,
)


def line_of(source: str, text: str) -> int:
    """The line of ``source``, as pytester writes it (stripped), that contains ``text``."""
    lines = source.strip().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if text in line)


SOCKETS = """
import asyncio, contextlib, socket, sys


async def test_unix_datagram_connect(tmp_path):
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.bind(str(tmp_path / "peer.sock"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.connect(str(tmp_path / "peer.sock"))
    sock.close()
    peer.close()


async def test_udp_connect_to_an_address():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", 9))


async def test_udp_connect_to_a_name():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("localhost", 9))  # resolved inside connect()


async def test_tcp_connect():
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.socket() as sock:
            sock.connect(server.getsockname())
"""


@pytest.mark.parametrize("runner", STANDALONE_AND_PYTEST_ASYNCIO)
def test_a_datagram_socket_connect_is_not_reported_and_a_stream_one_or_a_name_is(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    write_for_runner(pytester, runner, SOCKETS)
    result = pytester.runpytest(*ARGS, *runner, "-p", "no:randomly", "-rA")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "PASSED test_mod.py::test_unix_datagram_connect",
            "PASSED test_mod.py::test_udp_connect_to_an_address",
        ],
        consecutive=False,
    )
    for test, call in (
        ("test_udp_connect_to_a_name", 'sock.connect(("localhost", 9))'),
        ("test_tcp_connect", "sock.connect(server.getsockname())"),
    ):
        line = line_of(SOCKETS, call)
        result.stdout.fnmatch_lines(
            [
                f"asynccheck found 1 problem in test_mod.py::{test} (call):",
                "?blocking? blocking call socket.socket.connect() held the event loop for *",
                f"  at test_mod.py:{line} in {test}",
            ]
        )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


CHILDREN = """
import subprocess, sys, time


async def test_wait_for_an_exited_child():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    # Poll without reaping until the child has exited: then wait() only collects its status.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            break
        await asyncio.sleep(0.01)
    assert proc.wait() == 0


async def test_wait_for_a_running_child():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    assert proc.wait() == 0
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "WNOWAIT"), reason="POSIX waitid only")
def test_the_wait_for_an_exited_child_is_not_reported_and_for_a_running_one_is(
    pytester: pytest.Pytester,
) -> None:
    source = "import asyncio, os\n" + CHILDREN.strip()
    pytester.makepyfile(test_mod=source)
    result = pytester.runpytest(*ARGS, "-p", "no:randomly", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["PASSED test_mod.py::test_wait_for_an_exited_child"])
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_wait_for_a_running_child (call):",
            "?blocking? blocking call subprocess.Popen.wait() held the event loop for *",
            f"  at test_mod.py:{line_of(source, '.sleep(0.3)') + 1} in "
            "test_wait_for_a_running_child",
        ]
    )


def test_trio_process_wait_under_anyio_is_not_reported(pytester: pytest.Pytester) -> None:
    pytest.importorskip("trio")
    pytester.makepyfile(
        test_mod=anyio_module(
            """
            @pytest.mark.anyio
            async def test_run(anyio_backend):
                result = await anyio.run_process([sys.executable, "-c", "print('hi')"])
                assert result.stdout.strip() == b"hi"
            """,
            backend="trio",
            imports=("anyio", "sys"),
        )
    )
    result = pytester.runpytest(*ARGS, "-p", "anyio", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*[[]blocking[]]*")
