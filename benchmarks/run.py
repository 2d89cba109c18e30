"""Benchmarks of pytest-asynccheck against running without it and against the peers users would
pick instead. Every measurement alternates its variants in one run and quotes medians.

    python benchmarks/run.py suite   [--tests 1000] [--runs 5] [--trivial] [--peers] [--against DIR]
    python benchmarks/run.py scale   [--tests 1000] [--runs 3]
    python benchmarks/run.py memory  [--tests 1000]
    python benchmarks/run.py hotpath [--runs 5] [--against DIR]
    python benchmarks/run.py virtual [--runs 3]
    python benchmarks/run.py instructions [--tests 200] [--mixed] [--fixtures] [--seeds 3]
                                          [--against DIR] [--by-kind]
    python benchmarks/run.py calls [--tests 200] [--mixed] [--fixtures] [--top 30] [--against DIR]

``suite``: a generated suite of small async tests (a few awaits each; with ``--trivial`` nothing
else, otherwise every third test does stream I/O over a local socket pair and every fifth uses
``asyncio.to_thread``) under pytest-asyncio auto mode, plain vs ``--asynccheck`` (and, with
``--peers``, blockbuster's documented per-test fixture and pyleak's ``no_leaks`` marker, from the
``bench`` extra). ``scale``: the same suite serial vs ``-n 2``, with and without checks.
``memory``: peak RSS of the run with and without checks. ``hotpath``: 200,000
``await asyncio.sleep(0)`` and a 10,000-message stream ping-pong, checks on vs off, in wall
time and in the loop thread's CPU time.
``instructions``: instructions executed (valgrind's callgrind, deterministic where wall time on a
shared machine is not) per trivial test (``--mixed``: per test of the I/O and thread suite), plain
vs ``--asynccheck``, with a 1-test run
subtracted to remove start-up. ``calls``: the same difference in bytecodes executed and calls
made, per function (a tracer in the child, so by hand only). ``virtual``: the tutorial's
budgeted tests at their full 2-second delays, wall vs virtual clock.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from pytest_asynccheck._findings import Kind

HERE = Path(__file__).resolve().parent

CONFTEST = textwrap.dedent(
    """
    import os
    import pytest

    if os.environ.get("BENCH_PEER") == "blockbuster":
        from blockbuster import blockbuster_ctx

        @pytest.fixture(autouse=True)
        def blockbuster():
            with blockbuster_ctx() as bb:
                yield bb

    if os.environ.get("BENCH_PEER") == "pyleak":
        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.no_leaks)
    """
)
MODULE = textwrap.dedent(
    """
    import asyncio
    import socket
    import time

    async def helper(n):
        await asyncio.sleep(0)
        return n

    async def echo():
        left, right = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=left)
        peer_reader, peer_writer = await asyncio.open_connection(sock=right)
        writer.write(b"ping\\n")
        await writer.drain()
        line = await peer_reader.readline()
        for w in (writer, peer_writer):
            w.close()
            await w.wait_closed()
        return line
    """
)
TEST = """
async def test_{n}():
    assert await helper({n}) == {n}
    await asyncio.sleep(0)
"""
IO_TEST = """
    assert await echo() == b"ping\\n"
"""
#: ``--fixtures``: every test also takes an async generator fixture that awaits in its setup
#: and its teardown.
FIXTURE = """
import pytest

@pytest.fixture
async def resource():
    await asyncio.sleep(0)
    yield 1
    await asyncio.sleep(0)
"""
THREAD_TEST = """
    assert await asyncio.to_thread(sum, [1, 2]) == 3
