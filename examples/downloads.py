"""Lesson 1: three downloads with a blocking sleep take the sum of their delays; with
``asyncio.sleep`` and ``asyncio.gather`` they take as long as the longest one.

    python -m examples.downloads [--scale 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import time

FILES = ("file1.txt", "file2.txt", "file3.txt")
DELAY = 2.0


def download_file_sync(name: str, delay: float) -> str:
    print(f"Start downloading {name}")
    time.sleep(delay)  # blocks the whole thread: nothing else runs meanwhile
    print(f"Finished downloading {name}")
    return name


async def download_file(name: str, delay: float) -> str:
    print(f"Start downloading {name}")
    await asyncio.sleep(delay)  # yields to the loop: the other downloads run meanwhile
    print(f"Finished downloading {name}")
    return name


async def download_file_blocking(name: str, delay: float) -> str:
    """The mistake: an ``async def`` that calls a blocking sleep is still sequential."""
    print(f"Start downloading {name}")
    time.sleep(delay)
    print(f"Finished downloading {name}")
    return name


def download_all_sync(scale: float = 1.0) -> list[str]:
    return [download_file_sync(name, DELAY * scale) for name in FILES]


async def download_all(scale: float = 1.0) -> list[str]:
    return list(await asyncio.gather(*(download_file(n, DELAY * scale) for n in FILES)))


async def download_all_sequentially(scale: float = 1.0) -> list[str]:
    """Correct awaits, one after another: no blocking, and still no concurrency."""
    results = []
    for name in FILES:
        results.append(await download_file(name, DELAY * scale))
    return results


def main(scale: float = 1.0) -> tuple[float, float]:
    start = time.perf_counter()
    download_all_sync(scale)
    sync_total = time.perf_counter() - start
    print(f"[TOTAL SYNC] {sync_total:.2f} seconds")
    start = time.perf_counter()
    asyncio.run(download_all(scale))
    async_total = time.perf_counter() - start
    print(f"[TOTAL ASYNC] {async_total:.2f} seconds")
    return sync_total, async_total


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    main(parser.parse_args().scale)
