"""A failing test's traceback is the same with and without the checks, the plugin's frames
hidden: a plain failed assertion, and an exception group from a nursery or task group (which
pytest renders natively, sub-exception by sub-exception), in the test body and in a fixture's
setup, under pytest-trio, anyio (trio and asyncio backends), pytest-asyncio and the standalone
runner."""

from __future__ import annotations

import re
import sys

import pytest

from tests.helpers import ANYIO, ARGS, ASYNCIO, ASYNCIO_INI, failure_sections

#: asyncio's task group is new in Python 3.11 (trio and anyio raise the backport's groups before).
NEEDS_TASK_GROUP = pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup")

TRIO = ("-p", "trio")

#: Each module fails four ways: a group from a task group in the test, a group from one in the
#: setup of a fixture of the module and of one in ``conftest.py`` (not cut away with the frames
#: above the test's module), and a plain assertion. Filled in by ``module``.
MODULE = """
{imports}
import pytest
{backend}

async def boom():
    raise ValueError("boom")


@pytest.fixture
async def failing({backend_argument}):
    {open_group}
        {start_boom}
    yield


{mark}async def test_group():
    {open_group}
        {start_boom}


{mark}async def test_fixture_group(failing):
    pass


{mark}async def test_conftest_fixture_group(shared):
    pass


{mark}async def test_assertion():
    assert 1 + 1 == 3
"""

ANYIO_BACKEND = """

@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param

"""


#: Per library: how a test opens its task group, starts ``boom`` in it, and is marked; and
#: what the module adds (anyio's backend fixture).
LIBRARIES = {
    "trio": ("trio.open_nursery()", "group.start_soon(boom)", "@pytest.mark.trio\n", ""),
    "anyio": (
        "anyio.create_task_group()",
        "group.start_soon(boom)",
        "@pytest.mark.anyio\n",
        ANYIO_BACKEND,
    ),
    "asyncio": ("asyncio.TaskGroup()", "group.create_task(boom())", "", ""),
}


def module(library: str) -> str:
    """The test module for ``library``: ``trio`` (pytest-trio), ``anyio`` (on both backends) or
    ``asyncio`` (unmarked: the standalone runner, or pytest-asyncio in auto mode)."""
    group, start, mark, backend = LIBRARIES[library]
    return MODULE.format(
        imports=f"import {library}",
        backend=backend,
        backend_argument="anyio_backend" if backend else "",
        open_group=f"async with {group} as group:",
        start_boom=start,
        mark=mark,
    )


def write_modules(pytester: pytest.Pytester, source: str) -> None:
    """The module, and as ``conftest.py`` the module's head (up to its first test) with its
    fixture ``failing`` renamed ``shared``."""
    pytester.makepyfile(test_mod=source)
    head = re.split(r"\n\n\n(?=@pytest\.mark\.\w+\nasync def test_|async def test_)", source)[0]
    pytester.makeconftest(head.replace("def failing(", "def shared("))


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
    [(TRIO, module("trio"), {"failed": 4}), (ANYIO, module("anyio"), {"failed": 4, "errors": 4})],
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


@NEEDS_TASK_GROUP
@pytest.mark.parametrize("style", ["long", "short"])
def test_the_standalone_runner_fails_as_pytest_asyncio_does(
    pytester: pytest.Pytester, style: str
) -> None:
    # Without the checks no plugin runs these tests: pytest-asyncio, in auto mode, is the
    # reference for a plain failure. A group is shown from where pytest keeps frames on, which
    # is pytest's own runner for a fixture's on pytest before 9: from there each runner's
    # frames differ, but none of the plugin's is shown.
    write_modules(pytester, module("asyncio"))
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


@NEEDS_TASK_GROUP
@pytest.mark.parametrize("style", ["long", "short"])
def test_pytest_asyncio_fails_with_the_same_traceback_with_and_without_checks(
    pytester: pytest.Pytester, style: str
) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\n" + ASYNCIO_INI)
    write_modules(pytester, module("asyncio"))
    plain = pytester.runpytest("-p", "asynccheck", *ASYNCIO, f"--tb={style}")
    checked = pytester.runpytest(*ARGS, *ASYNCIO, f"--tb={style}")
    checked.assert_outcomes(failed=2, errors=2)
    assert_same_failures(checked, plain, 4)
