"""Await trees: every pending task of a test, what each one waits on, at which line of the
user's code, as a tree from the test's task down (a task awaiting another task or a
``gather`` has that task below it), as text lines for the failure message.

What each task waits on, and which task holds a lock, is read in ``waits``; this module names
the primitives (a variable of a user frame bound to it, the test's own frames first), shows
every task once, and quotes each user frame's line. ``capture`` is the asyncio tree of a
test's tasks, ``trio_tree`` the tree of a trio task and of its nurseries' tasks (trio's locks
know their owner).

Limits: the lock-owner inference of ``waits`` applies. Python 3.14's ``asyncio.graph`` gives
the same frames; this module does not use it, as it adds neither the primitive nor the owner.
"""

from __future__ import annotations

import asyncio
import linecache
from collections.abc import Iterable, Sequence
from typing import Any

from ..._frames import is_user_file, relpath
from .waits import (
    HELD,
    Step,
    TaskState,
    coroutine_steps,
    holds,
    task_name,
    task_state,
    trio_waits_on,
)


class Namer:
    """Names for primitives: a variable of a user frame bound to it, else its type and id."""

    def __init__(self, states: Iterable[TaskState], root: asyncio.Task[Any] | None) -> None:
        # The test's own frames first: its names (``lock_a``) say more than a helper's
        # parameters (``first``).
        ordered = sorted(states, key=lambda s: s.task is not root)
        self._frames = [
            f for s in ordered for f, _ in s.steps if is_user_file(f.f_code.co_filename)
        ]

    def __call__(self, obj: object) -> str:
        for frame in self._frames:
            for name, value in frame.f_locals.items():
                if value is obj:
                    return name
        for frame in self._frames:
            for name, value in frame.f_globals.items():
                if value is obj:
                    return name
        return f"{type(obj).__name__} at {id(obj):#x}"


def _frame_lines(steps: Iterable[Step], pad: str, rootdir: str) -> list[str]:
    """The user's frames of a chain, each with its line of source."""
    lines = []
    for frame, line in steps:
        filename = frame.f_code.co_filename
        if not is_user_file(filename):
            continue
        source = linecache.getline(filename, line).strip()
        lines.append(
            f"{pad}    {relpath(filename, rootdir or None)}:{line} in {frame.f_code.co_name}"
            + (f": {source}" if source else "")
        )
    return lines


def render(
    states: Sequence[TaskState],
    root: asyncio.Task[Any] | None,
    rootdir: str = "",
    root_label: str = "the test",
) -> list[str]:
    """The tree as text lines: the root task first (said to be ``root_label``), every other
    task once."""
    by_task = {s.task: s for s in states}
    name_of = Namer(states, root)
    waited = {id(s.primitive): s.primitive for s in states if isinstance(s.primitive, HELD)}
    holders: dict[int, list[TaskState]] = {key: [] for key in waited}
    for state in states:
        for key, primitive in waited.items():
            if any(holds(step, primitive) for step in state.steps):
                holders[key].append(state)
    lines: list[str] = []
    seen: set[asyncio.Task[Any]] = set()

    def show(state: TaskState, depth: int) -> None:
        seen.add(state.task)
        pad = "  " * depth
        label = f" ({root_label})" if state.task is root else ""
        text = state.waits_on
        if state.primitive is not None and not isinstance(state.primitive, asyncio.StreamReader):
            text += f" on {name_of(state.primitive)}"
        if isinstance(state.primitive, HELD):
            owners = [s for s in holders[id(state.primitive)] if s is not state]
            text += (
                ", held by " + ", ".join(f"task {task_name(s.task)}" for s in owners)
                if owners
                else ", held by a task not inside `async with` on it"
            )
        verb = "was stopped at" if state.stopped else f"waits on {text}"
        lines.append(f"{pad}task {task_name(state.task)}{label} {verb}")
        lines.extend(_frame_lines(state.steps, pad, rootdir))
        held = [
            name_of(primitive)
            for key, primitive in waited.items()
            if state in holders[key] and primitive is not state.primitive
        ]
        if held:
            lines.append(f"{pad}    holds {', '.join(held)}")
        for task in state.awaited:
            child = by_task.get(task)
            if child is not None and task not in seen:
                show(child, depth + 1)

    first = [by_task[root]] if root in by_task else []
    rest = sorted((s for s in states if s.task is not root), key=lambda s: s.task.get_name())
    for state in first + rest:
        if state.task not in seen:
            show(state, 0)
    return lines


def capture(
    tasks: Iterable[asyncio.Task[Any]],
    root: asyncio.Task[Any] | None,
    rootdir: str = "",
    root_steps: list[Step] | None = None,
    root_label: str = "the test",
) -> list[str]:
    """The await tree of the pending ``tasks``; ``root_steps`` stand for the root's chain when
    an exception has unwound it already (then only its frames are known)."""
    states: list[TaskState] = []
    for task in tasks:
        if task.done() and task is not root:
            continue
        if task is root and root_steps is not None:
            state = TaskState(task, root_steps, stopped=True)
        else:
            state = task_state(task, coroutine_steps(task.get_coro()))
        states.append(state)
    if root is not None and root_steps is not None and all(s.task is not root for s in states):
        states.append(TaskState(root, root_steps, stopped=True))
    return render(states, root, rootdir, root_label)


# -- trio ----------------------------------------------------------------------------------


def trio_tree(root: Any, rootdir: str = "") -> list[str]:
    """The await tree of a trio task (``trio.lowlevel.Task``) and of the tasks of its
    nurseries, below it. trio's locks know their owner (``statistics().owner``)."""
    lines: list[str] = []
    seen: list[Step] = []

    def name_of(obj: object) -> str:
        for frame, _ in seen:
            for name, value in frame.f_locals.items():
                if value is obj:
                    return name
        return f"{type(obj).__name__} at {id(obj):#x}"

    def show(task: Any, depth: int) -> None:
        steps: list[Step] = list(task.iter_await_frames())
        seen.extend(s for s in steps if is_user_file(s[0].f_code.co_filename))
        text, owner = trio_waits_on(steps)
        if owner is not None:
            text += f" on {name_of(owner)}"
            statistics = getattr(owner, "statistics", None)
            holder = getattr(statistics(), "owner", None) if callable(statistics) else None
            if holder is not None and holder is not task:
                text += f", held by task {holder.name!r}"
        pad = "  " * depth
        label = " (the test)" if depth == 0 else ""
        lines.append(f"{pad}task {task.name!r}{label} waits on {text}")
        lines.extend(_frame_lines(steps, pad, rootdir))
        for nursery in task.child_nurseries:
            for child in sorted(nursery.child_tasks, key=lambda t: t.name):
                show(child, depth + 1)

    show(root, 0)
    return lines
