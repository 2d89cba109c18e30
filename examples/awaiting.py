"""Lesson 5: a coroutine function only runs when awaited. Calling it without ``await`` creates a
coroutine object and drops it: no pause, no work, just a ``RuntimeWarning`` some time later.

    python -m examples.awaiting [--scale 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import time


async def task_correct(delay: float) -> None:
    print("Task start")
    await asyncio.sleep(delay)
    print("Task end")


async def task_missing_await(delay: float) -> None:
    print("Task start")
    asyncio.sleep(delay)  # the mistake: creates a coroutine and drops it
    print("Task end")


def main(scale: float = 1.0) -> tuple[float, float]:
    timings = []
    for task in (task_correct, task_missing_await):
        start = time.perf_counter()
        asyncio.run(task(1.0 * scale))
        timings.append(time.perf_counter() - start)
        print(f"[{task.__name__}] {timings[-1]:.2f} seconds")
    return timings[0], timings[1]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    main(parser.parse_args().scale)
