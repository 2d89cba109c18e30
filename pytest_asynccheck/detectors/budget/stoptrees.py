"""Await trees of a test stopped from outside the loop: by pytest-timeout's thread method, and,
under trio, by pytest-timeout's signal method and Ctrl-C.

pytest-timeout's thread method fires a ``threading.Timer`` that dumps every thread's stack and
ends the process with ``os._exit``: no report is ever made. A ``pytest_timeout_set_timer``
wrapper finds the timer pytest-timeout started for the item and has it write the test's await
tree to the test's standard error first (shown by pytest-timeout with the captured output, or on
the terminal with ``-s``); the timer then does exactly what it did. The tree is read on the
loop's thread, handed over through the loop (``call_soon_threadsafe``, or trio's token); a loop
that does not take it within ``HANDOFF`` seconds is blocked, and the tree is read from the
timer's thread, with the loop thread's stack standing for the test's chain.

Under trio, a signal (pytest-timeout's ``SIGALRM``, Ctrl-C's ``SIGINT``) stops ``trio.run`` or
cancels every task before any report: while a trio test body runs, the Python handlers of these
signals are wrapped so that the tree is read from trio's task tree, in the handler, before the
handler that was there runs (and restored after the body, if still in place). The tree is shown
as asyncio's is, by ``hang.stopped``.

Limits: the signal handlers are wrapped only on the main thread, and only Python handlers;
under pytest-timeout's thread method the tree of a blocked loop reads the other tasks while the
loop thread runs (their frames are suspended, and read only).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..._hookholder import HookHolder
from ..._session import CheckSession, TestCheck
from ..blocking.loopthread import allow_blocking
from . import awaittree
from .hang import SIGNALLED, TREE, loop_of, tree_of
from .waits import Step

#: ``TestCheck.data`` key: (task, token) of a test body trio runs.
TRIO_TEST = "hang.trio-test"
#: Seconds the loop has to hand over its tree before it is taken as blocked.
HANDOFF = 0.5
#: The signals whose handlers take the tree of a trio test first.
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGALRM") if hasattr(signal, name))


@contextlib.contextmanager
def trio_stops(check: TestCheck) -> Iterator[None]:
    """Around a test body trio runs: keep its task, and read its tree on the signals that stop
    it. Nothing is done under another library."""
    trio: Any = sys.modules.get("trio")
    try:
        task = trio.lowlevel.current_task()
        token = trio.lowlevel.current_trio_token()
    except (AttributeError, RuntimeError):
        yield
        return
    check.data[TRIO_TEST] = (task, token)
    installed: dict[int, tuple[Any, Any]] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            handler = signal.getsignal(signum)
            if callable(handler):
                ours = functools.partial(_tree_first, check, handler)
                signal.signal(signum, ours)
                installed[signum] = (handler, ours)
    try:
        yield
    finally:
        for signum, (handler, ours) in installed.items():
            if signal.getsignal(signum) is ours:  # the test may have put its own in place
                signal.signal(signum, handler)


def _tree_first(
    check: TestCheck, handler: Callable[..., Any], signum: int, frame: types.FrameType | None
) -> Any:
    __tracebackhide__ = True
    check.data[SIGNALLED] = signum
    if TREE not in check.data:
        task, _ = check.data[TRIO_TEST]
        with allow_blocking():  # reading the source of the lines shown is not the test's
            check.data[TREE] = awaittree.trio_tree(task, check.session.rootpath)
    return handler(signum, frame)


def _read_tree(check: TestCheck) -> list[str]:
    """The test's tree, read on its loop's thread."""
    rootdir = check.session.rootpath
    with allow_blocking():
        trio_test = check.data.get(TRIO_TEST)
        if trio_test is not None:
            return awaittree.trio_tree(trio_test[0], rootdir)
        return tree_of(check, asyncio.all_tasks(loop_of(check)[0]))


def _read_blocked_tree(check: TestCheck) -> list[str]:
    """The test's tree, read from another thread while its loop's thread runs."""
    rootdir = check.session.rootpath
    trio_test = check.data.get(TRIO_TEST)
    if trio_test is not None:
        return awaittree.trio_tree(trio_test[0], rootdir)
    loop, thread = loop_of(check)
    frame = sys._current_frames().get(thread or 0)
    steps: list[Step] = []
    while frame is not None:
        steps.append((frame, frame.f_lineno))
        frame = frame.f_back
    steps.reverse()
    tasks = asyncio.all_tasks(loop)
    return awaittree.capture(tasks, asyncio.current_task(loop), rootdir, steps)


def tree_from_another_thread(check: TestCheck) -> list[str]:
    """The tree of the test ``check``, whose loop runs on another thread."""
    box: list[list[str]] = []
    taken = threading.Event()

    def on_loop() -> None:
        with contextlib.suppress(Exception):
            box.append(_read_tree(check))
        taken.set()

    trio_test = check.data.get(TRIO_TEST)
    loop, _ = loop_of(check)
    try:
        if trio_test is not None:
            trio_test[1].run_sync_soon(on_loop)
        elif loop is not None:
            loop.call_soon_threadsafe(on_loop)
        else:
            return []
    except RuntimeError:
        return []  # the loop was closed, or the run ended
    if taken.wait(HANDOFF):
        return box[0] if box else []
    return _read_blocked_tree(check)


def _write_tree_first(
    session: CheckSession, item: pytest.Item, fire: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """pytest-timeout's timer, firing: the tree of the item's test, if it runs, then what the
    timer does."""
    with contextlib.suppress(Exception):  # nothing of ours may keep the timer from firing
        check = session.open.get(item.nodeid)
        if check is not None and check.is_async and not check.closed:
            lines = tree_from_another_thread(check)
            if lines:
                title = f" asynccheck: await tree of {item.nodeid} at the timeout "
                sys.stderr.write(f"{title:+^80}\n" + "\n".join(lines) + "\n")
                sys.stderr.flush()
    return fire(*args, **kwargs)


class TimeoutTrees(HookHolder):
    """Has pytest-timeout's thread-method timer write the test's await tree before it ends the
    process."""

    name = "asynccheck-timeout-trees"

    def __init__(self, session: CheckSession) -> None:
        self.session = session

    @pytest.hookimpl(wrapper=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> Any:
        result = yield
        for thread in threading.enumerate():
            args = getattr(thread, "args", None)
            if isinstance(thread, threading.Timer) and args and args[0] is item:
                fire = getattr(thread, "function", None)
                if callable(fire) and getattr(fire, "func", None) is not _write_tree_first:
                    thread.function = functools.partial(_write_tree_first, self.session, item, fire)
        return result
