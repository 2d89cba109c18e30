"""Blocking calls and stalls on the event-loop thread (kind ``blocking``)."""

from __future__ import annotations

import builtins
import json
import os
import re
import socket
import threading
import time
import types

import pytest

from pytest_asynccheck.detectors.blocking import catalogue, loopthread, nonblocking, wrappers
from pytest_asynccheck.detectors.blocking import watchdog as monitor
from tests.helpers import ANYIO, ARGS, ASYNCIO, ASYNCIO_INI, failure_sections

INI = "[pytest]\n"

#: Inner test files use this marker on the line a finding must name.
MARK = "# <- here"
#: A busy loop for ``seconds`` of the loop thread's CPU time, not of the clock (a wait for a
#: CPU on a loaded machine is not a stall); four lines, the third marked.
SPIN = f"""def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:  {MARK}
        pass"""

SERVERS = """
import http.server
import socket
import threading

import pytest


class Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def http_url():
    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def echo_addr():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(None)
            with conn:
                data = conn.recv(1024)
                if data:
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()
    stop.set()
    thread.join()
    listener.close()
"""


def line_of(source: str, marker: str = MARK) -> int:
    for number, text in enumerate(source.lstrip("\n").splitlines(), start=1):
        if marker in text:
            return number
    raise AssertionError(f"no {marker!r} in the inner test")


def run(pytester: pytest.Pytester, source: str, *extra: str) -> pytest.RunResult:
    pytester.makeini(INI + (ASYNCIO_INI if "asyncio" in extra else ""))
    pytester.makeconftest(SERVERS)
    pytester.makepyfile(test_it=source)
    return pytester.runpytest(*ARGS, *extra)


