"""A task that swallows its cancellation fails the test, at the line the cancellation reached
it, with where it was made and cancelled; structures that uncancel what they catch, shields and
cancellations passed on are never flagged (Python 3.11+; on 3.10 a note says it is not
checked)."""

from __future__ import annotations

import json
import sys

import jsonschema
import pytest

from pytest_asynccheck.detectors import cancellation
from pytest_asynccheck.detectors.cancellation import FIX
from tests.helpers import ANYIO, ARGS, ASYNCIO, ASYNCIO_INI, REPORT_SCHEMA

needs_cancelling = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Task.cancelling() is new in Python 3.11"
)

RUNNERS = [
    pytest.param("standalone", id="standalone"),
    pytest.param("asyncio", id="pytest-asyncio"),
    pytest.param("anyio", id="anyio-asyncio"),
]
FLAGGED = (
    "?swallowed-cancel? task '{name}' running {coro}() was cancelled while suspended here and "
    "returned normally, without uncancel(): the cancellation was swallowed*"
)


def run_with(pytester: pytest.Pytester, runner: str, source: str, *args: str) -> pytest.RunResult:
    """Run ``source`` as test_mod.py under ``runner``; lines keep their numbers (the anyio
    marker goes at the end of the module)."""
    extra: tuple[str, ...] = ()
    if runner == "asyncio":
        pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
        extra = ASYNCIO
    elif runner == "anyio":
        pytester.makeconftest(
            "import pytest\n\n\n@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n"
        )
        source += "\n\nimport pytest  # noqa: E402\n\npytestmark = pytest.mark.anyio\n"
        extra = ANYIO
    pytester.makepyfile(test_mod=source)
    return pytester.runpytest(*ARGS, *extra, "-p", "no:randomly", *args)


SWALLOWS = """\
import asyncio
import logging


async def consume(queue, seen):
    while True:
        try:
            item = await queue.get()
        except BaseException:
            continue
        if item is None:
            return seen
        seen.append(item)


async def test_consumer_loop_swallows_cancel():
    queue = asyncio.Queue()
    worker = asyncio.create_task(consume(queue, []), name="consumer")
    await asyncio.sleep(0)
    worker.cancel()
    await asyncio.sleep(0)
    queue.put_nowait(None)
    assert await worker == []


async def fetch():
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        return "partial"


async def test_return_in_except_cancelled_error():
    task = asyncio.create_task(fetch(), name="fetch")
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "partial"


async def poll(events):
    while True:
        try:
            events.append(await asyncio.sleep(10, "tick"))
        except BaseException:
            logging.getLogger("poll").info("poller stopping")
            break
    return events


async def test_consumer_logs_and_breaks_out():
    task = asyncio.create_task(poll([]), name="poller")
    await asyncio.sleep(0)
    task.cancel()
    assert await task == []


async def stubborn():
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        pass
    return "swallowed"


async def test_double_cancel_swallowed():
    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    task.cancel()
    task.cancel()
    assert await task == "swallowed"
"""


def swallowed_lines() -> list[list[str]]:
    cases = [
        ("test_consumer_loop_swallows_cancel", "consumer", "consume", 8, 18, 20),
        ("test_return_in_except_cancelled_error", "fetch", "fetch", 28, 34, 36),
        ("test_consumer_logs_and_breaks_out", "poller", "poll", 43, 51, 53),
        ("test_double_cancel_swallowed", "stubborn", "stubborn", 59, 66, 68),
    ]
    return [
        [
            f"asynccheck found 1 problem in test_mod.py::{test}*",
            FLAGGED.format(name=name, coro=coro),
            f"  at test_mod.py:{reached} in {coro}",
            f"  task created at test_mod.py:{created}",
            f"  cancel() called at test_mod.py:{cancelled} in {test}",
            f"  fix: {FIX}",
        ]
        for test, name, coro, reached, created, cancelled in cases
    ]


