"""The await tree read from another thread (pytest-timeout's thread method) and the exception
groups trimmed of the plugin's frames, in-process: the end-to-end runs of both live in
test_hang.py and test_tracebacks.py, in processes of their own or on pytest 8 only."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from pytest_asynccheck import _tracebacks
from tests.helpers import ARGS

FROM_ANOTHER_THREAD = """
import asyncio
import threading

import pytest

from pytest_asynccheck._session import active
from pytest_asynccheck.detectors.budget import stoptrees


async def waiter(event):
    await event.wait()


def read_tree(check, box):
    box.extend(stoptrees.tree_from_another_thread(check))


# The tree another thread reads while the test awaits, or blocks in, until_read.
async def tree_while_waiting(request, until_read):
    event = asyncio.Event()
    task = asyncio.create_task(waiter(event), name="waiter")
    await asyncio.sleep(0)
    box = []
    thread = threading.Thread(target=read_tree, args=(active().open[request.node.nodeid], box))
    thread.start()
    await until_read(thread)
    event.set()
    await task
    return box


async def polled(thread):
    while thread.is_alive():
        await asyncio.sleep(0.01)


async def joined(thread):
    thread.join()


async def test_loop_hands_over_its_tree(request):
    print("TREE-TAKEN", *await tree_while_waiting(request, polled), sep="\\n")


@pytest.mark.asynccheck(allow=["blocking"])
async def test_blocked_loop_is_read_from_the_other_thread(request):
    print("TREE-BLOCKED", *await tree_while_waiting(request, joined), sep="\\n")


def test_a_finished_test_has_no_tree(request):
    check = active().open.get(request.node.nodeid)
    assert check is None or stoptrees.tree_from_another_thread(check) == []
"""


def test_the_tree_is_read_on_the_loop_or_from_the_timers_thread_when_the_loop_is_blocked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mod=FROM_ANOTHER_THREAD)
    result = pytester.runpytest(*ARGS, "-s", "-p", "no:randomly")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*TREE-TAKEN",
            "task * (the test) waits on sleep(0.01)",
            "    test_mod.py:42 in test_loop_hands_over_its_tree: print(*",
            "    test_mod.py:26 in tree_while_waiting: await until_read(thread)",
            "    test_mod.py:34 in polled: await asyncio.sleep(0.01)",
            "task 'waiter' waits on Event.wait() on event",
            "    test_mod.py:11 in waiter: await event.wait()",
        ]
    )
    # Blocked in thread.join(): the test's chain is the loop thread's stack at that line.
    result.stdout.fnmatch_lines(
        [
            "*TREE-BLOCKED",
            "task * (the test) was stopped at",
            "    test_mod.py:47 in test_blocked_loop_is_read_from_the_other_thread: print(*",
            "    test_mod.py:26 in tree_while_waiting: await until_read(thread)",
            "    test_mod.py:38 in joined: thread.join()",
            "task 'waiter' waits on Event.wait() on event",
            "    test_mod.py:11 in waiter: await event.wait()",
        ]
    )


def _user_raises() -> None:
    raise ValueError("the user's error")


def _through_a_plugin_frame() -> None:
    """Calls ``_user_raises`` from a frame whose file name the plugin takes for its own (a
    file beside the package directory, not in it, so coverage has no source to look for)."""
    source = "def plugin_wrapper(call):\n    return call()\n"
    namespace: dict[str, object] = {}
    exec(compile(source, _tracebacks.PACKAGE_DIR + "_wrapper.py", "exec"), namespace)
    namespace["plugin_wrapper"](_user_raises)  # type: ignore[operator]


def _files(tb: types.TracebackType | None) -> list[str]:
    names = []
    while tb is not None:
        names.append(Path(tb.tb_frame.f_code.co_filename).name)
        tb = tb.tb_next
    return names


def _functions(tb: types.TracebackType | None) -> list[str]:
    names = []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names


def _group() -> BaseException:
    try:
        try:
            _through_a_plugin_frame()
        except ValueError as error:
            raise _tracebacks.GROUP("in a task group", [error]) from error
    except BaseException as group:
        return group
    raise AssertionError("not raised")


def test_a_group_its_members_and_causes_lose_the_plugins_frames() -> None:
    group = _group()
    member = group.exceptions[0]  # type: ignore[attr-defined]
    assert "pytest_asynccheck_wrapper.py" in _files(member.__traceback__)
    _tracebacks.trim_group(group, set())
    names = [
        "_group",
        "_through_a_plugin_frame",
        "_user_raises",
    ]
    assert _functions(member.__traceback__) == names
    assert _functions(group.__cause__.__traceback__) == names  # type: ignore[union-attr]
    assert _functions(group.__traceback__) == ["_group"]
    _tracebacks.trim_group(group, set())  # twice is once
    assert _functions(member.__traceback__) == names


GROUP_TEST = """
import sys

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup


def test_fails_with_a_group():
    raise ExceptionGroup("group", [ValueError("inside")])


def test_fails_plainly():
    assert 1 == 2
"""


def test_the_trim_hook_leaves_reports_whole(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod=GROUP_TEST)
    result = pytester.runpytest("-p", "no:randomly", plugins=[_tracebacks.TracebackTrim()])
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["*ExceptionGroup: group (1 sub-exception)*", "*ValueError: inside*"]
    )
    result.stdout.fnmatch_lines(["*assert 1 == 2*"])
    assert sys.modules["pytest_asynccheck._tracebacks"] is _tracebacks
