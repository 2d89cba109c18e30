"""Stalls of the event loop (kind ``blocking``, call ``stall``): each at the line that held the
loop, with its length, however the stall ends; a loop that waited for a CPU is not stalled."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

from tests.helpers import ARGS

# Whether the watchdog sees a stall, when, and at which of two lines, is up to the scheduler: on
# a machine whose CPUs other tests keep busy it wakes late. One test here loads a CPU on
# purpose. Each runs alone (``cpu_alone``).
pytestmark = pytest.mark.usefixtures("cpu_alone")

#: Sizes the work to about 0.35 s of this machine's time, whatever its speed: the work is
#: timed once small, then scaled.
CALIBRATE = """
import asyncio, time

def sized(make, work, small, power=1.0):
    start = time.thread_time()
    work(make(small))
    took = max(time.thread_time() - start, 1e-4)
    return make(int(small * (0.35 / took) ** (1 / power)))

BIG_INT = sized(lambda bits: (1 << bits) - 1, lambda x: x * x, 150_000, power=1.585)
BIG_LIST = sized(lambda n: [0] * n, lambda items: -1 in items, 1_000_000)
DONE = {}

def note(text):
    DONE[text] = time.thread_time()
"""


def line_of(source: str, marker: str) -> int:
    # The inner file is written without its leading blank lines.
    for number, text in enumerate(source.lstrip("\n").splitlines(), start=1):
        if text.endswith(f"# <- {marker}"):
            return number
    raise AssertionError(f"no {marker!r} in the inner test")


def run(
    pytester: pytest.Pytester, source: str, *extra: str, subprocess: bool = False
) -> tuple[pytest.RunResult, list[dict[str, Any]]]:
    pytester.makepyfile(test_it=source)
    runpytest = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    result = runpytest(*ARGS, "--asynccheck-report=report.json", "-p", "no:randomly", *extra)
    findings = json.loads((pytester.path / "report.json").read_text())["findings"]
    return result, [f for f in findings if f["call"] == "stall"]


def stall_at(findings: list[dict[str, Any]], line: int) -> dict[str, Any]:
    matching = [f for f in findings if f["file"] == "test_it.py" and f["line"] == line]
    assert len(matching) == 1, (line, findings)
    return matching[0]


@pytest.mark.parametrize(
    ("operation", "what"),
    [
        pytest.param("squared = BIG_INT * BIG_INT", "BIG_INT * BIG_INT", id="arithmetic"),
        pytest.param("found = -1 in BIG_LIST", "-1 in BIG_LIST", id="membership"),
    ],
)
# On Python 3.13 the first stall of a fresh process can end before the watchdog is scheduled,
# and go unseen (as in a test's last line, below); a second attempt in the same process sees it.
@pytest.mark.flaky(reruns=2)
def test_an_operation_that_is_not_a_call_is_reported_at_its_own_line_not_the_next(
    pytester: pytest.Pytester, operation: str, what: str
) -> None:
    # Such an operation holds the interpreter until it ends: the watchdog first sees the loop
    # thread on a later line (here an innocent print, then an await).
    source = (
        CALIBRATE
        + f"""
async def test_it():
    await asyncio.sleep(0)
    {operation}  # <- stuck
    print("next")
    await asyncio.sleep(0)
"""
    )
    result, findings = run(pytester, source)
    result.assert_outcomes(failed=1)
    finding = stall_at(findings, line_of(source, "stuck"))
    assert finding["function"] == "test_it"
    assert what in finding["message"]
    assert finding["duration"] >= 0.1
    assert len(findings) == 1, findings


# Seen only if the watchdog gets the interpreter between the operation's end and the test's
# end, at the loop thread's first hand-over after it: the scheduler's call. On Python 3.13 it
# is missed when this is the first inner run of a fresh process, then not again (a rerun).
@pytest.mark.flaky(reruns=2)
def test_a_stall_in_the_tests_last_statement_is_reported_at_it(
    pytester: pytest.Pytester,
) -> None:
    source = (
        CALIBRATE
        + """
async def test_ends_stuck():
    await asyncio.sleep(0)
    BIG_INT * BIG_INT  # <- last

async def test_ends_spinning():
    await asyncio.sleep(0)
    end = time.thread_time() + 0.3  # CPU time: waits for a CPU are not a stall
    while time.thread_time() < end:  # <- spin
        pass
"""
    )
    result, findings = run(pytester, source)
    result.assert_outcomes(failed=2)
    last = stall_at(findings, line_of(source, "last"))
    assert last["function"] == "test_ends_stuck"
    assert "in the test's last step" in last["message"]
    assert last["duration"] >= 0.1
    assert stall_at(findings, line_of(source, "spin"))["function"] == "test_ends_spinning"
    assert len(findings) == 2, findings


TWO_STALLS = (
    CALIBRATE
    + """