def assert_blocking(result: pytest.RunResult, call: str, line: int, fix: str) -> None:
    result.stdout.fnmatch_lines(
        [
            f"*[[]blocking[]] blocking call {call}() held the event loop for * ms*",
            f"*at test_it.py:{line} in *",
            f"*fix: {fix}*",
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


# -- every catalogue family -------------------------------------------------------------------

FAMILIES = {
    "time.sleep": (
        "",
        "time.sleep(0.002)",
        "await asyncio.sleep(...)",
    ),
    "socket.create_connection": (
        "",
        "sock = socket.create_connection(echo_addr)",
        "use asyncio streams*",
    ),
    "socket.socket.recv": (
        "sock = socket.create_connection(echo_addr)\n    sock.sendall(b'x')",
        "sock.recv(1)",
        "use asyncio streams*",
    ),
    "ssl.SSLSocket.do_handshake": (
        "with asynccheck.allow_blocking():\n"
        "        raw = socket.create_connection(echo_addr)\n"
        "    context = ssl.create_default_context()\n"
        "    sock = context.wrap_socket(\n"
        "        raw, server_hostname='localhost', do_handshake_on_connect=False\n"
        "    )",
        "with contextlib.suppress(OSError): sock.do_handshake()",
        "use asyncio streams*",
    ),
    "socket.getaddrinfo": (
        "",
        "socket.getaddrinfo('localhost', 80)",
        "await loop.getaddrinfo(*",
    ),
    "urllib.request.urlopen": (
        "",
        "urllib.request.urlopen(http_url).read()",
        "use an async HTTP client*",
    ),
    "http.client.HTTPConnection.request": (
        "conn = http.client.HTTPConnection(http_url.split('/')[2])\n"
        "    with asynccheck.allow_blocking():\n"
        "        conn.connect()",
        "conn.request('GET', '/')",
        "use an async HTTP client*",
    ),
    "subprocess.run": (
        "",
        "subprocess.run([sys.executable, '-c', 'pass'])",
        "await asyncio.create_subprocess_exec(*",
    ),
    "os.system": (
        "",
        "os.system(f'{sys.executable} -c pass')",
        "await asyncio.create_subprocess_shell(*",
    ),
    "subprocess.Popen.wait": (
        "proc = subprocess.Popen(\n"
        "        [sys.executable, '-c', f'import time; time.sleep({LONGER_THAN_A_PAUSE})']\n"
        "    )",
        "proc.wait()",
        "await proc.wait() on a process*",
    ),
    "open": (
        "path = tmp_path / 'f.txt'",
        "open(path, 'w').close()",
        "await asyncio.to_thread(<the file work>*",
    ),
    "pathlib.Path.write_text": (
        "path = tmp_path / 'f.txt'",
        "path.write_text('x')",
        "await asyncio.to_thread(<the file work>*",
    ),
    "shutil.copyfile": (
        "src = tmp_path / 'a'\n    with asynccheck.allow_blocking():\n        src.write_text('x')",
        "shutil.copyfile(src, tmp_path / 'b')",
        "await asyncio.to_thread(<the file work>*",
    ),
    "sqlite3.connect": (
        "",
        "db = sqlite3.connect(tmp_path / 'db.sqlite')",
        "*aiosqlite*",
    ),
    "sqlite3.Connection.execute": (
        "with asynccheck.allow_blocking():\n        db = sqlite3.connect(tmp_path / 'db.sqlite')",
        "db.execute('create table t (x)')",
        "*aiosqlite*",
    ),
    "sqlite3.Connection.commit": (
        "with asynccheck.allow_blocking():\n"
        "        db = sqlite3.connect(tmp_path / 'db.sqlite')\n"
        "        db.execute('create table t (x)')",
        "db.commit()",
        "*aiosqlite*",
    ),
    "threading.Event.wait": (
        "event = threading.Event()",
        "event.wait(0.005)",
        "use the asyncio primitive*",
    ),
    "threading.Thread.join": (
        "thread = threading.Thread(target=time.sleep, args=(LONGER_THAN_A_PAUSE,))\n"
        "    thread.start()",
        "thread.join()",
        "use the asyncio primitive*",
    ),
    "queue.Queue.get": (
        "q = queue.Queue()\n    threading.Timer(LONGER_THAN_A_PAUSE, q.put, args=(1,)).start()",
        "q.get()",
        "use the asyncio primitive*",
    ),
    "concurrent.futures.Future.result": (
        "pool = concurrent.futures.ThreadPoolExecutor(1)\n"
        "    future = pool.submit(time.sleep, LONGER_THAN_A_PAUSE)",
        "future.result()",
        "await asyncio.wrap_future(future)*",
    ),
    "select.select": (
        "r, w = os.pipe()",
        "select.select([r], [], [], 0.005)",
        "loop.add_reader*",
    ),
    "input": (
        "",
        "with contextlib.suppress(OSError): input()",
        "await asyncio.to_thread(input, ...)",
    ),
    "asyncio.run": (
        "coro = asyncio.sleep(0)",
        "with contextlib.suppress(RuntimeError): asyncio.run(coro)",
        "await the coroutine instead of running a nested event loop",
    ),
    "asyncio.BaseEventLoop.run_until_complete": (
        "loop = asyncio.get_running_loop()\n    fut = loop.create_future()\n    fut.set_result(1)",
        "with contextlib.suppress(RuntimeError): loop.run_until_complete(fut)",
        "await the coroutine instead of running a nested event loop",
    ),
}

FAMILY_TEMPLATE = """
import asyncio, concurrent.futures, contextlib, http.client, os, queue, select, shutil
import socket, sqlite3, ssl, subprocess, sys, threading, time, urllib.request

import pytest_asynccheck as asynccheck

# Another thread's work must still be running when the call waits for it, or the call cannot
# block and is rightly not reported: longer than the thread could be kept from running on a
# loaded machine between starting that work and making the call.
LONGER_THAN_A_PAUSE = 0.3


async def test_it({fixtures}):
    {setup}
    {call}  {mark}
    for name in ("db", "sock", "conn"):
        if name in locals():
            locals()[name].close()
    if "pool" in locals():
        locals()["pool"].shutdown(wait=False)
"""


@pytest.mark.parametrize("call", list(FAMILIES))
def test_a_catalogued_call_on_the_loop_fails_the_test_with_line_call_duration_and_fix(
    pytester: pytest.Pytester, call: str
) -> None:
    setup, statement, fix = FAMILIES[call]
    fixtures = ", ".join(
        name for name in ("tmp_path", "http_url", "echo_addr") if name in setup + statement
    )
    source = FAMILY_TEMPLATE.format(
        fixtures=fixtures, setup=setup or "pass", call=statement, mark=MARK
    )
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    assert_blocking(result, call, line_of(source), fix)


# -- where the call is made ---------------------------------------------------------------


def test_a_name_imported_under_an_alias_before_the_plugin_started_is_still_caught(
    pytester: pytest.Pytester,
) -> None:
    pytester.syspathinsert()
    pytester.makepyfile(helpers="from time import sleep as nap\n")
    pytester.makeconftest("import helpers\n")
    source = f"""
import helpers

async def test_it():
    helpers.nap(0.002)  {MARK}
"""
    pytester.makepyfile(test_it=source)
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(failed=1)
    assert_blocking(result, "time.sleep", line_of(source), "await asyncio.sleep(...)")


def test_a_two_millisecond_sleep_three_sync_helpers_deep_names_the_line_and_the_chain(
    pytester: pytest.Pytester,
) -> None:
    source = f"""
from time import sleep as nap

def third():
    nap(0.002)  {MARK}

def second():
    third()

def first():
    second()

async def test_it():
    first()
"""
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    assert_blocking(result, "time.sleep", line_of(source), "await asyncio.sleep(...)")
    result.stdout.fnmatch_lines(
        [
            "*at test_it.py:4 in third",
            "  test_it.py:13 in test_it",
            "  test_it.py:10 in first",
            "  test_it.py:7 in second",
            "  test_it.py:4 in third",
        ]
    )


def test_a_sleep_in_a_call_soon_callback_is_caught(pytester: pytest.Pytester) -> None:
    source = f"""
import asyncio, time

def callback():
    time.sleep(0.002)  {MARK}

async def test_it():
    asyncio.get_running_loop().call_soon(callback)
    await asyncio.sleep(0.01)
"""
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    assert_blocking(result, "time.sleep", line_of(source), "await asyncio.sleep(...)")


def test_a_sleep_in_an_async_fixture_errors_the_test_in_setup(pytester: pytest.Pytester) -> None:
    source = f"""
import time
import pytest

@pytest.fixture
async def slow():
    time.sleep(0.002)  {MARK}
    yield 1

async def test_it(slow):
    pass
"""
    result = run(pytester, source)
    result.assert_outcomes(errors=1)
    assert_blocking(result, "time.sleep", line_of(source), "await asyncio.sleep(...)")
    result.stdout.fnmatch_lines(["*asynccheck found 1 problem in test_it.py::test_it (setup)*"])


def test_blocking_calls_in_an_async_generator_and_context_manager_are_both_reported(
    pytester: pytest.Pytester,
) -> None:
    source = """
import contextlib, time

async def numbers():
    for i in range(2):
        time.sleep(0.001)  # <- agen
        yield i

@contextlib.asynccontextmanager
async def resource():
    time.sleep(0.001)  # <- acm
    yield

async def test_it():
    async with resource():
        async for _ in numbers():
            pass
"""
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*at test_it.py:{line_of(source, '# <- acm')} in resource*",
            f"*at test_it.py:{line_of(source, '# <- agen')} in numbers*",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(["*held the event loop for * ms* (2 times)"])


def test_the_same_site_hit_a_hundred_times_is_one_finding_with_a_count(
    pytester: pytest.Pytester,
) -> None:
    source = f"""
import time

async def test_it():
    for _ in range(100):
        time.sleep(0)  {MARK}
"""
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*asynccheck found 1 problem*", "*(100 times)"])
    assert_blocking(result, "time.sleep", line_of(source), "await asyncio.sleep(...)")


@pytest.mark.parametrize("order", ["short first", "long first"])
def test_a_site_seen_several_times_is_shown_by_its_longest_occurrence(
    pytester: pytest.Pytester, order: str
) -> None:
    # janus's test_simple_queue waits at one line of Queue.put for 10 ms, then, from another
    # caller, for 100 ms: the finding said "10 ms (4 times)" and showed the 10 ms caller only.
    calls = ["pause(0)  # <- short", "pause(0.5)  # <- long"]
    if order == "long first":
        calls.reverse()
    source = f"""
import time

def pause(seconds):
    time.sleep(seconds)  {MARK}

async def test_it():
    {calls[0]}
    {calls[1]}
"""
    result = run(pytester, source, "--asynccheck-report=report.json")
    result.assert_outcomes(failed=1)
    (finding,) = json.loads((pytester.path / "report.json").read_text())["findings"]
    assert finding["count"] == 2
    assert f"held the event loop for {finding['duration'] * 1000:.1f} ms" in finding["message"]
    assert finding["stack"] == [
        f"test_it.py:{line_of(source, '# <- long')} in test_it",
        f"test_it.py:{line_of(source)} in pause",
    ]
    result.stdout.fnmatch_lines(
        [
            f"*[[]blocking[]] {finding['message']} (2 times)",
            f"*at test_it.py:{line_of(source)} in pause",
            f"*test_it.py:{line_of(source, '# <- long')} in test_it",
        ]
    )
    assert f"test_it.py:{line_of(source, '# <- short')}" not in result.stdout.str()


# -- the user's traceback --------------------------------------------------------------------

RAISING = """
import socket, threading, time


def closed_port():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


async def test_refused():
    socket.create_connection(("127.0.0.1", closed_port()))


async def test_refused_on_a_socket():
    with socket.socket() as sock:
        sock.connect(("127.0.0.1", closed_port()))


async def test_negative_sleep():
    time.sleep(-1)


async def test_join_with_an_argument_too_many():
    threading.Thread(target=print).join(1, 2)


def test_a_sync_test_sleeping_on_a_string():
    time.sleep("x")
"""


def test_a_call_that_raises_shows_the_same_traceback_with_and_without_checks(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI + ASYNCIO_INI + "asyncio_mode = auto\n")
    pytester.makepyfile(test_it=RAISING)
    plain = pytester.runpytest("-p", "asynccheck", *ASYNCIO, "--tb=long")
    checked = pytester.runpytest(*ARGS, *ASYNCIO, "--tb=long")
    plain.assert_outcomes(failed=5)
    checked.assert_outcomes(failed=5)
    assert "pytest_asynccheck" not in checked.stdout.str()
    assert "During handling" not in checked.stdout.str()
    checked.stdout.fnmatch_lines(
        [
            ">       socket.create_connection((*",
            ">           sock.connect((*",
            "E           ConnectionRefusedError: *",
            ">       time.sleep(-1)",
            "E       ValueError: sleep length must be non-negative",
            ">       threading.Thread(target=print).join(1, 2)",
            "E       TypeError: *join() takes from 1 to 2 positional arguments but 3 were given",
            '>       time.sleep("x")',
        ],
        consecutive=False,
    )
    tracebacks = failure_sections(checked)
    assert len(tracebacks) == 5
    assert tracebacks == failure_sections(plain)


# -- the watchdog -------------------------------------------------------------------------------


def test_a_cpu_bound_stall_is_reported_at_the_line_where_the_loop_was_stuck(
    pytester: pytest.Pytester,
) -> None:
    # Spins count CPU time: the loop thread's waits for a CPU on a loaded machine are not
    # stalls, so a spin on the clock could fall under the threshold there.
    source = f"""
import time

{SPIN}

async def test_it():
    spin(0.3)
"""
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*[[]blocking[]] the event loop was stalled for at least * ms (threshold 100 ms)*",
            f"*at test_it.py:{line_of(source)} in spin",
            "  test_it.py:9 in test_it",
            "*fix: move CPU-bound or blocking work off the loop: await asyncio.to_thread(*",
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


COLLECTS_ON_THE_LOOP_THREAD = """
async def test_collects():
    started = time.perf_counter()
    gc.collect()
    assert time.perf_counter() - started > 0.06  # longer than the threshold, twice over
    spin(0.01)  # the watchdog looks once the collector lets go: the same turn, still
    await asyncio.sleep(0)
"""

# A thread of the test collects (as anyio's socket tests' server threads do) while the test's
# own short step runs: the collection holds the interpreter, and so the loop thread, as the
# loop thread's own would.
COLLECTS_ON_ANOTHER_THREAD = """
async def test_collects():
    took = []

    def serve():
        started = time.perf_counter()
        gc.collect()
        took.append(time.perf_counter() - started)

    thread = threading.Thread(target=serve)
    thread.start()
    spin(0.02)  # under the threshold; the collection takes the interpreter meanwhile
    await asyncio.sleep(0)
    thread.join()
    assert took[0] > 0.1  # longer than the threshold, twice over
"""


@pytest.mark.parametrize(
    ("heap", "threshold", "test"),
    [
        pytest.param(1_500_000, "0.03", COLLECTS_ON_THE_LOOP_THREAD, id="loop-thread"),
        pytest.param(2_500_000, "0.05", COLLECTS_ON_ANOTHER_THREAD, id="another-thread"),
    ],
)
def test_the_garbage_collector_holding_the_loop_is_not_a_stall(
    pytester: pytest.Pytester, heap: int, threshold: str, test: str
) -> None:
    # A full collection of a big heap holds the loop past the threshold: the collector's
    # doing, as in a suite of many thousand tests, not the code under test's. The busy loop
    # after it shows the watchdog is still on.
    source = f"""
import asyncio
import gc
import threading
import time

HEAP = [[] for _ in range({heap})]

{SPIN}
{test}
async def test_spins():
    spin(0.2)
"""
    result = run(pytester, source, f"--asynccheck-stall-threshold={threshold}", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_it.py::test_spins*"])
    result.stdout.no_fnmatch_line("*test_collects*stalled*")
    result.stdout.no_fnmatch_line("FAILED test_it.py::test_collects*")


def test_a_stall_inside_a_c_function_names_the_calling_line_and_its_length(
    pytester: pytest.Pytester,
) -> None:
    source = f"""
import hashlib, time

async def test_it():
    started = time.thread_time()
    hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 20_000)
    rounds = int(20_000 * 0.35 / max(time.thread_time() - started, 1e-4))
    hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", rounds)  {MARK}
"""
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the event loop was stalled for at least * ms*hashlib.pbkdf2_hmac(*",
            f"*at test_it.py:{line_of(source)} in test_it",
        ]
    )


def test_a_cpu_stall_in_a_call_soon_callback_names_the_callback_line(
    pytester: pytest.Pytester,
) -> None:
    source = f"""
import asyncio, time

def callback():
    end = time.thread_time() + 0.3
    while time.thread_time() < end:  {MARK}
        pass

async def test_it():
    asyncio.get_running_loop().call_soon(callback)
    await asyncio.sleep(0.4)
"""
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the event loop was stalled for at least * ms*",
            f"*at test_it.py:{line_of(source)} in callback",
        ]
    )


