"""What the ``unclosed`` check adds, in instructions (valgrind's callgrind), to the two things a
test of the suite benchmarks does with resources:

- ``loop``: an event loop made and closed, as a runner does for every test while no test
  coroutine runs (its self-pipe's two sockets included): what every async test pays;
- ``echo``: the suite's stream I/O (a socket pair, a connection over each end, a line sent,
  both writers closed), made by the test body and checked at its end: what a test that makes
  resources pays.

    python benchmarks/unclosed_cost.py [--iterations 1000]

Each case runs once with the check's wrappers installed (with a stub session and test) and once
without, each at 1 and at N+1 iterations, so the start-up cancels out; the figure is per
iteration.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

CHILD = "--child"


def suite_echo() -> Any:
    """The suite benchmark's own ``echo()`` (``run.py``'s generated module)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run

    namespace: dict[str, Any] = {}
    # Under a file name of the user's, as the generated module's: the check finds its lines.
    exec(compile(run.MODULE, "test_gen_000.py", "exec"), namespace)
    return namespace["echo"]


def child(case: str, on: bool, iterations: int) -> None:
    import asyncio

    from pytest_asynccheck import _session
    from pytest_asynccheck.detectors import resource_patches, resources, unclosed

    ends = unclosed._TestEnds()
    test: object = None
    if on:

        class Detectors:
            def subscribe(self, detector: object, event: str) -> None:
                pass

            def unsubscribe(self, detector: object, event: str) -> None:
                pass

        class Session:
            rootpath = str(Path.cwd())
            detectors = Detectors()
            current: object = None

        class Test:
            phase = "call"
            closed = False
            session = Session()
            nodeid = "test"
            loop_thread = threading.get_ident()

        test = Test()
        _session._active = Session()  # type: ignore[assignment]
        resources.on_registered.append(ends.registered)
        resource_patches.install(resource_patches.Patches(), lambda context: None)
    if case == "loop":
        for _ in range(iterations):
            loop = asyncio.new_event_loop()
            loop.close()
            del loop
        return

    echo = suite_echo()

    async def main() -> None:
        if on:
            Session = type(_session._active)
            Session.current = test  # the test body runs from here on
        for _ in range(iterations):
            await echo()
            if on:
                ends.test_finished(test)  # type: ignore[arg-type]

    asyncio.run(main())


def instructions(case: str, on: bool, iterations: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            CHILD,
            case,
            "on" if on else "off",
            str(iterations),
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        assert match is not None
        return int(match.group(1))


def main() -> None:
    if sys.argv[1:2] == [CHILD]:
        child(sys.argv[2], sys.argv[3] == "on", int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    n = args.iterations
    print("| case | without the check | with it | added | added, % |")
    print("|---|---|---|---|---|")
    for case in ("loop", "echo"):
        per = {}
        for on in (False, True):
            per[on] = (instructions(case, on, n + 1) - instructions(case, on, 1)) / n
        added = per[True] - per[False]
        print(
            f"| {case} | {per[False] / 1e3:,.1f} k | {per[True] / 1e3:,.1f} k | "
            f"{added / 1e3:,.1f} k | {added / per[False]:.1%} |"
        )


if __name__ == "__main__":
    main()
