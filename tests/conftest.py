"""The fixtures every test module uses; shared constants are in ``helpers.py``."""

from __future__ import annotations

import asyncio
import gc
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


def pytest_configure(config: pytest.Config) -> None:
    if PYTEST_ASYNCIO_0_23:
        # pytest-asyncio 0.23 replaces every loop it closes with a fresh one that it never
        # closes; in-process inner runs leave those for a later test's garbage collection.
        config.addinivalue_line(
            "filterwarnings",
            "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
        )
