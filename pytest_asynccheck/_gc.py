"""The garbage collector's pauses, as the checks see them (``CollectorPauses``, installed in
``gc.callbacks`` by the check session): whether a collection is running on a thread now (a
coroutine freed then was in a reference cycle: the un-awaited check), and how long full
collections, on any thread, held the interpreter lately (the watchdog measures a stall
without them).

Only full collections are timed (collecting a young generation is short, and runs for the
allocating code), and only the last 32 are kept."""

from __future__ import annotations

import collections
import threading
import time

from . import _clock

#: Read once: a test that mocks ``time.monotonic`` does not move the collector's pauses.
_monotonic = time.monotonic

_YOUNG = (0.0, 0.0)
#: Read at every collection, of every generation: a module global, not an attribute.
_get_ident = threading.get_ident


class CollectorPauses:
    """The garbage collector's pauses, per thread, from ``gc.callbacks``: whether it is running
    now (a coroutine it frees was in a reference cycle), and for how long it held a thread
    lately (a stall of the loop measured without them)."""

    def __init__(self) -> None:
        #: thread id -> (plugin clock, monotonic clock) when its collection began (``_YOUNG``
        #: for a collection of the young generations)
        self.running: dict[int, tuple[float, float]] = {}
        #: (thread id, began and ended on the plugin's clock, began and ended on the monotonic
        #: clock, which is the standard library loop's) of the last full collections
        self.recent: collections.deque[tuple[int, float, float, float, float]] = collections.deque(
            maxlen=32
        )

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        thread = _get_ident()
        if phase == "start":
            # Only a full collection is timed: a young generation is small, so collecting it
            # never holds a thread for long, and it runs for the allocating code (a pause the
            # stall is made of, not one to take out of it).
            self.running[thread] = (
                (_clock.perf_counter(), _monotonic()) if info["generation"] == 2 else _YOUNG
            )
            return
        began = self.running.pop(thread, None)
        if began is not None and began is not _YOUNG:
            self.recent.append((thread, began[0], _clock.perf_counter(), began[1], _monotonic()))

    def within(self, start: float, end: float, monotonic: bool = False) -> float:
        """Seconds full collections ran between ``start`` and ``end``, on any thread: one holds
        the interpreter, and so every thread that needs it (a test's server thread calling
        ``gc.collect()`` holds the loop thread as much as the loop thread's own would)."""
        total = 0.0
        for _, began, ended, mono_began, mono_ended in list(self.recent):
            if monotonic:
                began, ended = mono_began, mono_ended
            total += max(0.0, min(ended, end) - max(began, start))
        return total
