from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Iterator

import pytest

#: Every inner run loads the plugin explicitly: autoloading is off (see ``pytester`` below).
ARGS = ("-p", "asynccheck", "--asynccheck")
ASYNCIO = ("-p", "asyncio")
ANYIO = ("-p", "anyio")
#: For inner runs whose tests overrun their budgets several times on purpose, to show where the
#: time went: the hang guard (budget x 2 by default) would cancel them first.
SLOW_NOT_HUNG = ("--asynccheck-hang-factor=100",)


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


def _pytest_asyncio_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in version("pytest-asyncio").split(".")[:2])


#: The lowest supported pytest-asyncio, which differs from later ones in the ways below.
PYTEST_ASYNCIO_0_23 = _pytest_asyncio_version() < (0, 24)
#: pytest-asyncio 0.23 calls the marker's loop scope ``scope``; 0.24 renamed it ``loop_scope``.
LOOP_SCOPE = "scope" if PYTEST_ASYNCIO_0_23 else "loop_scope"
#: The ini line that keeps pytest-asyncio >= 0.24 from warning about an unset default.
ASYNCIO_INI = "" if PYTEST_ASYNCIO_0_23 else "asyncio_default_fixture_loop_scope = function\n"


def pytest_configure(config: pytest.Config) -> None:
    if PYTEST_ASYNCIO_0_23:
        # pytest-asyncio 0.23 replaces every loop it closes with a fresh one that it never
        # closes; in-process inner runs leave those for a later test's garbage collection.
        config.addinivalue_line(
            "filterwarnings",
            "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
        )
