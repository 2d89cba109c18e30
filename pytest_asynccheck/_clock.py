"""The plugin's own time source.

Budgets and durations read time through this module, never through ``time`` directly, so a
test that mocks ``time.perf_counter`` (or ``time.sleep``) cannot distort the plugin's figures,
and the plugin's own tests can swap in a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

perf_counter: Callable[[], float] = time.perf_counter


def set_on_instance(obj: Any, name: str) -> bool:
    """Whether ``obj.name`` was set on the object itself rather than found on its class.

    Never through ``vars(obj)``: reading an object's ``__dict__`` turns its attributes from
    inline values into a real dictionary for the rest of its life, and every attribute read
    on an event loop (``self._ready``, ``self._scheduled``) becomes slower, 15 % of a busy
    loop's time."""
    bound = getattr(obj, name, None)
    return getattr(bound, "__self__", None) is not obj
