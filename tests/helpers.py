"""Constants and helpers shared by the test modules (``from tests.helpers import ...``); the
fixtures are in ``conftest.py``."""

from __future__ import annotations

import re
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest

from pytest_asynccheck.reporting import json_report

#: Every inner run loads the plugin explicitly: autoloading is off (see the ``pytester`` fixture).
ARGS = ("-p", "asynccheck", "--asynccheck")
ASYNCIO = ("-p", "asyncio")
ANYIO = ("-p", "anyio")
#: ``runner`` for a test run both under the plugin's own runner and under pytest-asyncio (auto
#: mode, which the test's ini sets).
STANDALONE_AND_PYTEST_ASYNCIO = (
    pytest.param((), id="standalone"),
    pytest.param(ASYNCIO, id="pytest-asyncio-auto"),
)
#: For inner runs whose tests overrun their budgets several times on purpose, to show where the
#: time went: the hang guard (budget x 2 by default) would cancel them first.
SLOW_NOT_HUNG = ("--asynccheck-hang-factor=100",)
#: anyio's backend for uvloop (``anyio_module(..., backend=UVLOOP_BACKEND)``).
UVLOOP_BACKEND = ("asyncio", {"use_uvloop": True})
#: The JSON schema of ``--asynccheck-json`` reports, shipped with the package.
REPORT_SCHEMA = Path(json_report.__file__).with_name("report-schema.json")


def pytest_asyncio_version() -> tuple[int, ...]:
    return tuple(int(part) for part in version("pytest-asyncio").split(".")[:2])


#: The lowest supported pytest-asyncio, which differs from later ones in the ways below.
PYTEST_ASYNCIO_0_23 = pytest_asyncio_version() < (0, 24)
#: pytest-asyncio 0.23 replaces every loop it closes with a fresh one that it never closes, and
#: 0.24 to 1.3 leave some (beside anyio's tests, wider-scoped ones), without the checks too.
PYTEST_ASYNCIO_LEAVES_LOOPS = pytest_asyncio_version() < (1, 4)
#: pytest-asyncio before 1.1 puts a sync wrapper of its own in place of each async fixture
#: function at collection (1.1 wraps at each setup instead).
PYTEST_ASYNCIO_COLLECTION_WRAPPERS = pytest_asyncio_version() < (1, 1)
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


def anyio_module(
    body: str, backend: object = "asyncio", imports: tuple[str, ...] = ("asyncio",)
) -> str:
    """A test module for anyio's pytest plugin: ``import`` lines for ``imports`` and pytest
    (sorted), the ``anyio_backend`` fixture returning ``backend``, then ``body`` (dedented),
    whose first line is line ``len(imports) + 7`` of the module."""
    header = "".join(f"import {name}\n" for name in sorted({*imports, "pytest"}))
    fixture = f"\n@pytest.fixture\ndef anyio_backend():\n    return {backend!r}\n\n"
    return header + fixture + textwrap.dedent(body).lstrip("\n")


def write_for_runner(pytester: pytest.Pytester, runner: tuple[str, ...], source: str) -> None:
    """Write ``source`` as ``test_mod.py`` for ``runner``: ``()`` the standalone runner,
    ``ASYNCIO`` pytest-asyncio in auto mode, ``ANYIO`` anyio on asyncio (each
    ``async def test_`` is marked, so each test's lines move down by one per marker above
    them)."""
    if runner == ASYNCIO:
        pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    if runner == ANYIO:
        source = source.replace("\nasync def test_", "\n@pytest.mark.anyio\nasync def test_")
        pytester.makeconftest(anyio_module("", imports=()))
    pytester.makepyfile(test_mod=source)


def failure_sections(result: pytest.RunResult) -> dict[str, str]:
    """Each failure's and error's section of an inner run (up to its captured sections), by its
    header, with addresses and ports masked: they differ from run to run."""
    found: dict[str, str] = {}
    name = ""
    for text in result.stdout.lines:
        header = re.fullmatch(r"_{3,} (.+?) _{3,}", text)
        if header:
            name = header.group(1)
            found[name] = ""
        elif text.startswith(("-----", "=====")):
            name = ""
        elif name:
            found[name] += re.sub(r"0x[0-9a-f]+|\b\d{4,5}\b", "N", text) + "\n"
    return found
