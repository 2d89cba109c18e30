"""Suite overhead of ``--asynccheck``: a generated suite of trivial async tests run under
pytest-asyncio auto mode with and without the checks, alternating the variants.

    python benchmarks/overhead.py [--tests 1000] [--runs 5]

Prints the wall time of every run, the medians and the ratio (target: <= 1.05).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TEST_MODULE = textwrap.dedent(
    """
    import asyncio

    async def helper(n):
        await asyncio.sleep(0)
        return n

    {tests}
    """
)
TEST = textwrap.dedent(
    """
    async def test_{n}():
        assert await helper({n}) == {n}
        await asyncio.sleep(0)
    """
)


def generate(root: Path, count: int, per_module: int = 100) -> None:
    (root / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    for start in range(0, count, per_module):
        tests = "\n".join(TEST.format(n=n) for n in range(start, min(start + per_module, count)))
        (root / f"test_gen_{start // per_module:03}.py").write_text(TEST_MODULE.format(tests=tests))


def run(root: Path, extra: list[str]) -> float:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "asyncio", "-p", "asynccheck", *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    variants = {"plain": [], "--asynccheck": ["--asynccheck"]}
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, args.tests)
        run(root, [])  # warm the file system cache and the bytecode caches
        for i in range(args.runs):
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for name in order:
                times[name].append(run(root, variants[name]))
    for name, values in times.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:14} median {statistics.median(values):.3f} s  runs: {runs}")
    ratio = statistics.median(times["--asynccheck"]) / statistics.median(times["plain"])
    print(f"ratio --asynccheck / plain: {ratio:.3f}")


if __name__ == "__main__":
    main()