def test_a_stall_is_measured_from_the_loops_own_turns_and_never_reads_short(
    pytester: pytest.Pytester,
) -> None:
    source = f"""
import asyncio, time

{SPIN}

async def test_it():
    await asyncio.sleep(0.03)
    started, cpu = time.perf_counter(), time.thread_time()
    spin(0.25)
    print("SPUN", time.perf_counter() - started, time.thread_time() - cpu)
"""
    result = run(pytester, source, "--asynccheck-report=report.json", "-s")
    result.assert_outcomes(failed=1)
    found = re.search(r"SPUN ([0-9.]+) ([0-9.]+)", result.stdout.str())
    spun, on_cpu = float(found.group(1)), float(found.group(2))
    (finding,) = json.loads((pytester.path / "report.json").read_text())["findings"]
    assert finding["call"] == "stall"
    # The stuck turn of the loop holds the whole spin and little else; the time the loop
    # thread waited for a CPU (on a loaded machine) is taken out, measured from the heartbeat
    # before the stall, so up to that heartbeat's interval of waiting may go too.
    assert on_cpu - 0.05 <= finding["duration"] < spun + 0.1, (spun, on_cpu, finding["duration"])
    shown = int(re.search(r"stalled for at least (\d+) ms", finding["message"]).group(1))
    assert abs(shown - finding["duration"] * 1000) <= 1


