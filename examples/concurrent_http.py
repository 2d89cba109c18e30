"""Lesson 3: a blocking HTTP client (``urllib``) runs concurrently when each call is offloaded
to a worker thread with ``asyncio.to_thread``: three requests of 1, 2 and 3 seconds take about
3 seconds in all.

    python -m examples.httpbin --port 8000 &
    python -m examples.concurrent_http --base-url http://127.0.0.1:8000

Without ``--base-url`` the program starts its own local server.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script: python examples/<name>.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import time
import urllib.request
from typing import Any

from examples.httpbin import serve

DELAYS = (1, 2, 3)


def fetch(url: str, timeout: float = 10.0) -> dict[str, Any]:
    """Blocking: must never run on the event loop's thread."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data: dict[str, Any] = json.load(response)
        return data


async def fetch_all(base_url: str) -> list[dict[str, Any]]:
    urls = [f"{base_url}/delay/{d}" for d in DELAYS]
    return list(await asyncio.gather(*(asyncio.to_thread(fetch, url) for url in urls)))


async def fetch_all_blocking(base_url: str) -> list[dict[str, Any]]:
    """The mistake: the blocking client called straight from a coroutine."""
    return [fetch(f"{base_url}/delay/{d}") for d in DELAYS]


def run(base_url: str) -> float:
    start = time.perf_counter()
    results = asyncio.run(fetch_all(base_url))
    total = time.perf_counter() - start
    for result in results:
        print(f"Fetched {result['url']}")
    print(f"[TOTAL] {total:.2f} seconds")
    return total


def main(base_url: str | None = None, scale: float = 1.0) -> float:
    if base_url:
        return run(base_url)
    with serve(scale=scale) as local:
        return run(local)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url")
    parser.add_argument("--scale", type=float, default=1.0, help="for the local server")
    args = parser.parse_args()
    main(args.base_url, args.scale)
