"""Lesson 7: ``asyncio.Semaphore(2)`` lets two of four 2-second tasks run at a time: two waves,
about 4 seconds in all.

    python -m examples.semaphore [--scale 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import time

DELAY = 2.0


async def limited_task(name: str, semaphore: asyncio.Semaphore, delay: float) -> str:
    async with semaphore:
        print(f"Task {name} started")
        await asyncio.sleep(delay)
        print(f"Task {name} finished")
        return name


async def run_all(scale: float = 1.0, limit: int = 2) -> list[str]:
    semaphore = asyncio.Semaphore(limit)
    names = ("A", "B", "C", "D")
    return list(await asyncio.gather(*(limited_task(n, semaphore, DELAY * scale) for n in names)))


def main(scale: float = 1.0) -> float:
    start = time.perf_counter()
    asyncio.run(run_all(scale))
    total = time.perf_counter() - start
    print(f"[TOTAL] {total:.2f} seconds")
    return total


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    main(parser.parse_args().scale)
