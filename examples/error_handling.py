"""Lesson 4: one failing request must not stop the others. ``safe_fetch`` turns a timeout, an
HTTP error (404) and anything else into a structured result instead of an exception.

    python -m examples.error_handling [--base-url URL] [--scale 0.1]
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script: python examples/<name>.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import urllib.error
from typing import Any

from examples.concurrent_http import fetch
from examples.httpbin import serve


async def safe_fetch(url: str, timeout: float = 2.0) -> dict[str, Any]:
    try:
        data = await asyncio.wait_for(asyncio.to_thread(fetch, url, timeout), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        return {"url": url, "ok": False, "error": "timeout", "detail": f"no answer in {timeout}s"}
    except urllib.error.HTTPError as exc:
        return {
            "url": url,
            "ok": False,
            "error": "http",
            "status": exc.code,
            "detail": str(exc.reason),
        }
    except Exception as exc:  # the point of the lesson: nothing escapes
        return {"url": url, "ok": False, "error": type(exc).__name__, "detail": str(exc)}
    return {"url": url, "ok": True, "status": 200, "data": data}


async def fetch_all(base_url: str, timeout: float) -> list[dict[str, Any]]:
    urls = [f"{base_url}/delay/1", f"{base_url}/status/404", f"{base_url}/delay/5"]
    return list(await asyncio.gather(*(safe_fetch(url, timeout) for url in urls)))


def main(base_url: str | None = None, scale: float = 1.0) -> list[dict[str, Any]]:
    timeout = 3.0 * scale

    def run(url: str) -> list[dict[str, Any]]:
        results = asyncio.run(fetch_all(url, timeout))
        for result in results:
            state = "ok" if result["ok"] else f"failed ({result['error']})"
            print(f"{result['url']}: {state}")
        return results

    if base_url:
        return run(base_url)
    with serve(scale=scale) as local:
        return run(local)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    main(args.base_url, args.scale)
