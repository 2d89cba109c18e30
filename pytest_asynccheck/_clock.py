"""The plugin's own time source.

Budgets and durations read time through this module, never through ``time`` directly, so a
test that mocks ``time.perf_counter`` (or ``time.sleep``) cannot distort the plugin's figures,
and the plugin's own tests can swap in a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

perf_counter: Callable[[], float] = time.perf_counter
