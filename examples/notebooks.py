"""Lesson 6: a notebook already runs an event loop. ``asyncio.run(main())`` there fails with
"asyncio.run() cannot be called from a running event loop"; the fix is a top-level
``await main()``. Outside a notebook this program simulates one with a running loop.

    python -m examples.notebooks [--scale 0.1]
"""

from __future__ import annotations

import argparse
import asyncio


async def main_job(delay: float) -> str:
    await asyncio.sleep(delay)
    return "done"


async def cell_with_asyncio_run(delay: float) -> str:
    """What a notebook cell does when it calls ``asyncio.run``: fails inside a running loop."""
    coro = main_job(delay)
    try:
        return asyncio.run(coro)
    except RuntimeError as exc:
        coro.close()
        return f"RuntimeError: {exc}"


async def cell_with_await(delay: float) -> str:
    """The fix: await the coroutine at the top level of the cell."""
    return await main_job(delay)


def ipython_check() -> str | None:
    """Run the fixed cell in a real IPython shell when IPython is installed."""
    try:
        from IPython.core.interactiveshell import InteractiveShell
    except ImportError:
        return None
    shell = InteractiveShell.instance()
    result = shell.run_cell(
        "import asyncio\nasync def job():\n    await asyncio.sleep(0)\n    return 'done'\n"
        "await job()"
    )
    return str(result.result)


def main(scale: float = 1.0) -> tuple[str, str]:
    async def notebook() -> tuple[str, str]:
        return await cell_with_asyncio_run(scale), await cell_with_await(scale)

    wrong, right = asyncio.run(notebook())
    print(f"asyncio.run in a running loop -> {wrong}")
    print(f"await main() in a running loop -> {right}")
    checked = ipython_check()
    if checked is not None:
        print(f"IPython top-level await -> {checked}")
    return wrong, right


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    main(parser.parse_args().scale)
