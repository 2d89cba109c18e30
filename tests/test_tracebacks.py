"""A failing test's traceback is the same with and without the checks, the plugin's frames
hidden: a plain failed assertion, and an exception group from a nursery or task group (which
pytest renders natively, sub-exception by sub-exception), in the test body and in a fixture's
setup, under pytest-trio, anyio (trio and asyncio backends) and the standalone runner."""

from __future__ import annotations

import re
import sys

import pytest

from tests.helpers import ANYIO, ARGS, ASYNCIO, ASYNCIO_INI

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="asyncio.TaskGroup and built-in exception groups"
)

TRIO = ("-p", "trio")

#: Each module fails four ways: a group from a task group in the test, a group from one in the
#: setup of a fixture of the module and of one in ``conftest.py`` (not cut away with the frames
#: above the test's module), and a plain assertion.
TRIO_MODULE = """
import pytest
import trio


async def boom():
    raise ValueError("boom")


@pytest.fixture
async def failing():
    async with trio.open_nursery() as nursery:
        nursery.start_soon(boom)
    yield


@pytest.mark.trio
async def test_group():
    async with trio.open_nursery() as nursery:
        nursery.start_soon(boom)


@pytest.mark.trio
async def test_fixture_group(failing):
    pass


async def test_conftest_fixture_group(shared):
    pass


@pytest.mark.trio
async def test_conftest_fixture_group(shared):
    pass


@pytest.mark.trio
async def test_assertion():
    assert 1 + 1 == 3
"""

ANYIO_MODULE = """
import anyio
import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


async def boom():
    raise ValueError("boom")


@pytest.fixture
async def failing(anyio_backend):
    async with anyio.create_task_group() as group:
        group.start_soon(boom)
    yield


@pytest.mark.anyio
async def test_group():
    async with anyio.create_task_group() as group:
        group.start_soon(boom)


@pytest.mark.anyio
async def test_fixture_group(failing):
    pass


async def test_conftest_fixture_group(shared):
    pass


@pytest.mark.anyio
async def test_conftest_fixture_group(shared):
    pass


@pytest.mark.anyio
async def test_assertion():
    assert 1 + 1 == 3
"""

ASYNCIO_MODULE = """
import asyncio

import pytest


async def boom():
    raise ValueError("boom")


@pytest.fixture
async def failing():
    async with asyncio.TaskGroup() as group:
        group.create_task(boom())
    yield


async def test_group():
    async with asyncio.TaskGroup() as group:
        group.create_task(boom())


async def test_fixture_group(failing):
    pass


async def test_conftest_fixture_group(shared):
    pass


async def test_assertion():
    assert 1 + 1 == 3
"""


def write_modules(pytester: pytest.Pytester, source: str) -> None:
    """The module, and as ``conftest.py`` the module's head (up to its first test) with its
    fixture ``failing`` renamed ``shared``."""
    pytester.makepyfile(test_mod=source)
    head = re.split(r"\n\n\n(?=@pytest\.mark\.\w+\nasync def test_|async def test_)", source)[0]
    pytester.makeconftest(head.replace("def failing(", "def shared("))


def failure_sections(result: pytest.RunResult) -> dict[str, str]:
    """Each failure's and error's section, by its header, addresses masked."""
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
            found[name] += re.sub(r"0x[0-9a-f]+", "ADDR", text) + "\n"
    return found


def assert_same_failures(
    checked: pytest.RunResult, plain: pytest.RunResult, count: int
) -> dict[str, str]:
    sections = failure_sections(checked)
    assert len(sections) == count
    assert sections == failure_sections(plain)
    assert "pytest_asynccheck" not in checked.stdout.str()
    return sections


@pytest.mark.parametrize("style", ["long", "short"])
@pytest.mark.parametrize(
    ("plugin", "source", "outcomes"),
    # pytest-trio sets its fixtures up in the call phase: a fixture's failure fails the test.
    [(TRIO, TRIO_MODULE, {"failed": 4}), (ANYIO, ANYIO_MODULE, {"failed": 4, "errors": 4})],
    ids=["pytest-trio", "anyio"],
)
def test_a_group_or_an_assertion_fails_with_the_same_traceback_with_and_without_checks(
    pytester: pytest.Pytester,
    plugin: tuple[str, ...],
    source: str,
    outcomes: dict[str, int],
    style: str,
) -> None:
    write_modules(pytester, source)
    plain = pytester.runpytest("-p", "asynccheck", *plugin, f"--tb={style}")
    checked = pytester.runpytest(*ARGS, *plugin, f"--tb={style}")
    plain.assert_outcomes(**outcomes)
    checked.assert_outcomes(**outcomes)
    count = sum(outcomes.values())
    sections = assert_same_failures(checked, plain, count)
    groups = [name for name, text in sections.items() if "ValueError: boom" in text]
    assert len(groups) == count * 3 // 4


@pytest.mark.parametrize("style", ["long", "short"])
def test_the_standalone_runner_fails_as_pytest_asyncio_does(
    pytester: pytest.Pytester, style: str
) -> None:
    # Without the checks no plugin runs these tests: pytest-asyncio, in auto mode, is the
    # reference for a plain failure. A group is shown from where pytest keeps frames on, which
    # is pytest's own runner for a fixture's on pytest before 9: from there each runner's
    # frames differ, but none of the plugin's is shown.
    write_modules(pytester, ASYNCIO_MODULE)
    standalone = pytester.runpytest(*ARGS, f"--tb={style}")
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    plain = pytester.runpytest("-p", "asynccheck", *ASYNCIO, f"--tb={style}")
    standalone.assert_outcomes(failed=2, errors=2)
    plain.assert_outcomes(failed=2, errors=2)
    assert "pytest_asynccheck" not in standalone.stdout.str()
    sections = failure_sections(standalone)
    assert sections["test_assertion"] == failure_sections(plain)["test_assertion"]
    raisers = {
        "test_group": "test_group",
        "ERROR at setup of test_fixture_group": "failing",
        "ERROR at setup of test_conftest_fixture_group": "shared",
    }
    for header, raiser in raisers.items():
        frames = re.findall(r"line \d+, in (\w+)", sections[header])
        assert frames[-3:] == [raiser, "__aexit__", "boom"], (header, frames)


@pytest.mark.parametrize("style", ["long", "short"])
def test_pytest_asyncio_fails_with_the_same_traceback_with_and_without_checks(
    pytester: pytest.Pytester, style: str
) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    write_modules(pytester, ASYNCIO_MODULE)
    plain = pytester.runpytest("-p", "asynccheck", *ASYNCIO, f"--tb={style}")
    checked = pytester.runpytest(*ARGS, *ASYNCIO, f"--tb={style}")
    checked.assert_outcomes(failed=2, errors=2)
    assert_same_failures(checked, plain, 4)
