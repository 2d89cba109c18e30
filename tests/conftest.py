"""The fixtures every test module uses; shared constants are in ``helpers.py``."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import warnings
from collections.abc import Iterator

import pytest

from tests.helpers import PYTEST_ASYNCIO_0_23


@pytest.fixture
def pytester(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.Pytester]:
    """An inner pytest that loads only the plugins a test names, with stable output."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("COLUMNS", "100")
    for name in ("PY_COLORS", "NO_COLOR", "FORCE_COLOR", "CI", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    yield pytester
    if PYTEST_ASYNCIO_0_23:
        # pytest-asyncio 0.23 leaves a loop it never closes set as the current one after each
        # of its tests; an in-process inner run's is freed here, not during a later test, where
        # its ResourceWarning would be reported against that test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            asyncio.set_event_loop(None)
            gc.collect()


@pytest.fixture
def cpu_alone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """For a test whose outcome depends on when the scheduler runs its threads, or that loads
    a CPU on purpose: no other such test runs meanwhile in any process of this run (an
    exclusive lock on a file in the directory that pytest-xdist's workers share). Waits at
    most ten minutes, then runs anyway."""
    if sys.platform == "win32":
        yield
        return
    import fcntl

    with open(tmp_path_factory.getbasetemp().parent / "asynccheck-cpu-alone.lock", "a") as file:
        give_up = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > give_up:
                    break
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def pytest_configure(config: pytest.Config) -> None:
    if PYTEST_ASYNCIO_0_23:
        # pytest-asyncio 0.23 replaces every loop it closes with a fresh one that it never
        # closes; in-process inner runs leave those for a later test's garbage collection.
        config.addinivalue_line(
            "filterwarnings",
            "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
        )
