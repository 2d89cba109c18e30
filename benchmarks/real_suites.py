"""Run ``pytest --asynccheck`` over the test suites of real asyncio libraries, installed from
their sdists into a throw-away virtual environment, and print each run's verdict and the
``asynccheck`` section.

    python benchmarks/real_suites.py [--keep DIR]

Libraries that only offload to threads (aiosqlite, aiofiles) must produce no finding in their
own code. Their test suites do make blocking calls in async test bodies (a plain ``open()`` to
compare with what aiofiles read, ``sqlite3.connect``, ``Thread.join``): those are reported, and
counted apart.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: sdist name -> (extra requirements, test path inside the sdist, pytest arguments)
SUITES: dict[str, tuple[list[str], str, list[str]]] = {
    "aiofiles": (["pytest-asyncio"], "tests", ["-o", "asyncio_mode=auto"]),
    "aiosqlite": ([], "aiosqlite/tests/smoke.py", ["-o", "python_files=smoke.py"]),
}


def sh(*cmd: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        env = work / "venv"
        venv.create(env, with_pip=True)
        python = env / "bin" / "python"
        sh(python, "-m", "pip", "install", "-q", REPO, "pytest-asyncio").check_returncode()
        failures = 0
        for name, (extra, tests, pytest_args) in SUITES.items():
            sh(
                python,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                work,
                name,
            ).check_returncode()
            sdist = next(work.glob(f"{name}-*.tar.gz"))
            with tarfile.open(sdist) as archive:
                archive.extractall(work, filter="data")
            source = work / sdist.name.removesuffix(".tar.gz")
            sh(python, "-m", "pip", "install", "-q", source, *extra).check_returncode()
            pytest = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
            plain = sh(*pytest, tests, cwd=source)
            run = sh(*pytest, "--asynccheck", tests, cwd=source)
            lines = run.stdout.splitlines()
            start = next((i for i, line in enumerate(lines) if "= asynccheck =" in line), None)
            print(
                f"## {sdist.name}: exit {run.returncode} (without --asynccheck: "
                f"exit {plain.returncode}, {plain.stdout.splitlines()[-1]})"
            )
            print("\n".join(lines[start:] if start is not None else lines[-15:]))
            places = [line.split()[2] for line in lines if line.startswith(("error ", "warn "))]
            in_tests = [p for p in places if "tests/" in p]
            print(
                f"findings at {len(places)} places: {len(in_tests)} in the suite's tests, "
                f"{len(places) - len(in_tests)} in the library"
            )
            failures += len(places) != len(in_tests)
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