"""


def generate(
    root: Path, count: int, trivial: bool, per_module: int = 100, fixtures: bool = False
) -> None:
    (root / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "markers =\n    no_leaks: pyleak\n"
    )
    (root / "conftest.py").write_text(CONFTEST)
    for start in range(0, count, per_module):
        parts = [MODULE, FIXTURE] if fixtures else [MODULE]
        for n in range(start, min(start + per_module, count)):
            test = TEST.format(n=n).rstrip("\n")
            if fixtures:
                test = test.replace("():", "(resource):", 1)
            if not trivial and n % 3 == 0:
                test += IO_TEST.rstrip("\n")
            if not trivial and n % 5 == 0:
                test += THREAD_TEST.rstrip("\n")
            parts.append(test + "\n")
        (root / f"test_gen_{start // per_module:03}.py").write_text("\n".join(parts))


Variant = tuple[list[str], Mapping[str, str]]


def pytest_cmd(extra: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "asyncio",
        "-p",
        "asynccheck",
        *extra,
    ]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a measured pytest run: plugins loaded only as named, and bytecode
    cached as in any ordinary run. With ``PYTHONDONTWRITEBYTECODE`` set (some machines set it),
    every run would compile the plugin and rewrite the suite again: half a second hidden in
    both variants, which makes every ratio look smaller than it is."""
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **(extra or {})}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class Run(NamedTuple):
    wall: float
    #: User and system time of all the run's threads.
    cpu: float
    #: Time the hypervisor gave this machine's cores to other guests during the run, summed
    #: over the cores (Linux's ``steal``; 0 elsewhere).
    steal: float


def _steal() -> float:
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run(root: Path, variant: Variant) -> Run:
    """One pytest run: wall time, CPU time, and the time stolen from the machine meanwhile."""
    extra, env_extra = variant
    env = child_env(env_extra)
    cmd = pytest_cmd(extra)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    stolen = _steal()
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    stolen = _steal() - stolen
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Run(elapsed, cpu, stolen)


Times = dict[str, list[float]]
Round = dict[str, Run]


def alternate(root: Path, variants: Mapping[str, Variant], runs: int) -> list[Round]:
    """Each round runs every variant once, in alternating order."""
    rounds: list[Round] = []
    run(root, next(iter(variants.values())))  # warm caches
    names = list(variants)
    for i in range(runs):
        rounds.append(
            {name: run(root, variants[name]) for name in (names if i % 2 == 0 else names[::-1])}
        )
    return rounds