async def test_across_turns():
    await asyncio.sleep(0)
    started = time.thread_time()
    BIG_INT * BIG_INT  # <- first
    note("first")
    await asyncio.sleep(0)
    -1 in BIG_LIST  # <- second
    note("second")
    await asyncio.sleep(0)
    print("WORK", DONE["first"] - started, DONE["second"] - DONE["first"])

async def test_in_one_turn():
    await asyncio.sleep(0)
    started = time.thread_time()
    BIG_INT * BIG_INT  # <- one
    note("between")
    -1 in BIG_LIST  # <- two
    note("after")
    await asyncio.sleep(0)
    print("WORK", DONE["between"] - started, DONE["after"] - DONE["between"])
"""
)


#: For the tests whose stalls the watchdog sees only with a CPU to itself: skipped where the run
#: says the machine is loaded (CI sets ``ASYNCCHECK_LOADED_MACHINE``).
NEEDS_A_FREE_CPU = pytest.mark.skipif(
    os.environ.get("ASYNCCHECK_LOADED_MACHINE") == "1",
    reason="needs a machine with a CPU free for the watchdog (the run says it is loaded)",
)


def _work(result: pytest.RunResult) -> list[tuple[float, float]]:
    """CPU time of each test's two operations, in the order the tests ran."""
    found = re.findall(r"WORK (\S+) (\S+)", result.stdout.str())
    return [(float(first), float(second)) for first, second in found]


# On a loaded machine (CI, under coverage) the watchdog, kept from the interpreter across
# the turn after the operations, has once also named the test's last step (a third finding,
# 124 ms): a late look in a later turn blamed on it. A known false finding, to be fixed. In
# CI's run of the lowest versions, four workers on two CPUs beside the real suites' set-up,
# it has also put a stall at the line after the operation, and missed both of one test's
# stalls (0.37 s and 0.29 s of CPU) in all three attempts: it needs a CPU free too.
@NEEDS_A_FREE_CPU
@pytest.mark.flaky(reruns=2)
def test_stalls_at_two_lines_of_one_test_are_reported_at_those_lines_not_at_a_helper(
    pytester: pytest.Pytester,
) -> None:
    # Each operation holds the interpreter until it ends; the loop thread lets go of it first
    # in the helper called next (``note``), whose frame has only just started: the stall is the
    # caller's line. Whether the watchdog gets the interpreter between the two operations
    # (and so reports them apart) is up to the scheduler (see the next test): here either is
    # right, but every finding is at a marked line of its own test, the first operation's
    # line is always one, and together they are as long as the work.
    result, findings = run(pytester, TWO_STALLS, "-s")
    result.assert_outcomes(failed=2)
    for (test, first, second), (first_work, second_work) in zip(
        [("test_across_turns", "first", "second"), ("test_in_one_turn", "one", "two")],
        _work(result),
        strict=True,
    ):
        own = [f for f in findings if f["nodeid"].endswith(f"::{test}")]
        lines = {line_of(TWO_STALLS, first), line_of(TWO_STALLS, second)}
        assert own and {f["line"] for f in own} <= lines, (test, own)
        assert all(f["function"] == test and f["file"] == "test_it.py" for f in own), own
        assert stall_at(own, line_of(TWO_STALLS, first))["duration"] >= 0.1
        # Less a little: the loop thread's wait for a CPU is taken out as measured from the
        # heartbeat before the stall.
        total = sum(f["duration"] for f in own)
        assert total >= min(first_work + second_work - 0.1, 0.2), (test, own, first_work)
    assert len(findings) <= 4, findings


# The watchdog tells two operations apart only when it gets the interpreter in the moment
# between them, which takes the kernel scheduling its thread within the interpreter's switch
# interval (5 ms) of the first one's end: on a loaded machine it can miss that moment, and
# the two are one stall at the first line (the test above accepts either).
@NEEDS_A_FREE_CPU
@pytest.mark.flaky(reruns=2)
def test_two_stalls_at_two_lines_of_one_test_are_two_findings_each_with_its_length(
    pytester: pytest.Pytester,
) -> None:
    result, findings = run(pytester, TWO_STALLS, "-s")
    result.assert_outcomes(failed=2)
    (first_work, second_work), (one_work, two_work) = _work(result)
    first = stall_at(findings, line_of(TWO_STALLS, "first"))
    second = stall_at(findings, line_of(TWO_STALLS, "second"))
    one = stall_at(findings, line_of(TWO_STALLS, "one"))
    two = stall_at(findings, line_of(TWO_STALLS, "two"))
    # Each at least the CPU time its work took (less a little, as above), no upper bound.
    assert first["duration"] >= min(first_work - 0.05, 0.1), (first, first_work)
    assert second["duration"] >= min(second_work - 0.05, 0.1), (second, second_work)
    assert one["duration"] >= min(one_work - 0.05, 0.1), (one, one_work)
    assert two["duration"] >= min(two_work - 0.05, 0.1), (two, two_work)
    assert len(findings) == 4, findings