LOOKALIKES = """\
import asyncio
import contextlib

import anyio
import pytest


async def slow():
    await asyncio.sleep(10)


async def cleanup_then_reraise(log):
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        await asyncio.sleep(0)
        log.append("cleaned up")
        raise


async def test_cleanup_and_reraise():
    log = []
    task = asyncio.create_task(cleanup_then_reraise(log))
    await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled() and log == ["cleaned up"]


async def timeouts():
    try:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(10)
    except TimeoutError:
        pass
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(slow(), 0.01)
    return "ok"


async def test_timeout_and_wait_for():
    assert await asyncio.create_task(timeouts()) == "ok"


async def boom(pause):
    await asyncio.sleep(pause)
    raise ValueError("child failed")


async def task_groups():
    # A child failing while the block runs, then while the block already waits for the
    # children at its end (before 3.13 the group never uncancels its parent then).
    for pause, body in ((0, 0.01), (0.01, 0)):
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(slow())
                group.create_task(boom(pause))
                await asyncio.sleep(body)
        except* ValueError:
            pass
    return "handled"


async def test_task_group_with_a_failing_child():
    assert await asyncio.create_task(task_groups()) == "handled"


async def test_task_group_in_the_test_itself():
    assert await task_groups() == "handled"


async def test_shield_waits_for_the_shielded_work():
    inner = asyncio.create_task(asyncio.sleep(0.01, "r"))

    async def guarded():
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            return await inner  # the shielded work goes on: wait for it

    outer = asyncio.create_task(guarded())
    await asyncio.sleep(0)
    outer.cancel()
    assert await outer == "r"


async def canceller():
    child = asyncio.create_task(slow())
    await asyncio.sleep(0)
    child.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await child
    return "stopped"


async def test_canceller_suppresses_its_child():
    assert await asyncio.create_task(canceller()) == "stopped"


async def anyio_scopes():
    with anyio.move_on_after(0.01):
        await anyio.sleep(10)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await anyio.sleep(10)
    async with anyio.create_task_group() as group:
        group.start_soon(anyio.sleep, 10)
        await anyio.sleep(0)
        group.cancel_scope.cancel()
    return "done"


async def test_anyio_cancel_scopes_and_task_groups():
    assert await asyncio.create_task(anyio_scopes()) == "done"
    assert await anyio_scopes() == "done"


async def shutdown():
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        raise RuntimeError("stopped")


async def test_cancel_turned_into_another_error():
    task = asyncio.create_task(shutdown())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(RuntimeError):
        await task
"""


OWN_TASK = """\
import asyncio


async def test_the_test_swallows_its_own_cancellation():
    asyncio.current_task().cancel()
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:
        pass
"""


FIXTURES = """\
import asyncio

import pytest


async def serve(requests):
    while True:
        try:
            await requests.get()
        except asyncio.CancelledError:
            return "closed"


@pytest.fixture
async def server():
    task = asyncio.create_task(serve(asyncio.Queue()), name="server")
    await asyncio.sleep(0)
    yield task
    task.cancel()
    await task


@pytest.fixture
async def stubborn_setup():
    asyncio.current_task().cancel()
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:
        pass
    return "ready"


@pytest.fixture
async def stubborn_teardown():
    yield "r"
    asyncio.current_task().cancel()
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:
        pass


async def test_uses_the_server(server):
    assert not server.done()


async def test_uses_a_fixture_that_swallowed(stubborn_setup):
    assert stubborn_setup == "ready"


async def test_uses_a_teardown_that_swallowed(stubborn_teardown):
    assert stubborn_teardown == "r"
"""


