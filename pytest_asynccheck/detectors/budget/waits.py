"""What each pending task of a test waits on, read from the standard library's own structures
only, never by running code of the tasks: each task's coroutine chain (``cr_await``,
``ag_await``, ``gi_yieldfrom``; an ``async for`` step is followed to its generator) and
``task._fut_waiter``, the future it is suspended on. The innermost frame of the chain is the
primitive's own method (``Event.wait``, ``Queue.get``, ``Lock.acquire``,
``StreamReader._wait_for_data``), whose ``self`` names the primitive; a task awaiting another
task, a ``gather``, ``asyncio.wait`` or a task group has those tasks as the ones it awaits.

Limits: ``asyncio.Lock`` records no owner, so the task holding a lock is inferred (``holds``): a
task holds it while one of its frames is inside the body of ``async with <lock>:`` (a name or
attribute that evaluates to that lock; a bare ``await lock.acquire()`` is not seen). A trio
task's wait is the first library call made from the user's code (``trio_waits_on``).
"""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import textwrap
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..._frames import is_user_file

#: Primitives whose waiter is found as ``self`` of the chain's innermost frame.
PRIMITIVES: tuple[type, ...] = (
    asyncio.Lock,
    asyncio.Event,
    asyncio.Semaphore,
    asyncio.Condition,
    asyncio.Queue,
    asyncio.StreamReader,
)
#: Primitives a task holds while it is inside ``async with`` on them.
HELD: tuple[type, ...] = (asyncio.Lock, asyncio.Semaphore, asyncio.Condition)

#: (frame, line it is at): a frame of a suspended coroutine, or of a traceback.
Step = tuple[types.FrameType, int]


def coroutine_steps(coro: object) -> list[Step]:
    """The frames of the coroutines and generators ``coro`` is suspended in, outermost first."""
    steps: list[Step] = []
    obj: Any = coro
    while obj is not None:
        frame = (
            getattr(obj, "cr_frame", None)
            or getattr(obj, "ag_frame", None)
            or getattr(obj, "gi_frame", None)
        )
        if frame is not None:
            steps.append((frame, frame.f_lineno))
        nxt = (
            getattr(obj, "cr_await", None)
            or getattr(obj, "ag_await", None)
            or getattr(obj, "gi_yieldfrom", None)
        )
        if nxt is None and type(obj).__name__ in (
            "async_generator_asend",
            "async_generator_athrow",
        ):
            # ``async for`` awaits a step object that does not expose its generator.
            nxt = next((r for r in gc.get_referents(obj) if inspect.isasyncgen(r)), None)
        obj = nxt
    return steps


def traceback_steps(tb: types.TracebackType | None) -> list[Step]:
    """The frames an exception passed through, outermost first: a task's chain after it was
    unwound."""
    steps: list[Step] = []
    while tb is not None:
        steps.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return steps


@dataclass
class TaskState:
    task: asyncio.Task[Any]
    steps: list[Step]
    waits_on: str = "nothing: it is ready to run or running"
    primitive: object = None
    awaited: list[asyncio.Task[Any]] = field(default_factory=list)
    #: Its chain was read from the traceback of the exception that stopped it.
    stopped: bool = False


def _self_of(frame: types.FrameType) -> object:
    return frame.f_locals.get("self")


def task_name(task: asyncio.Task[Any]) -> str:
    return repr(task.get_name())


def _peer(reader: asyncio.StreamReader) -> str:
    transport = getattr(reader, "_transport", None)
    if transport is None:
        return ""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f" from {peer[0]}:{peer[1]}"
    return f" from {peer}" if peer else ""


def _by_name(tasks: Iterable[object]) -> list[asyncio.Task[Any]]:
    """The tasks of a set, in a stable order."""
    return sorted((t for t in tasks if isinstance(t, asyncio.Task)), key=lambda t: t.get_name())


