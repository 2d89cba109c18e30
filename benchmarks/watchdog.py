"""Detection latency and precision of the stall watchdog: CPU stalls of known length (no
catalogued call, so only the watchdog can see them), reported duration vs true duration, and the
smallest stall caught reliably at the default threshold (0.1 s).

    python benchmarks/watchdog.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

STALLS = (0.05, 0.08, 0.1, 0.11, 0.12, 0.13, 0.15, 0.2, 0.5, 1.0, 2.0)
TESTS = textwrap.dedent(
    """
    import asyncio
    import os
    import time

    import pytest

    def spin(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    @pytest.mark.parametrize("seconds", {stalls!r})
    async def test_stall(seconds):
        # Start the stall at a different point of the watchdog's interval in every run.
        await asyncio.sleep(float(os.environ["BENCH_OFFSET"]))
        spin(seconds)
        await asyncio.sleep(0)
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    reported: dict[float, list[float | None]] = {s: [] for s in STALLS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "test_stalls.py").write_text(TESTS.format(stalls=STALLS))
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as in run.py: cache bytecode like a real run
        for run in range(args.repeat):
            env["BENCH_OFFSET"] = str(0.05 + 0.0125 * run / args.repeat)
            subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "asynccheck", "--asynccheck",
                 "--asynccheck-report=r.json", "-p", "no:cacheprovider"],
                cwd=root, env=env, capture_output=True, text=True,
            )  # fmt: skip
            data = json.loads((root / "r.json").read_text())
            found = {f["nodeid"]: f["duration"] for f in data["findings"]}
            for stall in STALLS:
                reported[stall].append(found.get(f"test_stalls.py::test_stall[{stall}]"))
    print("| true stall (s) | caught | median reported (s) | median error (ms) | worst (ms) |")
    print("|---|---|---|---|---|")
    for stall, values in reported.items():
        hits = [v for v in values if v is not None]
        if not hits:
            print(f"| {stall} | 0/{len(values)} | - | - | - |")
            continue
        median = statistics.median(hits)
        error = median - stall
        worst = max((v - stall for v in hits), key=abs)
        print(
            f"| {stall} | {len(hits)}/{len(values)} | {median:.3f} | {error * 1000:+.1f} | "
            f"{worst * 1000:+.1f} |"
        )


if __name__ == "__main__":
    main()