def test_turns_just_under_the_threshold_are_not_stalls_at_any_point_between_heartbeats(
    pytester: pytest.Pytester,
) -> None:
    source = """
import asyncio, time
import pytest

def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass

@pytest.mark.parametrize("offset", [0.0, 0.04, 0.08, 0.12, 0.16, 0.2])
async def test_it(offset):
    await asyncio.sleep(0.21 + offset)
    spin(0.25)
    await asyncio.sleep(0.21)
"""
    # Heartbeats come every half threshold (0.2 s here): a heartbeat posted just before the
    # long turn waits longer than the threshold unless the turn itself is measured. The turn
    # is 150 ms under the threshold, a margin that holds on a loaded machine (where the loop
    # thread can also wait for the interpreter behind a preempted thread).
    result = run(pytester, source, "--asynccheck-stall-threshold=0.4")
    result.assert_outcomes(passed=6)
    result.stdout.no_fnmatch_line("*stalled*")


def test_a_stall_while_the_loops_clock_is_mocked_is_still_reported(
    pytester: pytest.Pytester,
) -> None:
    source = f"""
import asyncio, time
from unittest import mock

{SPIN}

async def test_it():
    await asyncio.sleep(0.03)
    with mock.patch("time.monotonic", return_value=0.0):
        spin(0.3)
        await asyncio.sleep(0)
"""
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the event loop was stalled for at least * ms (threshold 100 ms)*",
            f"*at test_it.py:{line_of(source)} in spin",
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_one_watchdog_thread_serves_every_test_of_the_session(pytester: pytest.Pytester) -> None:
    source = """
import asyncio, threading
import pytest

@pytest.mark.parametrize("n", range(5))
async def test_it(n):
    await asyncio.sleep(0.03)
    # Named for thread dumps (pytest-timeout's, faulthandler's); a daemon never holds up exit.
    names = [(t.name, t.daemon) for t in threading.enumerate() if "asynccheck" in t.name]
    assert names == [("asynccheck-watchdog", True)]
"""
    result = run(pytester, source)
    result.assert_outcomes(passed=5)


