"""Lesson 2: ``asyncio.gather`` runs jobs concurrently and returns their results in the order
the jobs were given, not the order they finished.

    python -m examples.gather_jobs [--scale 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import time

JOBS = (("A", 3.0), ("B", 1.0), ("C", 2.0))


async def job(name: str, delay: float) -> str:
    print(f"Job {name} started")
    await asyncio.sleep(delay)
    print(f"Job {name} finished after {delay:.1f}s")
    return f"result {name}"


async def run_jobs(scale: float = 1.0) -> list[str]:
    return list(await asyncio.gather(*(job(name, delay * scale) for name, delay in JOBS)))


def main(scale: float = 1.0) -> list[str]:
    start = time.perf_counter()
    results = asyncio.run(run_jobs(scale))
    print(f"Results: {results}")
    print(f"[TOTAL WALL TIME] {time.perf_counter() - start:.2f} seconds")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    main(parser.parse_args().scale)
