"""A queue consumer that must stop when it is cancelled. A broad ``except`` around the ``await``
catches the ``CancelledError`` too, so the worker goes on as if nothing happened: the
cancellation is swallowed, and ``asyncio.timeout``, ``TaskGroup`` and shutdown code that wait for
the worker to end cancelled never see it end.

    python -m examples.workers
"""

from __future__ import annotations

import asyncio


async def consume_swallowing(queue: asyncio.Queue[str | None], done: list[str]) -> list[str]:
    while True:
        try:
            item = await queue.get()
        except BaseException:  # the mistake: CancelledError is a BaseException too
            continue
        if item is None:
            return done
        done.append(item.upper())


async def consume(queue: asyncio.Queue[str | None], done: list[str]) -> list[str]:
    while True:
        try:
            item = await queue.get()
        except Exception:  # CancelledError passes through: the worker stops when cancelled
            continue
        if item is None:
            return done
        done.append(item.upper())


async def stop_worker(worker_function: object) -> tuple[list[str], bool]:
    """Start a worker, feed it one job, cancel it, then send the end marker; returns what it
    did and whether it ended cancelled."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    done: list[str] = []
    worker = asyncio.create_task(worker_function(queue, done))  # type: ignore[operator]
    queue.put_nowait("job")
    await asyncio.sleep(0)
    worker.cancel()
    await asyncio.sleep(0)
    queue.put_nowait(None)
    try:
        await worker
    except asyncio.CancelledError:
        return done, True
    return done, False


def main() -> None:
    for worker_function in (consume, consume_swallowing):
        done, cancelled = asyncio.run(stop_worker(worker_function))
        print(f"{worker_function.__name__}: did {done}, ended cancelled: {cancelled}")


if __name__ == "__main__":
    main()
