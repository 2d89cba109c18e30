"""Lesson 8: handing a result from a worker thread back to the event loop. A thread must not
touch the loop or its futures directly: ``future.set_result(...)`` from the worker wakes the
awaiting task through ``loop.call_soon``, which is not thread-safe (the loop may sleep on in its
selector, or its queues get corrupted). ``loop.call_soon_threadsafe`` hands the call over, and
``asyncio.to_thread`` does all of it for you.

    python -m examples.handoff
"""

from __future__ import annotations

import asyncio
import hashlib
import threading


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


async def checksum_in_thread_unsafely(data: bytes) -> str:
    loop = asyncio.get_running_loop()
    result: asyncio.Future[str] = loop.create_future()

    def worker() -> None:
        result.set_result(checksum(data))  # the mistake: completes the future off the loop

    thread = threading.Thread(target=worker, name="checksum-worker")
    loop.call_soon(thread.start)  # started once the caller awaits the result
    try:
        # The worker's call_soon does not wake the loop: if the loop is already asleep in its
        # selector with nothing else to do, only a timer ends that sleep. This one does.
        return await asyncio.wait_for(result, timeout=1)
    finally:
        await asyncio.to_thread(thread.join)


async def checksum_in_thread(data: bytes) -> str:
    loop = asyncio.get_running_loop()
    result: asyncio.Future[str] = loop.create_future()

    def worker() -> None:
        loop.call_soon_threadsafe(result.set_result, checksum(data))

    thread = threading.Thread(target=worker, name="checksum-worker")
    thread.start()
    try:
        return await result
    finally:
        await asyncio.to_thread(thread.join)


async def checksum_to_thread(data: bytes) -> str:
    return await asyncio.to_thread(checksum, data)  # the simplest correct form


def main() -> list[str]:
    data = b"hello, loop"
    results = [
        asyncio.run(function(data))
        for function in (checksum_in_thread, checksum_to_thread, checksum_in_thread_unsafely)
    ]
    for function, value in zip(
        ("call_soon_threadsafe", "to_thread", "unsafe"), results, strict=True
    ):
        print(f"[{function}] {value}")
    return results


if __name__ == "__main__":
    main()
