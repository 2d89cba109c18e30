"""Constants and helpers shared by the test modules (``from tests.helpers import ...``); the
fixtures are in ``conftest.py``."""

from __future__ import annotations

import re
from importlib.metadata import version

#: Every inner run loads the plugin explicitly: autoloading is off (see the ``pytester`` fixture).
ARGS = ("-p", "asynccheck", "--asynccheck")
ASYNCIO = ("-p", "asyncio")
ANYIO = ("-p", "anyio")
#: For inner runs whose tests overrun their budgets several times on purpose, to show where the
#: time went: the hang guard (budget x 2 by default) would cancel them first.
SLOW_NOT_HUNG = ("--asynccheck-hang-factor=100",)


def pytest_asyncio_version() -> tuple[int, ...]:
    return tuple(int(part) for part in version("pytest-asyncio").split(".")[:2])


#: The lowest supported pytest-asyncio, which differs from later ones in the ways below.
PYTEST_ASYNCIO_0_23 = pytest_asyncio_version() < (0, 24)
#: pytest-asyncio 0.23 calls the marker's loop scope ``scope``; 0.24 renamed it ``loop_scope``.
LOOP_SCOPE = "scope" if PYTEST_ASYNCIO_0_23 else "loop_scope"
#: The ini line that keeps pytest-asyncio >= 0.24 from warning about an unset default.
ASYNCIO_INI = "" if PYTEST_ASYNCIO_0_23 else "asyncio_default_fixture_loop_scope = function\n"


def for_pytest_asyncio(source: str) -> str:
    """A test module written for pytest-asyncio 0.24+, as the installed one reads it: 0.23 has
    no ``loop_scope`` (a fixture runs on the loop of its own scope; the marker says ``scope``)."""
    if not PYTEST_ASYNCIO_0_23:
        return source
    source = re.sub(
        r"(@pytest_asyncio\.fixture\([^)]*?),? ?loop_scope=['\"]\w+['\"]\)", r"\1)", source
    )
    source = source.replace("@pytest_asyncio.fixture()", "@pytest_asyncio.fixture")
    return source.replace("pytest.mark.asyncio(loop_scope=", "pytest.mark.asyncio(scope=")