LIBRARY_TASKS = """\
import asyncio
import threading

from anyio import sleep, to_thread
from anyio.from_thread import BlockingPortal

# A library's code (compiled from a string: not a file of the user's).
LIBRARY = \'\'\'
import asyncio

async def serve_call(future):
    try:
        await future
    except asyncio.CancelledError:
        return None  # the library's contract: its caller learns of it another way
\'\'\'
library = {}
exec(compile(LIBRARY, "<library>", "exec"), library)


async def test_a_library_task_swallows_its_own_cancellation():
    future = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(library["serve_call"](future))
    await asyncio.sleep(0)
    task.cancel()
    assert await task is None


async def test_a_blocking_portal_stopped_with_a_call_pending():
    started = threading.Event()

    async def forever():
        started.set()
        await sleep(10)

    async with BlockingPortal() as portal:
        future = await to_thread.run_sync(portal.start_task_soon, forever)
        await to_thread.run_sync(started.wait)
        await portal.stop(cancel_remaining=True)
    assert future.cancelled()


async def call_the_library(future):
    return await library["serve_call"](future)


async def test_a_task_of_the_users_suspended_in_a_library_that_swallows():
    future = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(call_the_library(future))
    await asyncio.sleep(0)
    task.cancel()
    assert await task is None
"""


#: name -> (the module, its outcomes, the blocks of lines its output shows): each is run
#: under every runner.
CASES = {
    "swallowed": (SWALLOWS, {"failed": 4}, swallowed_lines()),
    # Structures that uncancel what they catch, shields, cancellations passed on.
    "look-alikes": (
        LOOKALIKES,
        {"passed": 8},
        [["asynccheck: no findings in 8 checked tests"]],
    ),
    # The test's own task is judged when the body returns.
    "own-task": (
        OWN_TASK,
        {"failed": 1},
        [
            [
                FLAGGED.format(name="*", coro="test_the_test_swallows_its_own_cancellation"),
                "  at test_mod.py:5 in test_the_test_swallows_its_own_cancellation",
                "  cancel() called at test_mod.py:5 in test_the_test_swallows_its_own_cancellation",
            ]
        ],
    ),
    # In fixtures: a task a fixture made, and a fixture step's own task (setup and teardown).
    "fixtures": (
        FIXTURES,
        {"passed": 2, "errors": 3},
        [
            [
                "*ERROR at teardown of test_uses_the_server*",
                "asynccheck found 1 problem in test_mod.py::test_uses_the_server (teardown):",
                FLAGGED.format(name="server", coro="serve")[:-1] + ", in fixture 'server' (setup)",
                "  at test_mod.py:9 in serve",
                "  task created at test_mod.py:16",
                "  cancel() called at test_mod.py:19 in server",
            ],
            [
                "*ERROR at setup of test_uses_a_fixture_that_swallowed*",
                "asynccheck found 1 problem in test_mod.py::test_uses_a_fixture_that_swallowed "
                "(setup):",
                "?swallowed-cancel? * in fixture 'stubborn_setup' (setup)",
                "  at test_mod.py:25 in stubborn_setup",
            ],
            [
                "*ERROR at teardown of test_uses_a_teardown_that_swallowed*",
                "asynccheck found 1 problem in test_mod.py::test_uses_a_teardown_that_swallowed "
                "(teardown):",
                "?swallowed-cancel? task '*' running stubborn_teardown() was cancelled * in "
                "fixture 'stubborn_teardown' (teardown)",
                "  at test_mod.py:36 in stubborn_teardown",
            ],
        ],
    ),
    # A task with no line of the user's on its stack when the cancellation reaches it is a
    # library's own (anyio's portal calls): not flagged. One of the user's that is suspended
    # in such a library call is, at the user's line.
    "library-tasks": (
        LIBRARY_TASKS,
        {"passed": 2, "failed": 1},
        [
            [
                "asynccheck found 1 problem in test_mod.py::"
                "test_a_task_of_the_users_suspended_in_a_library_that_swallows (call):",
                FLAGGED.format(name="*", coro="call_the_library"),
                "  at test_mod.py:44 in call_the_library",
            ]
        ],
    ),
}


@needs_cancelling
@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("case", list(CASES))
def test_each_case_under_each_runner(pytester: pytest.Pytester, case: str, runner: str) -> None:
    source, outcomes, blocks = CASES[case]
    result = run_with(pytester, runner, source)
    result.assert_outcomes(**outcomes)
    for lines in blocks:
        result.stdout.fnmatch_lines(lines)