def test_a_long_catalogued_call_is_one_finding_not_a_call_and_a_stall(
    pytester: pytest.Pytester,
) -> None:
    source = f"""
import time

async def test_it():
    time.sleep(0.25)  {MARK}
"""
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    assert_blocking(result, "time.sleep", line_of(source), "await asyncio.sleep(...)")
    result.stdout.fnmatch_lines(["*asynccheck found 1 problem*"])
    result.stdout.no_fnmatch_line("*stalled*")


def test_the_stall_threshold_option_raises_the_bar(pytester: pytest.Pytester) -> None:
    source = """
import time

async def test_it():
    end = time.perf_counter() + 0.2
    while time.perf_counter() < end:
        pass
"""
    result = run(pytester, source, "--asynccheck-stall-threshold=0.6")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*stalled*")


# -- under other runners ----------------------------------------------------------------------

RUNNER_SOURCE = f"""
import time
{{imports}}

{{decorator}}
async def test_sleep(){{args}}:
    time.sleep(0.002)  {MARK}

{{decorator}}
async def test_stall(){{args}}:
    end = time.thread_time() + 0.3
    while time.thread_time() < end:  # <- stall
        pass
"""

ANYIO_TRIO = (
    "import pytest\n\n@pytest.fixture\ndef anyio_backend():\n    return 'trio'\n",
    "@pytest.mark.anyio",
    "",
)

RUNNERS = {
    "anyio on trio": ((*ANYIO, "-p", "no:asyncio"), *ANYIO_TRIO),
    "pytest-trio": (("-p", "trio", "-p", "no:asyncio"), "import pytest\n", "@pytest.mark.trio", ""),
    "pytest-asyncio auto": ((*ASYNCIO, "-o", "asyncio_mode=auto"), "", "", ""),
    "anyio": (
        (*ANYIO, "-p", "no:asyncio"),
        "import pytest\n\n@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n",
        "@pytest.mark.anyio",
        "",
    ),
}


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_calls_and_stalls_are_caught_under_other_async_plugins(
    pytester: pytest.Pytester, runner: str
) -> None:
    plugin_args, imports, decorator, args = RUNNERS[runner]
    source = RUNNER_SOURCE.format(imports=imports, decorator=decorator, args=args)
    result = run(pytester, source, *plugin_args)
    result.assert_outcomes(failed=2)
    # The fix is said in the terms of the library the test runs on.
    on_trio = "trio" in runner
    sleep_fix = (
        "await trio.sleep(...) (anyio.sleep(...) with anyio)"
        if on_trio
        else "await asyncio.sleep(...)"
    )
    assert_blocking(result, "time.sleep", line_of(source), sleep_fix)
    off_the_loop = (
        "await trio.to_thread.run_sync(func, ...) or await anyio.to_thread.run_sync(func, ...) "
        "with anyio"
        if on_trio
        else "await asyncio.to_thread(func, ...) or await loop.run_in_executor(None, func, ...)"
    )
    result.stdout.fnmatch_lines(
        [
            "*the event loop was stalled for at least * ms*",
            f"*at test_it.py:{line_of(source, '# <- stall')} in test_stall",
            f"  fix: move CPU-bound or blocking work off the loop: {off_the_loop}",
        ]
    )
    assert ("asyncio." in result.stdout.str()) is not on_trio


def test_a_sleep_in_a_pytest_asyncio_fixture_errors_the_test_in_setup(
    pytester: pytest.Pytester,
) -> None:
    source = f"""
import time
import pytest_asyncio

@pytest_asyncio.fixture
async def slow():
    time.sleep(0.002)  {MARK}
    yield 1

async def test_it(slow):
    assert slow == 1
"""
    result = run(pytester, source, *ASYNCIO, "-o", "asyncio_mode=auto")
    result.assert_outcomes(errors=1)
    assert_blocking(result, "time.sleep", line_of(source), "await asyncio.sleep(...)")
    result.stdout.fnmatch_lines(["*asynccheck found 1 problem in test_it.py::test_it (setup)*"])


def test_correct_trio_code_under_anyio_is_not_flagged(pytester: pytest.Pytester) -> None:
    source = """
import time
import pytest
import trio

@pytest.fixture
def anyio_backend():
    return "trio"

@pytest.mark.anyio
async def test_it():
    await trio.to_thread.run_sync(time.sleep, 0.002)
    await trio.sleep(0.15)
    print("done")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0.01)
"""
    result = run(pytester, source, *ANYIO, "-p", "no:asyncio")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*[[]blocking[]]*")
    assert loopthread.foreign_loop_thread is None


# -- what must not be flagged -----------------------------------------------------------------

