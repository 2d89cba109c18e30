"""The tutorial's programs in ``examples/`` run offline and print what the tutorial shows."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from examples import (
    awaiting,
    client,
    concurrent_http,
    done_hooks,
    downloads,
    error_handling,
    gather_jobs,
    handoff,
    httpbin,
    notebooks,
    semaphore,
    workers,
)

REPO = Path(__file__).resolve().parent.parent
#: One tutorial second is a quarter second here: the timing claims (concurrent is about the
#: longest delay, a timeout beats a slow answer) then keep half a second or more of margin, which
#: a loaded machine, where threads wait for the CPU, does not use up.
SCALE = 0.25


@pytest.fixture(scope="module")
def base_url() -> object:
    with httpbin.serve(scale=SCALE) as url:
        yield url


def test_downloads_sync_is_the_sum_async_is_the_longest(capsys: pytest.CaptureFixture[str]) -> None:
    sync_total, async_total = downloads.main(SCALE)
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["Start downloading file1.txt", "Finished downloading file1.txt"]
    assert out[7:10] == [f"Start downloading file{i}.txt" for i in (1, 2, 3)]
    assert out[6].startswith("[TOTAL SYNC] ") and out[-1].startswith("[TOTAL ASYNC] ")
    assert sync_total >= 3 * 2.0 * SCALE
    assert async_total < 0.7 * sync_total


def test_handoff_hands_the_result_back_each_way(capsys: pytest.CaptureFixture[str]) -> None:
    results = handoff.main()
    assert len(set(results)) == 1 and len(results) == 3
    assert capsys.readouterr().out.splitlines() == [
        f"[{way}] {results[0]}" for way in ("call_soon_threadsafe", "to_thread", "unsafe")
    ]


def test_done_hooks_lose_the_buggy_hooks_exception(caplog: pytest.LogCaptureFixture) -> None:
    good, buggy = done_hooks.main()
    assert good == {"a.txt": 50, "b.txt": -1}
    assert buggy == {"a.txt": 50}
    assert any(record.getMessage().startswith("Exception in callback") for record in caplog.records)


def test_gather_keeps_the_order_of_the_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert gather_jobs.main(SCALE) == ["result A", "result B", "result C"]
    out = capsys.readouterr().out.splitlines()
    assert out[3:6] == [
        f"Job {n} finished after {d * SCALE:.1f}s" for n, d in (("B", 1), ("C", 2), ("A", 3))
    ]
    assert out[-1].startswith("[TOTAL WALL TIME] ")


def test_offloaded_http_takes_about_the_longest_delay(base_url: str) -> None:
    total = concurrent_http.main(base_url)
    assert 3 * SCALE <= total < (1 + 2 + 3) * SCALE


# urllib leaves the connection of a response that timed out for the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_safe_fetch_turns_failures_into_structured_results(base_url: str) -> None:
    ok, missing, slow = error_handling.main(base_url, SCALE)
    gc.collect()
    assert ok["ok"] and ok["status"] == 200 and ok["data"]["url"] == f"{base_url}/delay/1"
    assert missing == {
        "url": f"{base_url}/status/404",
        "ok": False,
        "error": "http",
        "status": 404,
        "detail": "Not Found",
    }
    assert slow["ok"] is False and slow["error"] == "timeout"


def test_safe_fetch_reports_a_refused_connection() -> None:
    import asyncio

    with httpbin.serve() as url:
        pass  # the port is free again now
    result = asyncio.run(error_handling.safe_fetch(f"{url}/get", timeout=2))
    assert result["ok"] is False and result["error"] == "URLError"


def test_missing_await_makes_no_pause(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(RuntimeWarning, match="coroutine 'sleep' was never awaited"):
        correct, missing = awaiting.main(SCALE)
    assert correct >= 1.0 * SCALE > missing


def test_notebook_asyncio_run_fails_and_await_works() -> None:
    wrong, right = notebooks.main(0.001)
    assert wrong == "RuntimeError: asyncio.run() cannot be called from a running event loop"
    assert right == "done"


def test_semaphore_runs_two_waves(capsys: pytest.CaptureFixture[str]) -> None:
    total = semaphore.main(SCALE)
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["Task A started", "Task B started"]
    assert out.index("Task C started") > out.index("Task A finished")
    assert 2 * 2.0 * SCALE <= total < 4 * 2.0 * SCALE


def test_httpbin_endpoints(base_url: str) -> None:
    with urllib.request.urlopen(f"{base_url}/get?x=1") as response:
        body = json.load(response)
    assert body["args"] == {"x": "1"} and body["url"] == f"{base_url}/get"
    assert body["origin"] == "127.0.0.1" and "User-Agent" in body["headers"]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{base_url}/status/418")
    info.value.close()
    assert info.value.code == 418


def test_httpbin_stops_its_threads() -> None:
    before = set(threading.enumerate())
    with httpbin.serve(scale=SCALE) as url:
        urllib.request.urlopen(f"{url}/delay/1").close()
        assert set(threading.enumerate()) - before
    assert set(threading.enumerate()) - before == set()


@pytest.mark.parametrize("how", [["-m", "examples.semaphore"], ["examples/semaphore.py"]])
def test_programs_run_from_the_command_line(how: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, *how, "--scale", "0.01"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("[TOTAL] ")


def test_http_program_runs_as_a_script_with_its_own_server() -> None:
    done = subprocess.run(
        [sys.executable, "examples/concurrent_http.py", "--scale", "0.01"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Fetched http://127.0.0.1:") == 3


def test_a_broad_except_keeps_the_worker_from_ending_cancelled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    workers.main()
    assert capsys.readouterr().out.splitlines() == [
        "consume: did ['JOB'], ended cancelled: True",
        "consume_swallowing: did ['JOB'], ended cancelled: False",
    ]


def test_client_asks_and_closes(capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(client.main())
    assert capsys.readouterr().out == "HELLO\n"