def task_state(task: asyncio.Task[Any], steps: list[Step]) -> TaskState:
    state = TaskState(task, steps)
    waiter: Any = getattr(task, "_fut_waiter", None)
    leaf = steps[-1][0] if steps else None
    owner = _self_of(leaf) if leaf is not None else None
    if leaf is not None and isinstance(owner, PRIMITIVES):
        state.primitive = owner
        method = leaf.f_code.co_name
        if isinstance(owner, asyncio.StreamReader):
            # The outermost method of the reader names the read (readline, not _wait_for_data).
            for frame, _ in steps:
                if _self_of(frame) is owner:
                    method = frame.f_code.co_name
                    break
            state.waits_on = f"a socket read, StreamReader.{method}(){_peer(owner)}"
        else:
            state.waits_on = f"{type(owner).__name__}.{method}()"
        return state
    if leaf is not None and not is_user_file(leaf.f_code.co_filename):
        # ``wait_for`` (3.10, 3.11) and ``shield`` wrap what they await in a task or future
        # of their own, kept in a local.
        inner = leaf.f_locals.get("fut", leaf.f_locals.get("inner"))
        if isinstance(inner, asyncio.Task) or hasattr(inner, "_children"):
            waiter = inner
    if isinstance(waiter, asyncio.Task):
        state.waits_on = f"task {task_name(waiter)}"
        state.awaited = [waiter]
        return state
    children = getattr(waiter, "_children", None)
    if children is not None:  # gather()
        state.awaited = [c for c in children if isinstance(c, asyncio.Task)]
        names = ", ".join(task_name(c) for c in state.awaited)
        state.waits_on = f"gather({names})"
        return state
    if leaf is not None and not is_user_file(leaf.f_code.co_filename):
        name = leaf.f_code.co_name
        if name == "sleep":
            state.waits_on = f"sleep({leaf.f_locals.get('delay')!r})"
            return state
        if name in ("_wait", "wait") and "fs" in leaf.f_locals:  # asyncio.wait
            state.awaited = _by_name(leaf.f_locals["fs"])
            state.waits_on = "asyncio.wait(" + ", ".join(map(task_name, state.awaited)) + ")"
            return state
        tasks = getattr(owner, "_tasks", None)
        if name == "__aexit__" and isinstance(tasks, (set, list)):  # a TaskGroup
            state.awaited = _by_name(tasks)
            state.waits_on = "its task group: " + ", ".join(map(task_name, state.awaited))
            return state
        qualname = getattr(leaf.f_code, "co_qualname", None)  # Python 3.11+
        if qualname is None:
            qualname = f"{type(owner).__name__}.{name}" if owner is not None else name
        state.waits_on = f"{qualname}()"
        return state
    if waiter is not None:
        state.waits_on = "a future nobody has completed yet"
    return state


def _value(node: ast.expr, frame: types.FrameType) -> object:
    """The value of a name or attribute chain in ``frame``: read, never called."""
    if isinstance(node, ast.Name):
        if node.id in frame.f_locals:
            return frame.f_locals[node.id]
        return frame.f_globals.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _value(node.value, frame)
        try:
            return inspect.getattr_static(base, node.attr)
        except AttributeError:
            return None
    return None


_async_withs: dict[types.CodeType, list[tuple[ast.AsyncWith, int]]] = {}


def _async_with_blocks(code: types.CodeType) -> list[tuple[ast.AsyncWith, int]]:
    """The ``async with`` statements of a function, with the offset of its source lines."""
    known = _async_withs.get(code)
    if known is not None:
        return known
    blocks: list[tuple[ast.AsyncWith, int]] = []
    try:
        lines, start = inspect.getsourcelines(code)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        tree = None
        start = 0
    if tree is not None:
        offset = max(start, 1) - 1
        blocks = [(n, offset) for n in ast.walk(tree) if isinstance(n, ast.AsyncWith)]
    _async_withs[code] = blocks
    return blocks


def holds(step: Step, primitive: object) -> bool:
    """Whether the frame is inside the body of ``async with <primitive>:``."""
    frame, line = step
    for block, offset in _async_with_blocks(frame.f_code):
        first = block.body[0].lineno + offset
        last = (block.end_lineno or block.lineno) + offset
        if first <= line <= last and any(
            _value(item.context_expr, frame) is primitive for item in block.items
        ):
            return True
    return False


# -- trio ----------------------------------------------------------------------------------


def _trio_peer(stream: object) -> str:
    """`` from host:port`` of a trio ``SocketStream``, if its socket is connected."""
    sock = getattr(stream, "socket", None)
    try:
        peer = sock.getpeername() if sock is not None else None
    except OSError:
        return ""
    return f" from {peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else ""


def trio_waits_on(steps: list[Step]) -> tuple[str, object]:
    """What a trio task waits on: the first library call made from the user's code, and the
    object it is a method of."""
    last_user = max(
        (i for i, (frame, _) in enumerate(steps) if is_user_file(frame.f_code.co_filename)),
        default=-1,
    )
    for frame, _ in steps[last_user + 1 :]:
        owner = _self_of(frame)
        name = frame.f_code.co_name
        if type(owner).__name__ == "NurseryManager":
            return "the tasks of its nursery", None
        if type(owner).__name__ == "SocketStream" and name.startswith(("receive", "send")):
            what = "a socket read" if name.startswith("receive") else "a socket write"
            return f"{what}, SocketStream.{name}(){_trio_peer(owner)}", None
        if owner is not None:
            method = "acquire" if name == "__aenter__" else name
            return f"{type(owner).__name__}.{method}()", owner
        if name == "sleep":
            return f"trio.sleep({frame.f_locals.get('seconds')!r})", None
        return f"{name}()", None
    return "nothing: it is ready to run or running", None
