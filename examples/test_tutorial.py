"""The tutorial's code under ``pytest --asynccheck``: the correct patterns pass, within budgets
that only concurrency meets; each anti-pattern is caught (they are expected failures here, so
this demo run exits 0 while showing every finding).

    pytest --asynccheck examples/
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from examples import (
    awaiting,
    client,
    concurrent_http,
    done_hooks,
    downloads,
    gather_jobs,
    handoff,
    semaphore,
    workers,
)
from examples.conftest import SCALE

# Budgets are in the tutorial's seconds, scaled like its delays: at SCALE = 0.2 a 2-second
# download takes 0.4 s, three of them ~0.4 s together and ~1.2 s one after another. Each budget
# sits below what the code would take one call after another and at least half a second (real)
# above what it takes concurrently: room for a loaded machine, where threads wait for the CPU.


@pytest.mark.max_wall(4.5 * SCALE)
async def test_gathered_downloads_take_as_long_as_the_longest() -> None:
    assert await downloads.download_all(SCALE) == list(downloads.FILES)


@pytest.mark.max_wall(5.5 * SCALE)
async def test_gather_returns_results_in_order() -> None:
    assert await gather_jobs.run_jobs(SCALE) == ["result A", "result B", "result C"]


@pytest.mark.max_wall(5.5 * SCALE)
async def test_offloaded_http_requests_run_concurrently(httpbin: str) -> None:
    results = await concurrent_http.fetch_all(httpbin)
    assert [r["url"] for r in results] == [f"{httpbin}/delay/{d}" for d in (1, 2, 3)]


@pytest.mark.max_wall(6.5 * SCALE)
async def test_semaphore_runs_two_waves() -> None:
    assert await semaphore.run_all(SCALE) == ["A", "B", "C", "D"]


async def test_awaited_coroutine_really_waits() -> None:
    await awaiting.task_correct(0.01)


async def test_worker_thread_hands_its_result_back_thread_safely() -> None:
    assert await handoff.checksum_in_thread(b"data") == await handoff.checksum_to_thread(b"data")


async def test_done_hook_checks_the_task_before_its_result() -> None:
    assert await done_hooks.download_all(done_hooks.record_size) == ({"a.txt": 50, "b.txt": -1}, 1)


@pytest.mark.xfail(strict=True, reason="thread-unsafe: set_result from a worker thread")
async def test_worker_thread_sets_the_result_itself() -> None:
    await handoff.checksum_in_thread_unsafely(b"data")


@pytest.mark.xfail(strict=True, reason="callback-error: the done hook reads a failed result")
async def test_done_hook_with_a_bug() -> None:
    await done_hooks.download_all(done_hooks.record_size_buggy)


@pytest.mark.xfail(strict=True, reason="blocking: time.sleep inside async def holds the loop")
async def test_blocking_sleep_in_a_coroutine() -> None:
    await asyncio.gather(*(downloads.download_file_blocking(n, 0.05) for n in downloads.FILES))


@pytest.mark.xfail(strict=True, reason="blocking: urllib called on the loop, not to_thread")
async def test_blocking_fetch_without_to_thread(httpbin: str) -> None:
    await concurrent_http.fetch_all_blocking(httpbin)


@pytest.mark.xfail(strict=True, reason="unawaited: asyncio.sleep(...) without await")
async def test_missing_await() -> None:
    await awaiting.task_missing_await(0.01)


@pytest.mark.xfail(strict=True, reason="max-wall: three awaits one after another")
@pytest.mark.max_wall(4.5 * SCALE)
async def test_sequential_awaits_miss_the_concurrency_budget() -> None:
    await downloads.download_all_sequentially(SCALE)


async def test_worker_stops_when_cancelled() -> None:
    assert await workers.stop_worker(workers.consume) == (["JOB"], True)


# Python 3.10 has no Task.cancelling(): there the check cannot tell, and the test passes.
@pytest.mark.xfail(
    sys.version_info >= (3, 11), strict=True, reason="swallowed-cancel: except BaseException"
)
async def test_worker_swallows_its_cancellation() -> None:
    assert await workers.stop_worker(workers.consume_swallowing) == (["JOB"], False)


@pytest.fixture
async def upper_server() -> AsyncIterator[int]:
    server = await asyncio.start_server(client.echo_upper, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_client_closes_its_connection(upper_server: int) -> None:
    assert await client.ask(upper_server, "hello") == "HELLO"


@pytest.mark.xfail(strict=True, reason="unclosed: the connection is never closed")
async def test_client_forgets_to_close_its_connection(upper_server: int) -> None:
    assert await client.ask_leaking(upper_server, "hello") == "HELLO"
