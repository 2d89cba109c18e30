"""The README's demo: ``pytest --asynccheck examples/`` passes the tutorial's correct patterns,
catches each anti-pattern with the right finding, and exits 0."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import ARGS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Python 3.10 has no Task.cancelling(): the worker that swallows its cancellation passes there.
OLD_PYTHON = int(sys.version_info < (3, 11))
SWALLOWED_SUMMARY = (
    ()
    if OLD_PYTHON
    else (
        "error swallowed-cancel examples/workers.py:17 in consume_swallowing "
        "consume_swallowing()  x1",
        "        examples/test_tutorial.py::test_worker_swallows_its_cancellation",
    )
)


@pytest.fixture
def tutorial(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(
        EXAMPLES, pytester.path / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    return pytester


def test_demo_run_shows_every_finding_and_exits_0(tutorial: pytest.Pytester) -> None:
    result = tutorial.runpytest_subprocess(*ARGS, "examples/", "-rxX", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=9 + OLD_PYTHON, xfailed=8 - OLD_PYTHON)
    result.stdout.fnmatch_lines(
        [
            "*= asynccheck =*",
            "in the code under test:",
            "error blocking        examples/concurrent_http.py:* in fetch "
            "urllib.request.urlopen  x3",
            "        examples/test_tutorial.py::test_blocking_fetch_without_to_thread",
            "error blocking        examples/downloads.py:* in download_file_blocking "
            "time.sleep  x3",
            "        examples/test_tutorial.py::test_blocking_sleep_in_a_coroutine",
            "error callback-error  examples/done_hooks.py:* in record_size_buggy "
            "functools.partial(record_size_buggy)()  x1",
            "        examples/test_tutorial.py::test_done_hook_with_a_bug",
            *SWALLOWED_SUMMARY,
            "error thread-unsafe   examples/handoff.py:* in worker future.set_result()  x1",
            "        examples/test_tutorial.py::test_worker_thread_sets_the_result_itself",
            "error unawaited       examples/awaiting.py:* in task_missing_await sleep()  x1",
            "        examples/test_tutorial.py::test_missing_await",
            "error unclosed        examples/client.py:21 in ask_leaking StreamWriter  x1",
            "        examples/test_tutorial.py::test_client_forgets_to_close_its_connection",
            "in test files:",
            "error max-wall        examples/test_tutorial.py:* in "
            "test_sequential_awaits_miss_the_concurrency_budget max_wall  x1",
        ],
        consecutive=False,
    )


def test_each_anti_pattern_fails_for_the_right_reason(tutorial: pytest.Pytester) -> None:
    result = tutorial.runpytest_subprocess(
        *ARGS, "examples/", "--runxfail", "-p", "no:randomly", "-k", "not correctly"
    )
    result.assert_outcomes(passed=9 + OLD_PYTHON, failed=8 - OLD_PYTHON)
    result.stdout.fnmatch_lines(
        [
            "?blocking? blocking call time.sleep() held the event loop for * ms*",
            "  at examples/downloads.py:* in download_file_blocking",
            "  fix: await asyncio.sleep(...)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "?blocking? blocking call urllib.request.urlopen() held the event loop for *",
            "  at examples/concurrent_http.py:* in fetch",
            "  fix: *asyncio.to_thread*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "?thread-unsafe? future.set_result() was called from thread 'checksum-worker', not "
            "the event loop's thread: *",
            "  at examples/handoff.py:* in worker",
            "  fix: from another thread, complete the future on its loop: "
            "loop.call_soon_threadsafe(fut.set_result, value)*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "?callback-error? callback functools.partial(record_size_buggy)() raised "
            "ConnectionError: b.txt: connection reset; the event loop caught it and only logged it",
            "  at examples/done_hooks.py:* in record_size_buggy",
            "  run by a done callback of task '*' running download(): *",
            "  re-raised here; raised at examples/done_hooks.py:* in download",
            "  fix: in a done callback, check task.cancelled() and task.exception() before *",
        ]
    )
    if not OLD_PYTHON:
        result.stdout.fnmatch_lines(
            [
                "?swallowed-cancel? task '*' running consume_swallowing() was cancelled while "
                "suspended here and returned normally, *",
                "  at examples/workers.py:17 in consume_swallowing",
                "  task created at examples/workers.py:41",
                "  cancel() called at examples/workers.py:44 in stop_worker",
            ]
        )
    result.stdout.fnmatch_lines(
        [
            "?unclosed? StreamWriter made here was * it was never closed",
            "  at examples/client.py:21 in ask_leaking",
            "  fix: close the connection when done: writer.close()*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "?unawaited? coroutine 'sleep' was never awaited",
            "  at examples/awaiting.py:* in task_missing_await",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "?max-wall? wall time * exceeded the max_wall budget of 900 ms",
            "  3 awaits of about * ms ran one after another; asyncio.gather them:",
            "    examples/downloads.py:* in download_all_sequentially "
            "awaited download_file() for *",
            "  fix: run the independent awaits concurrently with asyncio.gather(...)",
        ]
    )