CORRECT = """
import asyncio, concurrent.futures, logging, socket, sys, threading, time

import pytest


async def test_to_thread():
    await asyncio.to_thread(time.sleep, 0.002)


async def test_run_in_executor():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, time.sleep, 0.002)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        await loop.run_in_executor(pool, time.sleep, 0.002)


async def test_a_user_thread():
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def work():
        time.sleep(0.002)
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=work).start()
    await done.wait()


async def test_a_loop_of_its_own_in_a_worker_thread():
    async def inner():
        time.sleep(0.002)

    await asyncio.to_thread(asyncio.run, inner())


def test_a_sync_test():
    time.sleep(0.002)


@pytest.fixture
def sync_resource(tmp_path):
    time.sleep(0.002)
    (tmp_path / "f").write_text("x")
    return tmp_path / "f"


async def test_a_sync_fixture_used_by_an_async_test(sync_resource):
    assert sync_resource.name == "f"


async def test_print_and_logging():
    print("hello")
    sys.stderr.write("to stderr\\n")
    logging.getLogger("x").warning("a warning")


async def test_an_import_inside_a_coroutine():
    import json, wave  # noqa: F401


async def test_streams_and_sock_calls_on_a_local_server():
    async def echo(reader, writer):
        writer.write(await reader.read(10))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    assert await reader.read(10) == b"ping"
    writer.close()
    await writer.wait_closed()
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, b"pong")
    assert await loop.sock_recv(sock, 10) == b"pong"
    sock.close()
    server.close()
    await server.wait_closed()


async def test_a_ten_millisecond_cpu_burst():
    end = time.perf_counter() + 0.01
    while time.perf_counter() < end:
        pass


async def test_uncontended_waits():
    event = threading.Event()
    event.set()
    event.wait()
    future = concurrent.futures.Future()
    future.set_result(1)
    assert future.result() == 1
"""


def test_correct_async_code_is_not_flagged(pytester: pytest.Pytester) -> None:
    result = run(pytester, CORRECT)
    result.assert_outcomes(passed=11)
    result.stdout.no_fnmatch_line("*[[]blocking[]]*")
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


#: Name and address look-ups: (call, whether it can wait on a resolver). An address is
#: converted, never looked up; so is a host the flags say must be one, and no host at all.
LOOKUPS = {
    "ipv4": ("socket.getaddrinfo('127.0.0.1', 80)", False),
    "ipv6": ("socket.getaddrinfo('::1', 80)", False),
    "ipv6-scope": ("socket.getaddrinfo('fe80::1%lo', 80)", False),
    "bytes": ("socket.getaddrinfo(b'127.0.0.1', b'80')", False),
    "no-host": ("socket.getaddrinfo(None, 80, flags=socket.AI_PASSIVE)", False),
    "numeric-flag": ("socket.getaddrinfo('localhost', 80, flags=socket.AI_NUMERICHOST)", False),
    "trio-style": (
        "socket.getaddrinfo('localhost', 80, 0, 0, 0, "
        "socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)",
        False,
    ),
    "byname-ipv4": ("socket.gethostbyname('127.0.0.1')", False),
    "byname-ex-ipv4": ("socket.gethostbyname_ex('127.0.0.1')", False),
    "nameinfo-numeric": (
        "socket.getnameinfo(('127.0.0.1', 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)",
        False,
    ),
    "name": ("socket.getaddrinfo('localhost', 80)", True),
    "service-name": ("socket.getaddrinfo('127.0.0.1', 'http')", True),
    "empty-scope": ("socket.getaddrinfo('::1%', 80)", True),
    "byname": ("socket.gethostbyname('localhost')", True),
    "nameinfo-service": ("socket.getnameinfo(('127.0.0.1', 80), socket.NI_NUMERICHOST)", True),
    "reverse": ("socket.gethostbyaddr('127.0.0.1')", True),
}


def test_a_look_up_of_an_address_is_not_reported_and_one_of_a_name_is(
    pytester: pytest.Pytester,
) -> None:
    source = f"""
import contextlib, socket
import pytest

CALLS = {{name: call for name, (call, _) in {LOOKUPS!r}.items()}}

@pytest.mark.parametrize("name", list(CALLS))
async def test_it(name):
    with contextlib.suppress(OSError):  # a failed look-up is checked all the same
        eval(CALLS[name])
"""
    result = run(pytester, source, "-rA")
    reported = sorted(name for name, (_, waits) in LOOKUPS.items() if waits)
    result.assert_outcomes(passed=len(LOOKUPS) - len(reported), failed=len(reported))
    for name, (_call, waits) in LOOKUPS.items():
        outcome = "FAILED" if waits else "PASSED"
        result.stdout.fnmatch_lines([f"{outcome} test_it.py::test_it[[]{name}[]]*"])
    result.stdout.fnmatch_lines(
        [
            "*blocking call socket.getaddrinfo() held the event loop*",
            "*blocking call socket.gethostbyname() held the event loop*",
            "*blocking call socket.getnameinfo() held the event loop*",
            "*blocking call socket.gethostbyaddr() held the event loop*",
        ],
        consecutive=False,
    )


def test_a_mocked_sleep_is_not_blocking(pytester: pytest.Pytester) -> None:
    source = """
import time
from unittest import mock

async def test_it():
    with mock.patch("time.sleep") as fake:
        time.sleep(5)
    fake.assert_called_once_with(5)

async def test_autospec():
    with mock.patch("time.sleep", autospec=True) as fake:
        time.sleep(5)
    fake.assert_called_once_with(5)
"""
    result = run(pytester, source)
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*[[]blocking[]]*")


# -- opting out -------------------------------------------------------------------------------