def report_both(rounds: list[Round], base: str) -> None:
    """Wall time and CPU time over all rounds, then wall time over the quieter half of them.
    On a virtual machine that shares its host, the time stolen by other guests moves a run by
    far more than what is measured (identical runs: 2.7 s with none stolen, 3.9 s with 1.5 s
    stolen), and it moves CPU time as much as wall time."""
    names = list(rounds[0])

    def times(rows: list[Round], field: str) -> Times:
        return {name: [getattr(row[name], field) for row in rows] for name in names}

    def stolen(row: Round) -> float:
        return max(r.steal / r.wall for r in row.values())

    print("wall time:")
    report(times(rounds, "wall"), base)
    print("\nCPU time (user + system):")
    report(times(rounds, "cpu"), base)
    quiet = sorted(rounds, key=stolen)[: max(1, len(rounds) // 2)]
    print(
        f"\nwall time, the quieter half of the rounds ({len(quiet)} of {len(rounds)}: steal at "
        f"most {stolen(quiet[-1]):.1%} of a run's time, against a median of "
        f"{statistics.median(map(stolen, rounds)):.1%} over all rounds):"
    )
    report(times(quiet, "wall"), base)


def report(times: Mapping[str, list[float]], base: str) -> None:
    """Medians; the median of the ratios of each run to the base run of its own round (the
    machine's load drifts over minutes, and a round's runs share it); and the ratio of the
    fastest runs (other work on a shared machine only ever adds time)."""
    reference = statistics.median(times[base])
    print(
        f"| variant | median (s) | ratio to {base} | paired ratio | ratio of fastest | runs (s) |"
    )
    print("|---|---|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        paired = statistics.median(v / b for v, b in zip(values, times[base], strict=True))
        fastest = min(values) / min(times[base])
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(
            f"| {name} | {median:.3f} | {median / reference:.3f} | {paired:.3f} | {fastest:.3f} "
            f"| {runs} |"
        )


def with_suite(args: argparse.Namespace, body: Callable[[Path], None]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(
            root,
            args.tests,
            getattr(args, "trivial", False),
            fixtures=getattr(args, "fixtures", False),
        )
        body(root)


def cmd_suite(args: argparse.Namespace) -> None:
    variants: dict[str, Variant] = {"plain": ([], {}), "--asynccheck": (["--asynccheck"], {})}
    for source in args.against:
        # Another version of the plugin, from a checkout of it: first on the path, it is
        # imported instead of the installed one.
        path = str(Path(source).resolve())  # the runs start in the suite's own directory
        variants[f"--asynccheck ({source})"] = (["--asynccheck"], {"PYTHONPATH": path})
    if args.peers:
        variants["blockbuster"] = ([], {"BENCH_PEER": "blockbuster"})
        variants["pyleak no_leaks"] = (["-p", "pyleak"], {"BENCH_PEER": "pyleak"})
    with_suite(args, lambda root: report_both(alternate(root, variants, args.runs), "plain"))


def cmd_scale(args: argparse.Namespace) -> None:
    variants: dict[str, Variant] = {
        "plain": ([], {}),
        "plain -n 2": (["-p", "xdist", "-n", "2"], {}),
        "--asynccheck": (["--asynccheck"], {}),
        "--asynccheck -n 2": (["--asynccheck", "-p", "xdist", "-n", "2"], {}),
    }
    with_suite(args, lambda root: report_both(alternate(root, variants, args.runs), "plain"))


#: Runs a command and prints the peak RSS (KiB) of that command alone: the peak of a process's
#: children is a high-water mark over all of them, so each run gets a launcher of its own.
PEAK_LAUNCHER = (
    "import resource, subprocess, sys; "
    "done = subprocess.run(sys.argv[1:], capture_output=True); "
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss(root: Path, variant: Variant) -> int:
    """Peak RSS (KiB) of one pytest run."""
    extra, env_extra = variant
    cmd = [sys.executable, "-c", PEAK_LAUNCHER, *pytest_cmd(extra)]
    done = subprocess.run(cmd, cwd=root, env=child_env(env_extra), capture_output=True, text=True)
    returncode, peak = done.stdout.split()
    if returncode != "0":
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {returncode}")
    return int(peak)


def cmd_memory(args: argparse.Namespace) -> None:
    def body(root: Path) -> None:
        variants: dict[str, Variant] = {"plain": ([], {}), "--asynccheck": (["--asynccheck"], {})}
        peaks: dict[str, list[int]] = {name: [] for name in variants}
        for i in range(args.runs):
            for name in variants if i % 2 == 0 else reversed(list(variants)):
                peaks[name].append(peak_rss(root, variants[name]))
        plain, checked = (statistics.median(peaks[name]) for name in variants)
        print(
            f"peak RSS (median of {args.runs}) plain {plain / 1024:.1f} MiB, --asynccheck "
            f"{checked / 1024:.1f} MiB, ratio {checked / plain:.3f}"
        )

    with_suite(args, body)


HOTPATH = textwrap.dedent(
    """
    import asyncio
    import time

    async def sleeps():
        for _ in range(200_000):
            await asyncio.sleep(0)

    async def pingpong():
        async def serve(reader, writer):
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(10_000):
            writer.write(b"ping\\n")
            await writer.drain()
            await reader.readline()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    async def test_sleeps():
        start, cpu = time.perf_counter(), time.thread_time()
        await sleeps()
        print("BENCH sleeps", time.perf_counter() - start)
        print("BENCH sleeps_cpu", time.thread_time() - cpu)

    async def test_pingpong():
        start, cpu = time.perf_counter(), time.thread_time()
        await pingpong()
        print("BENCH pingpong", time.perf_counter() - start)
        print("BENCH pingpong_cpu", time.thread_time() - cpu)
    """
)


def cmd_hotpath(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, 0, True)
        (root / "test_hot.py").write_text(HOTPATH)
        # The loop thread's CPU time too: other processes on a loaded machine stretch the wall
        # time of both variants by more than the difference being measured.
        figures: dict[str, dict[str, list[float]]] = {
            what: {} for what in ("sleeps", "sleeps_cpu", "pingpong", "pingpong_cpu")
        }
        variants: dict[str, Variant] = {"off": ([], {}), "--asynccheck": (["--asynccheck"], {})}
        for source in args.against:
            path = str(Path(source).resolve())
            variants[f"--asynccheck ({source})"] = (["--asynccheck"], {"PYTHONPATH": path})
        for i in range(args.runs):
            for name in variants if i % 2 == 0 else reversed(list(variants)):
                extra, env_extra = variants[name]
                env = child_env(env_extra)
                done = subprocess.run(
                    pytest_cmd([*extra, "-s"]),
                    cwd=root,
                    env=env,
                    capture_output=True,
                    text=True,
                )
                for what, value in re.findall(r"BENCH (\w+) ([0-9.]+)", done.stdout):
                    figures[what].setdefault(name, []).append(float(value))
        for what, times in figures.items():
            print(f"\n{what}:")
            report(times, "off")


TUTORIAL = textwrap.dedent(
    """
    import asyncio
    import pytest

    async def download(delay):
        await asyncio.sleep(delay)

    @pytest.mark.max_wall(6.5)
    async def test_sequential():
        for _ in range(3):
            await download(2)

    @pytest.mark.max_wall(2.5)
    async def test_gathered():
        await asyncio.gather(*(download(2) for _ in range(3)))

    @pytest.mark.max_wall(4.5)
    async def test_semaphore():
        semaphore = asyncio.Semaphore(2)

        async def job():
            async with semaphore:
                await download(2)

        await asyncio.gather(*(job() for _ in range(4)))
    """
)


def cmd_virtual(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, 0, True)
        (root / "test_tutorial.py").write_text(TUTORIAL)
        variants: dict[str, Variant] = {
            "--asynccheck (wall clock)": (["--asynccheck"], {}),
            "--asynccheck --asynccheck-clock=virtual": (
                ["--asynccheck", "--asynccheck-clock=virtual"],
                {},
            ),
        }
        report_both(alternate(root, variants, args.runs), "--asynccheck (wall clock)")


def instructions(root: Path, variant: Variant, seed: int = 0) -> int:
    """Instructions one pytest run executes, counted by callgrind, under hash seed ``seed``."""
    extra, env_extra = variant
    # One hash seed for every variant: string hashes decide how full each dictionary's probes
    # run, which moves a count by more than the difference being measured.
    env = child_env({**env_extra, "PYTHONHASHSEED": str(seed)})
    run(root, variant)  # bytecode cached first, as in the timed runs
    out = root / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *pytest_cmd(extra)]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"no instruction total in {out}")
    return int(match.group(1))


#: Under callgrind the code runs about 50 times slower, while the watchdog acts on wall time:
#: its threshold is scaled by the same factor, so that it does per test what it does in a real
#: run (at 0.1 s every test would outlive its first heartbeat).
VALGRIND_STALL_THRESHOLD = "--asynccheck-stall-threshold=5"


#: The load average above which ``instructions`` warns: the counts depend on how the loop's
#: turns and the worker threads interleave, which load changes (the same plain run read 4.71 M,
#: 4.81 M and 5.29 M per test on one day; benchmarks/README.md).
QUIET_LOAD = 1.0


def _warn_if_loaded() -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > QUIET_LOAD:
        print(
            f"warning: load average {load:.1f}: instruction counts move with the machine's "
            "load; compare only figures taken on a quiet machine",
            file=sys.stderr,
        )


def cmd_instructions(args: argparse.Namespace) -> None:
    _warn_if_loaded()
    checked = ["--asynccheck", VALGRIND_STALL_THRESHOLD]
    variants: dict[str, Variant] = {"plain": ([], {}), "--asynccheck": (checked, {})}
    for source in args.against:
        path = str(Path(source).resolve())
        variants[f"--asynccheck ({source})"] = (checked, {"PYTHONPATH": path})
    if args.by_kind:
        for kinds in BY_KIND:
            off = [f"--asynccheck-{kind}=off" for kind in kinds]
            variants[f"--asynccheck, {' and '.join(kinds)} off"] = ([*checked, *off], {})
        every = [f"--asynccheck-{kind.value}=off" for kind in Kind]
        variants[f"--asynccheck, {ALL_OFF}"] = ([*checked, *every], {})
    # Each hash seed lays the dictionaries out differently (one seed against another moved a
    # checked run by 19 K instructions per test): every variant is counted under each seed,
    # and the medians are quoted, with the ratios' spread over the seeds.
    counts: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for seed in range(args.seeds):
        # Each seed in directories of its own, shared by its variants: the suite's path moves
        # where the interpreter lays out its objects, which moved the checked run by 15 K
        # instructions per test and the plain one by none (benchmarks/README.md, "Layout").
        with tempfile.TemporaryDirectory() as many, tempfile.TemporaryDirectory() as one:
            generate(Path(many), args.tests, not args.mixed, fixtures=args.fixtures)
            generate(Path(one), 1, not args.mixed, fixtures=args.fixtures)
            for name, variant in variants.items():
                alone = instructions(Path(one), variant, seed)
                per_test = (instructions(Path(many), variant, seed) - alone) / (args.tests - 1)
                counts[name].append((alone, per_test))
    print(
        f"| variant | per test | vs plain (seeds {', '.join(map(str, range(args.seeds)))}) "
        "| start-up | 1,000 tests | vs plain |"
    )
    print("|---|---|---|---|---|---|")
    plain = counts["plain"]
    for name, rows in counts.items():
        ratios = [row[1] / base[1] for row, base in zip(rows, plain, strict=True)]
        totals = [
            (row[0] + 999 * row[1]) / (base[0] + 999 * base[1])
            for row, base in zip(rows, plain, strict=True)
        ]
        start = statistics.median(row[0] for row in rows)
        per_test = statistics.median(row[1] for row in rows)
        spread = f" ({min(ratios):.3f}-{max(ratios):.3f})" if len(ratios) > 1 else ""
        print(
            f"| {name} | {per_test / 1e6:.3f} M | {statistics.median(ratios):.3f}{spread} | "
            f"{start / 1e6:,.0f} M | {(start + 999 * per_test) / 1e9:.3f} G | "
            f"{statistics.median(totals):.3f} |"
        )
    if args.by_kind:
        _print_kind_costs(counts)


#: The kinds measured apart by ``instructions --by-kind``: the two task kinds share one
#: detector, so they are switched off together.
_TASK_KINDS = (Kind.LEAKED_TASK, Kind.NEVER_RETRIEVED)
BY_KIND: tuple[tuple[str, ...], ...] = (
    *((kind.value,) for kind in Kind if kind not in _TASK_KINDS),
    tuple(kind.value for kind in _TASK_KINDS),
)
ALL_OFF = "every kind off"


def _print_kind_costs(counts: Mapping[str, list[tuple[float, float]]]) -> None:
    """What each kind adds to the checked run (the checked run minus the run with that kind
    off), and what is left with every kind off (the plumbing: the phase hooks, the coroutine
    and fixture wrappers, the dispatch), in medians over the seeds."""
    checked = counts["--asynccheck"]
    plain = counts["plain"]
    print()
    print("| what | start-up | per test | share of the checked run's per-test cost |")
    print("|---|---|---|---|")
    over = statistics.median(c[1] - p[1] for c, p in zip(checked, plain, strict=True))
    for name, rows in counts.items():
        if not name.startswith("--asynccheck, "):
            continue
        label = name.removeprefix("--asynccheck, ")
        # Every kind off: what is left over plain. One kind off: what it takes from checked.
        pairs = list(
            zip(rows, plain, strict=True) if label == ALL_OFF else zip(checked, rows, strict=True)
        )
        start = statistics.median(more[0] - less[0] for more, less in pairs)
        per_test = statistics.median(more[1] - less[1] for more, less in pairs)
        label = "left with every kind off" if label == ALL_OFF else label.removesuffix(" off")
        print(
            f"| {label} | {start / 1e6:+.1f} M | {per_test / 1e3:+.1f} K | {per_test / over:.0%} |"
        )


#: The child of ``calls``: runs pytest with a tracer that counts, per function, the bytecodes
#: executed and the calls made, on every thread, and writes them as JSON to ``argv[1]``. A
#: function is named by its file (below ``site-packages``, or below the plugin's package for
#: another checkout), first line and qualified name, so that two checkouts compare.
CALL_COUNTER = textwrap.dedent(
    """
    import collections, json, re, sys, threading
    out, args = sys.argv[1], sys.argv[2:]
    ops, calls, names = collections.Counter(), collections.Counter(), {}
    def name(code):
        path = re.sub(r"^.*?/(site-packages|pytest_asynccheck)/", r"\\1/", code.co_filename)
        return f"{path}:{code.co_firstlineno}:{getattr(code, 'co_qualname', code.co_name)}"
    def count(frame, event, arg):
        if event == "opcode":
            ops[names[frame.f_code]] += 1
        return count
    def enter(frame, event, arg):
        code = frame.f_code
        key = names.get(code)
        if key is None:
            key = names[code] = name(code)
        calls[key] += 1
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return count
    threading.settrace(enter)
    sys.settrace(enter)
    import pytest
    try:
        pytest.main(args)
    finally:
        sys.settrace(None)
        threading.settrace(None)
        with open(out, "w") as file:
            json.dump({"ops": ops, "calls": calls}, file)
    """
)

Counts = dict[str, dict[str, int]]


def call_counts(root: Path, variant: Variant) -> Counts:
    """Bytecodes and calls per function of one pytest run under ``CALL_COUNTER``."""
    extra, env_extra = variant
    env = child_env({**env_extra, "PYTHONHASHSEED": "0"})
    run(root, variant)  # bytecode cached first, as in the other counts
    out = root / "calls.json"
    cmd = [sys.executable, "-c", CALL_COUNTER, str(out), *pytest_cmd(extra)[3:]]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[3:])} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    counts: Counts = json.loads(out.read_text())
    return counts


def cmd_calls(args: argparse.Namespace) -> None:
    """Bytecodes and calls per test the checks add, by function: what ``instructions`` counts,
    told apart by where it runs, and in units that do not move with the machine (a Python
    call costs about 430 instructions beyond its body; benchmarks/README.md, "Calls per
    step"). Per test: (N-test run - 1-test run) / (N - 1), checked minus plain."""
    checked = ["--asynccheck", VALGRIND_STALL_THRESHOLD]
    variants: dict[str, Variant] = {"plain": ([], {}), "--asynccheck": (checked, {})}
    for source in args.against:
        variants[f"--asynccheck ({source})"] = (
            checked,
            {"PYTHONPATH": str(Path(source).resolve())},
        )
    per_test: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as many, tempfile.TemporaryDirectory() as one:
        generate(Path(many), args.tests, not args.mixed, fixtures=args.fixtures)
        generate(Path(one), 1, not args.mixed, fixtures=args.fixtures)
        for name, variant in variants.items():
            alone, whole = call_counts(Path(one), variant), call_counts(Path(many), variant)
            per_test[name] = {
                kind: {
                    key: (whole[kind].get(key, 0) - alone[kind].get(key, 0)) / (args.tests - 1)
                    for key in set(whole[kind]) | set(alone[kind])
                }
                for kind in ("ops", "calls")
            }
    plain = per_test.pop("plain")
    for name, counts in per_test.items():
        added = {
            kind: {
                key: counts[kind].get(key, 0.0) - plain[kind].get(key, 0.0)
                for key in set(counts[kind]) | set(plain[kind])
            }
            for kind in ("ops", "calls")
        }
        ops, calls = added["ops"], added["calls"]
        print(
            f"## {name}: {sum(ops.values()):,.0f} bytecodes and {sum(calls.values()):,.1f} "
            "calls per test more than plain"
        )
        print()
        print("| bytecodes | calls | function |")
        print("|---|---|---|")
        ranked = sorted(ops, key=lambda key: -abs(ops[key]) - 10 * abs(calls.get(key, 0.0)))
        for key in ranked[: args.top]:
            print(f"| {ops[key]:,.1f} | {calls.get(key, 0.0):,.2f} | `{key}` |")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (
        ("suite", cmd_suite),
        ("scale", cmd_scale),
        ("memory", cmd_memory),
        ("hotpath", cmd_hotpath),
        ("virtual", cmd_virtual),
        ("instructions", cmd_instructions),
        ("calls", cmd_calls),
    ):
        p = sub.add_parser(name)
        p.set_defaults(func=func)
        p.add_argument("--tests", type=int, default=1000)
        p.add_argument("--runs", type=int, default=5)
        if name == "suite":
            p.add_argument("--trivial", action="store_true")
            p.add_argument("--peers", action="store_true")
            p.add_argument("--fixtures", action="store_true", help="one async fixture per test")
        if name in ("suite", "instructions", "hotpath", "calls"):
            p.add_argument(
                "--against",
                action="append",
                default=[],
                metavar="DIR",
                help="also measure the plugin of another checkout (e.g. a git worktree)",
            )
        if name in ("instructions", "calls"):
            p.add_argument("--mixed", action="store_true", help="the I/O and thread suite")
            p.add_argument("--fixtures", action="store_true", help="one async fixture per test")
        if name == "calls":
            p.add_argument("--top", type=int, default=30, help="functions listed per variant")
        if name == "instructions":
            p.add_argument(
                "--seeds", type=int, default=1, help="count under hash seeds 0..N-1 (median)"
            )
            p.add_argument(
                "--by-kind",
                action="store_true",
                help="also count with each kind off, and with every kind off: what each costs",
            )
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
