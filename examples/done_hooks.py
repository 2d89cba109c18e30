"""Lesson 9: a done callback runs outside any task. What it raises never reaches the code that
awaits the task: the loop logs "Exception in callback ..." and carries on, so a bug in a
bookkeeping hook goes unnoticed. Check the task's state before reading its result, and handle
errors inside the hook.

    python -m examples.done_hooks
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

#: Sizes of finished downloads, by file name, as a progress display would keep them.
Sizes = dict[str, int]


async def download(name: str, fail: bool = False) -> bytes:
    await asyncio.sleep(0.01)
    if fail:
        raise ConnectionError(f"{name}: connection reset")
    return name.encode() * 10


def record_size_buggy(sizes: Sizes, name: str, task: asyncio.Task[bytes]) -> None:
    sizes[name] = len(task.result())  # the mistake: result() raises for a failed download


def record_size(sizes: Sizes, name: str, task: asyncio.Task[bytes]) -> None:
    if task.cancelled() or task.exception() is not None:
        sizes[name] = -1
        return
    sizes[name] = len(task.result())


async def download_all(
    hook: Callable[[Sizes, str, asyncio.Task[bytes]], None] = record_size,
) -> tuple[Sizes, int]:
    sizes: Sizes = {}
    tasks = []
    for name, fail in (("a.txt", False), ("b.txt", True)):
        task = asyncio.create_task(download(name, fail))
        task.add_done_callback(functools.partial(hook, sizes, name))
        tasks.append(task)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)  # the done callbacks have run
    return sizes, sum(1 for result in results if isinstance(result, Exception))


def main() -> tuple[Sizes, Sizes]:
    good, _ = asyncio.run(download_all(record_size))
    print(f"[record_size] {good}")
    buggy, _ = asyncio.run(download_all(record_size_buggy))
    print(f"[record_size_buggy] {buggy} (the loop logged the hook's exception)")
    return good, buggy


if __name__ == "__main__":
    main()
