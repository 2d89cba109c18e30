"""Cost of the blocking detector's interception on calls that are not blocking the loop.

    python benchmarks/blocking_hotpath.py [--calls 200000] [--runs 7]

Measures, with the catalogue installed vs not (alternated, best of ``--runs``, ns per call):

* a catalogued call from a worker thread (no loop): ``Event.wait()`` on a set event,
  ``select.select([], [], [], 0)``, ``queue.Queue.put(block=False)`` + ``get_nowait()``;
* the same calls on a running loop's thread while a test is current, where the predicate
  says "cannot block" (a set event, a zero timeout), so nothing is reported;
* ``send`` + ``recv`` on a non-blocking socket pair (the methods are patched on
  ``socket.socket`` itself, so the sockets of asyncio and trio pass through them);
* ``await asyncio.sleep(0)`` x 200,000 on a loop (no catalogued call on that path);
* the detector's own events for one short test (``test_started``, ``task_entered``,
  ``task_exited``, ``test_finished``), which is all a test shorter than one watchdog interval
  (a quarter of the stall threshold) pays.

The loop hot path under pytest, with the watchdog, is measured by ``run.py hotpath``.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import select
import socket
import threading
import time
import types
from collections.abc import Callable

from pytest_asynccheck.detectors.blocking import intercept
from pytest_asynccheck.detectors.blocking.detector import BlockingDetector


def kernels(calls: int) -> dict[str, Callable[[], None]]:
    def event_wait() -> None:
        event = threading.Event()
        event.set()
        wait = event.wait
        for _ in range(calls):
            wait()

    def select_zero() -> None:
        sel = select.select
        for _ in range(calls // 10):
            sel([], [], [], 0)

    def queue_put_get() -> None:
        q: queue.Queue[int] = queue.Queue()
        for _ in range(calls // 4):
            q.put(1, block=False)
            q.get_nowait()

    def socket_send_recv() -> None:
        left, right = socket.socketpair()
        left.setblocking(False)
        right.setblocking(False)
        send, recv = left.send, right.recv
        for _ in range(calls // 10):
            send(b"x")
            recv(1)
        left.close()
        right.close()

    return {
        "Event.wait (set)": event_wait,
        "select(0)": select_zero,
        "Queue put+get": queue_put_get,
        "non-blocking socket send+recv": socket_send_recv,
    }


SCALE = {
    "Event.wait (set)": 1,
    "select(0)": 10,
    "Queue put+get": 4,
    "non-blocking socket send+recv": 10,
}


def best(fn: Callable[[], None], calls: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def in_thread(fn: Callable[[], float]) -> float:
    out: list[float] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def on_loop(fn: Callable[[], float]) -> float:
    async def main() -> float:
        return fn()

    return asyncio.run(main())


async def spin(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    calls, runs = args.calls, args.runs
    test = types.SimpleNamespace(loop_thread=None)
    session = types.SimpleNamespace(current=test, rootpath=".", main_thread=threading.get_ident())
    results: dict[str, dict[str, list[float]]] = {}
    for _round in range(3):
        for installed in (False, True):
            interceptor = intercept.Interceptor(session)  # type: ignore[arg-type]
            if installed:
                interceptor.install()
            try:
                state = "on" if installed else "off"
                for name, fn in kernels(calls).items():
                    n = calls // SCALE[name]
                    for where, runner in (("worker thread", in_thread), ("loop thread", on_loop)):
                        t = runner(lambda fn=fn: best(fn, calls, runs))
                        results.setdefault(f"{name}, {where}", {}).setdefault(state, []).append(
                            t / n * 1e9
                        )
                t = min(_timed(lambda: asyncio.run(spin(calls))) for _ in range(max(1, runs // 3)))
                results.setdefault("await sleep(0)", {}).setdefault(state, []).append(
                    t / calls * 1e9
                )
            finally:
                interceptor.uninstall()
    print(f"{'case':42} {'off ns':>9} {'on ns':>9} {'added':>8}")
    for case, by_state in results.items():
        off = min(by_state["off"])
        on = min(by_state["on"])
        print(f"{case:42} {off:9.0f} {on:9.0f} {on - off:8.0f}")
    print(f"{'detector events per short test':42} {'':9} {per_test_events():9.0f}")


def per_test_events(count: int = 20_000) -> float:
    from pytest_asynccheck._gc import CollectorPauses
    from pytest_asynccheck._options import Settings

    session = types.SimpleNamespace(
        current=None,
        rootpath=".",
        main_thread=threading.get_ident(),
        report=print,
        collector=CollectorPauses(),
    )
    detector = BlockingDetector(Settings(enabled=True))
    detector.session_started(session)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    tests = [types.SimpleNamespace(nodeid=f"t{i}", loop_thread=None) for i in range(count)]
    started = time.perf_counter()
    for test in tests:
        detector.test_started(test)  # type: ignore[arg-type]
        detector.task_entered(test, loop, "test")  # type: ignore[arg-type]
        detector.task_exited(test, loop, "test")  # type: ignore[arg-type]
        detector.test_finished(test)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    detector.session_finished(session)  # type: ignore[arg-type]
    loop.close()
    return elapsed / count * 1e9


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