def test_the_marker_allows_a_call_by_its_catalogue_name(pytester: pytest.Pytester) -> None:
    source = """
import time
import pytest

@pytest.mark.asynccheck(allow=["time.sleep"])
async def test_allowed():
    time.sleep(0.002)

@pytest.mark.asynccheck(allow=["stall"])
async def test_stall_allowed():
    end = time.perf_counter() + 0.25
    while time.perf_counter() < end:
        pass

@pytest.mark.asynccheck(allow=["open"])
async def test_other_call_allowed(tmp_path):
    time.sleep(0.002)  # <- here
"""
    result = run(pytester, source)
    result.assert_outcomes(passed=2, failed=1)
    assert_blocking(result, "time.sleep", line_of(source), "await asyncio.sleep(...)")


def test_the_ini_allows_calls_by_name_and_by_calling_module(pytester: pytest.Pytester) -> None:
    pytester.syspathinsert()
    pytester.makepyfile(
        vendored="import time\n\ndef legacy():\n    time.sleep(0.002)\n",
    )
    source = f"""
import os, time
import vendored

async def test_module_allowed():
    vendored.legacy()

async def test_name_allowed():
    time.sleep(0.002)
    time.sleep(0.2)  # longer than the stall threshold: not a stall either

async def test_still_caught():
    os.system("true")  {MARK}
"""
    pytester.makeini(INI + "asynccheck_blocking_allow =\n    time.sleep\n    module:vendored\n")
    pytester.makepyfile(test_it=source)
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=2, failed=1)
    assert_blocking(result, "os.system", line_of(source), "await asyncio.create_subprocess_shell*")


def test_the_module_allow_rule_lets_third_party_code_block_but_not_the_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.syspathinsert()
    pytester.makepyfile(vendored="import time\n\ndef legacy():\n    time.sleep(0.002)\n")
    source = f"""
import time
import vendored

async def test_it():
    vendored.legacy()
    time.sleep(0.002)  {MARK}
"""
    pytester.makeini(INI + "asynccheck_blocking_allow = module:vendored\n")
    pytester.makepyfile(test_it=source)
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(failed=1)
    assert_blocking(result, "time.sleep", line_of(source), "await asyncio.sleep(...)")
    result.stdout.fnmatch_lines(["*asynccheck found 1 problem*"])


def test_a_bad_ini_module_rule_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "asynccheck_blocking_allow = module:\n")
    pytester.makepyfile(test_it="async def test_it():\n    pass\n")
    result = pytester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*asynccheck_blocking_allow='module:'*is not valid*"])


def test_allow_blocking_exempts_a_block_of_calls_and_stalls(pytester: pytest.Pytester) -> None:
    source = f"""
import time
from pytest_asynccheck import allow_blocking

async def test_it():
    with allow_blocking():
        time.sleep(0.002)
        end = time.perf_counter() + 0.25
        while time.perf_counter() < end:
            pass
    time.sleep(0.001)  {MARK}
"""
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    assert_blocking(result, "time.sleep", line_of(source), "await asyncio.sleep(...)")
    result.stdout.fnmatch_lines(["*asynccheck found 1 problem*"])
    result.stdout.no_fnmatch_line("*stalled*")


def test_blocking_severity_warn_turns_findings_into_warnings(pytester: pytest.Pytester) -> None:
    source = """
import time

async def test_it():
    time.sleep(0.001)
"""
    pytester.makeini("[pytest]\nfilterwarnings = default\n")
    pytester.makepyfile(test_it=source)
    result = pytester.runpytest(*ARGS, "--asynccheck-blocking=warn")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*BlockingCallWarning*time.sleep*"])


# -- clean up and off-means-inert -------------------------------------------------------------


def _patched_anywhere() -> list[str]:
    found = []
    for owner, attribute in (
        (time, "sleep"),
        (builtins, "open"),
        (os, "system"),
        (socket, "getaddrinfo"),
        (threading.Event, "wait"),
    ):
        if hasattr(getattr(owner, attribute), "__asynccheck_blocker__"):
            found.append(f"{owner}.{attribute}")
    for name in ("connect", "accept", "recv", "sendall"):
        if hasattr(vars(socket.socket).get(name), "__asynccheck_blocker__"):
            found.append(f"socket.socket.{name}")
    return found


def test_every_patch_and_the_watchdog_are_gone_when_the_session_ends(
    pytester: pytest.Pytester,
) -> None:
    pytester.syspathinsert()
    pytester.makepyfile(aliased="from time import sleep as nap\n")
    source = """
import socket, time
import aliased

async def test_patched_while_running():
    assert hasattr(time.sleep, "__asynccheck_blocker__")
    assert aliased.nap is time.sleep
    kept = socket.asynccheck_kept = socket.socket()  # read again after the session
    assert type(kept) is socket.socket  # the checked methods are on the class itself
    assert kept.recv.__asynccheck_blocker__ == "socket.socket.recv"
    assert socket.socket.accept.__asynccheck_blocker__ == "socket.socket.accept"
    time.sleep(0.15)
"""
    original_sleep = time.sleep
    original_accept = socket.socket.accept
    result = run(pytester, source, "--asynccheck-blocking=warn", "-W", "ignore")
    result.assert_outcomes(passed=1)
    assert _patched_anywhere() == []
    assert time.sleep is original_sleep
    assert socket.socket.accept is original_accept  # its own method, put back
    assert "recv" not in vars(socket.socket)  # the C class's, inherited again
    import aliased  # the inner run's module, imported again in this process

    kept = socket.asynccheck_kept  # type: ignore[attr-defined]
    del socket.asynccheck_kept  # type: ignore[attr-defined]
    assert not hasattr(kept.recv, "__asynccheck_blocker__")
    kept.close()

    assert not hasattr(aliased.nap, "__asynccheck_blocker__")
    alive = [t.name for t in threading.enumerate() if t.name == monitor.THREAD_NAME]
    assert alive == []