JUMPED_OVER = (
    CALIBRATE
    + """
async def test_after_an_assert():
    await asyncio.sleep(0)
    # pytest rewrites this: the message it builds on failure (with % and dictionaries) comes
    # before the call in the code, and never runs.
    assert BIG_LIST is not None, "built only on failure: %s" % len(BIG_LIST)
    BIG_LIST.count(-1)  # <- call
    await asyncio.sleep(0)

async def test_in_a_branch():
    await asyncio.sleep(0)
    if BIG_LIST:
        -1 in BIG_LIST  # <- taken
    else:
        print("never")
    note("after")
    await asyncio.sleep(0)
"""
)


# Like the tests above, seen only when the watchdog gets the interpreter as the operation ends.
@pytest.mark.flaky(reruns=2)
def test_a_long_operation_is_reported_at_its_line_not_at_code_that_was_jumped_over(
    pytester: pytest.Pytester,
) -> None:
    # A long call in C is seen only once it has returned: the line is found in the code that
    # leads to where the loop thread was, not in a failed assertion's message before it.
    result, findings = run(pytester, JUMPED_OVER)
    call = stall_at(findings, line_of(JUMPED_OVER, "call"))
    assert call["function"] == "test_after_an_assert"
    assert call["duration"] >= 0.1
    # The operation in the branch that ran is on the way; the one jumped over is not. Whether
    # it is seen at all depends on the watchdog getting the interpreter as it ends (on
    # Python 3.10 in CI it went unseen three times running): when seen, at its own line.
    branch = [f for f in findings if f["function"] == "test_in_a_branch"]
    assert [f["line"] for f in branch] in ([], [line_of(JUMPED_OVER, "taken")]), branch
    assert len(findings) == 1 + len(branch), findings
    result.assert_outcomes(failed=1 + len(branch), passed=1 - len(branch))


def test_short_operations_between_turns_are_not_stalls(pytester: pytest.Pytester) -> None:
    source = (
        CALIBRATE
        + """
SMALL_INT = (1 << 20_000) - 1

async def test_it():
    for _ in range(40):
        SMALL_INT * SMALL_INT
        -1 in BIG_LIST[:1000]
        await asyncio.sleep(0.01)
    SMALL_INT * SMALL_INT
"""
    )
    result, findings = run(pytester, source)
    result.assert_outcomes(passed=1)
    assert findings == []


# -- a loop waiting for a CPU is not stalled ----------------------------------------------------

STARVED = """
import asyncio, os, subprocess, sys, time

import pytest

CPU = min(os.sched_getaffinity(0))
BUSY = []
# Listing the process's threads to pin them is a blocking call of its own.
pytestmark = pytest.mark.asynccheck(allow=["os.listdir"])


def pin_everything():
    for task in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(task), {CPU})


def starve_the_loop():
    # The loop thread, at a lower priority than the busy processes, waits for its turn on
    # the CPU often longer than the threshold, while the watchdog keeps its priority.
    pin_everything()
    if os.getpriority(os.PRIO_PROCESS, 0) < 15:
        os.nice(15)  # this thread only, on Linux


@pytest.fixture(autouse=True, scope="module")
def busy():
    # Every thread of this process shares one CPU with busy processes.
    pin_everything()
    for _ in range(2):
        BUSY.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
    time.sleep(0.2)
    yield
    for process in BUSY:
        process.kill()
        process.wait()
    BUSY.clear()


def spin_cpu(seconds):
    # CPU time, not wall time: under this load a second of CPU takes many of the clock.
    end = time.thread_time() + seconds
    while time.thread_time() < end:  # <- cpu
        pass


async def test_short_work():
    await asyncio.sleep(0.05)  # the wait for a CPU is measured from the first heartbeat on
    starve_the_loop()
    for _ in range(600):
        sum(range(200))
        await asyncio.sleep(0)
    for _ in range(40):
        await asyncio.sleep(0.005)


async def test_real_stall():
    await asyncio.sleep(0.05)
    starve_the_loop()
    await asyncio.sleep(0)
    spin_cpu(0.04)
    await asyncio.sleep(0)
"""


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or not os.path.exists("/proc/self/task"),
    reason="needs Linux's CPU affinity and per-thread scheduling figures",
)
# The scheduler decides how long each thread waits; the stall's own time is read at instants
# that bound its turn, so late reads by a starved watchdog do not move it (measured: 42 of 42
# runs right, with up to three more busy processes). A rerun for a machine loaded past that.
@pytest.mark.flaky(reruns=2)
def test_waiting_for_a_cpu_is_not_a_stall_and_a_real_stall_under_the_same_load_still_is(
    pytester: pytest.Pytester,
) -> None:
    source = STARVED
    result, findings = run(pytester, source, "--asynccheck-stall-threshold=0.02", subprocess=True)
    assert [f for f in findings if f["nodeid"].endswith("test_short_work")] == [], findings
    real = stall_at(findings, line_of(source, "cpu"))
    assert real["nodeid"].endswith("test_real_stall")
    assert real["duration"] >= 0.02
    result.assert_outcomes(passed=1, failed=1)
