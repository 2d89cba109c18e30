"""Constants and helpers shared by the test modules (``from tests.helpers import ...``); the
fixtures are in ``conftest.py``."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from pytest_asynccheck.reporting import json_report

#: Every inner run loads the plugin explicitly: autoloading is off (see the ``pytester`` fixture).
ARGS = ("-p", "asynccheck", "--asynccheck")
ASYNCIO = ("-p", "asyncio")
ANYIO = ("-p", "anyio")
#: For inner runs whose tests overrun their budgets several times on purpose, to show where the
#: time went: the hang guard (budget x 2 by default) would cancel them first.
SLOW_NOT_HUNG = ("--asynccheck-hang-factor=100",)
#: The JSON schema of ``--asynccheck-json`` reports, shipped with the package.
REPORT_SCHEMA = Path(json_report.__file__).with_name("report-schema.json")


def pytest_asyncio_version() -> tuple[int, ...]:
    return tuple(int(part) for part in version("pytest-asyncio").split(".")[:2])


#: The lowest supported pytest-asyncio, which differs from later ones in the ways below.
PYTEST_ASYNCIO_0_23 = pytest_asyncio_version() < (0, 24)
#: pytest-asyncio 0.23 calls the marker's loop scope ``scope``; 0.24 renamed it ``loop_scope``.
LOOP_SCOPE = "scope" if PYTEST_ASYNCIO_0_23 else "loop_scope"
#: The ini line that keeps pytest-asyncio >= 0.24 from warning about an unset default.
ASYNCIO_INI = "" if PYTEST_ASYNCIO_0_23 else "asyncio_default_fixture_loop_scope = function\n"