@needs_cancelling
def test_warn_level_allow_marker_and_off(pytester: pytest.Pytester) -> None:
    source = SWALLOWS.replace(
        "async def test_return_in_except_cancelled_error",
        "@pytest.mark.asynccheck(allow=['swallowed-cancel'])\n"
        "async def test_return_in_except_cancelled_error",
    ).replace("import logging\n", "import logging\nimport pytest\n")
    result = run_with(pytester, "standalone", source, "--asynccheck-swallowed-cancel=warn")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*SwallowedCancelWarning: ?swallowed-cancel? task 'consumer'*"])
    assert "running fetch()" not in result.stdout.str()
    result = pytester.runpytest(*ARGS, "--asynccheck-swallowed-cancel=off")
    result.assert_outcomes(passed=4)
    pytester.makeini("[pytest]\nasynccheck_swallowed_cancel = off\n")
    pytester.runpytest(*ARGS).assert_outcomes(passed=4)


@needs_cancelling
def test_found_with_the_task_checks_off(pytester: pytest.Pytester) -> None:
    off = ("--asynccheck-leaked-task=off", "--asynccheck-never-retrieved=off")
    result = run_with(pytester, "standalone", SWALLOWS, *off)
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(
        [FLAGGED.format(name="consumer", coro="consume"), "  at test_mod.py:8 in consume"]
    )


@needs_cancelling
def test_report_baseline_and_annotations(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_mod=SWALLOWS)
    pytester.runpytest(*ARGS, "--asynccheck-report=report.json").assert_outcomes(failed=4)
    data = json.loads((pytester.path / "report.json").read_text())
    jsonschema.validate(data, json.loads(REPORT_SCHEMA.read_text()))
    assert {(f["kind"], f["line"], f["call"]) for f in data["findings"]} == {
        ("swallowed-cancel", 8, "consume()"),
        ("swallowed-cancel", 28, "fetch()"),
        ("swallowed-cancel", 43, "poll()"),
        ("swallowed-cancel", 59, "stubborn()"),
    }
    baseline = ("--asynccheck-baseline=baseline.json",)
    pytester.runpytest(*ARGS, *baseline, "--asynccheck-update-baseline")
    pytester.runpytest(*ARGS, *baseline).assert_outcomes(passed=4)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = pytester.runpytest(*ARGS)
    result.stdout.fnmatch_lines(
        ["::error file=test_mod.py,line=8,title=asynccheck swallowed-cancel in *"]
    )


INVISIBLE = """\
import asyncio
import logging


async def fails():
    raise ValueError("lost")


async def test_tasks_look_as_without_the_plugin(caplog):
    task = asyncio.create_task(asyncio.sleep(10), name="plain")
    assert type(task) is asyncio.Task
    assert repr(task).startswith("<Task pending name='plain' coro=<sleep() running at ")
    assert task.cancel.__name__ == "cancel"
    assert task.cancel() is True
    assert task.cancel("again") is True
    await asyncio.sleep(0)
    assert task.cancelled() and task.cancelling() == 2
    lost = asyncio.create_task(fails())
    await asyncio.sleep(0)
    del lost
    assert "Task exception was never retrieved" in caplog.text
"""


@needs_cancelling
def test_the_hook_is_invisible_to_the_code_under_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=INVISIBLE)
    result = pytester.runpytest(*ARGS, "--asynccheck-never-retrieved=off")
    result.assert_outcomes(passed=1)


def test_without_task_cancelling_a_note_says_it_is_not_checked(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Python 3.10 shows (there for real; elsewhere as if ``cancelling()`` were missing)."""
    monkeypatch.setattr(cancellation, "SUPPORTED", False)
    result = run_with(pytester, "standalone", SWALLOWS)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "note: swallowed-cancel is not checked on Python 3.*: it needs Task.cancelling(), "
            "new in Python 3.11 (--asynccheck-swallowed-cancel=off silences this note)",
            "asynccheck: no findings in 4 checked tests",
        ]
    )
    result = pytester.runpytest(*ARGS, "--asynccheck-swallowed-cancel=off")
    result.assert_outcomes(passed=4)
    assert "swallowed-cancel is not checked" not in result.stdout.str()