def test_a_socket_made_blocking_again_is_checked_again(pytester: pytest.Pytester) -> None:
    # Whether a socket can block is asked at each call: one made non-blocking and then
    # blocking again is checked again, until a zero timeout makes it non-blocking once more.
    source = f"""
import socket

async def test_it():
    left, right = socket.socketpair()
    right.setblocking(False)
    left.setblocking(False)
    left.setblocking(True)
    right.sendall(b"xy")
    assert left.recv(1) == b"x"  {MARK}
    left.settimeout(0)
    assert left.recv(1) == b"y"
    left.close()
    right.close()
"""
    result = run(pytester, source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["asynccheck found 1 problem in test_it.py::test_it (call):"])
    assert_blocking(result, "socket.socket.recv", line_of(source), "*loop.sock_*")
    result.stdout.no_fnmatch_line("*socket.socket.sendall*")


#: A socket pair made when the conftest is imported, before the checks start.
EARLY_SOCKETS = """
import socket

EARLY = socket.socketpair()


def pytest_unconfigure():
    for sock in EARLY:
        sock.close()
"""


@pytest.mark.parametrize("made", ["before the session", "as a user subclass", "in the test"])
def test_every_blocking_socket_keeps_its_exact_type_and_is_checked(
    pytester: pytest.Pytester, made: str
) -> None:
    # trio, among others, accepts only sockets whose type is exactly socket.socket.
    source = f"""
import socket
import conftest


class Mine(socket.socket):
    pass


async def test_it():
    if {made!r} == "before the session":
        left, right = conftest.EARLY
    elif {made!r} == "as a user subclass":
        left, right = socket.socketpair()
        left = Mine(fileno=left.detach())
    else:
        left, right = socket.socketpair()
    assert type(left) is (Mine if {made!r} == "as a user subclass" else socket.socket)
    assert type(right) is socket.socket
    right.sendall(b"x")  # reported too: whether it waits depends on the peer
    assert left.recv(1) == b"x"  {MARK}
    left.close()
    right.close()
"""
    pytester.makeini(INI)
    pytester.makeconftest(EARLY_SOCKETS)
    pytester.makepyfile(test_it=source)
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(failed=1)
    assert_blocking(result, "socket.socket.recv", line_of(source), "*loop.sock_*")
    result.stdout.fnmatch_lines(["*blocking call socket.socket.sendall()*"])


def test_nothing_is_patched_without_asynccheck(pytester: pytest.Pytester) -> None:
    source = """
import builtins, time

async def test_inert():
    assert not hasattr(time.sleep, "__asynccheck_blocker__")
    assert not hasattr(builtins.open, "__asynccheck_blocker__")
"""
    pytester.makeini(INI + ASYNCIO_INI + "asyncio_mode = auto\n")
    pytester.makepyfile(test_it=source)
    result = pytester.runpytest("-p", "asynccheck", *ASYNCIO)
    result.assert_outcomes(passed=1)
    alive = [t.name for t in threading.enumerate() if t.name == monitor.THREAD_NAME]
    assert alive == []


def test_blocking_off_patches_nothing_and_starts_no_watchdog(pytester: pytest.Pytester) -> None:
    source = """
import threading, time

async def test_it():
    assert not hasattr(time.sleep, "__asynccheck_blocker__")
    time.sleep(0.2)
    assert "asynccheck-watchdog" not in [t.name for t in threading.enumerate()]
"""
    result = run(pytester, source, "--asynccheck-blocking=off")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*[[]blocking[]]*")


def test_the_catalogue_names_resolve_on_this_python() -> None:
    missing = []
    for entry in catalogue.CATALOGUE:
        module_name, path = catalogue._target(entry.name)
        obj: object = __import__(module_name, fromlist=["_"])
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append(entry.name)
    assert missing == []
    assert len({entry.name for entry in catalogue.CATALOGUE}) == len(catalogue.CATALOGUE)
    assert all(entry.why and entry.fix for entry in catalogue.CATALOGUE)


def test_a_patched_call_off_the_loop_passes_straight_through() -> None:
    wrapper = wrappers._wrap(
        types.SimpleNamespace(allowed_names=frozenset()),
        catalogue.CATALOGUE[0],
        lambda *a, **k: ("called", a, k),
    )
    assert wrapper(1, x=2) == ("called", (1,), {"x": 2})


@pytest.mark.parametrize(
    ("args", "kwargs", "cannot_block"),
    [
        (("127.0.0.1", "443"), {}, True),
        (("127.0.0.1", "http"), {"flags": socket.AI_NUMERICSERV}, True),
        (("fe80::1%2", None), {}, True),
        (("127.0.0.1", "\uff14\uff14\uff13"), {}, False),  # digits, not ones the C library reads
        (("127.1", 80), {}, False),  # read as an address by the C library; not claimed here
        ((b"\xff", 80), {}, False),
        ((443, 80), {}, False),  # not a host at all: the call itself raises
        (("fe80::1%", 80), {}, False),
        (("example.invalid", 80), {}, False),
    ],
)
def test_which_getaddrinfo_calls_cannot_wait_on_a_resolver(
    args: tuple[object, ...], kwargs: dict[str, int], cannot_block: bool
) -> None:
    assert nonblocking.numeric_getaddrinfo(*args, **kwargs) is cannot_block
