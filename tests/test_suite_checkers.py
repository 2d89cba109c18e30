"""Suites that check for blocking calls themselves (blockbuster, as anyio's and starlette's
suites use it) replace ``os.getcwd`` and ``os.path.abspath`` while a test runs and raise when
they are called on the loop thread: the plugin's own path arithmetic there (a task's creation
site, a finding's file) must not trip them, while the test's own calls still do."""

from __future__ import annotations

import pytest

from tests.helpers import ARGS, STANDALONE_AND_PYTEST_ASYNCIO, write_for_runner

#: A fixture that fails os.getcwd and os.path.abspath on a thread with a running loop, as
#: blockbuster does for calls made under the package it scans.
STRICT_PATHS = """
import asyncio
import os
import pytest


def strict(real, name):
    def checked(*args):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return real(*args)
        raise RuntimeError(f"blocking call to {name}")

    return checked


@pytest.fixture
def strict_paths(monkeypatch):
    monkeypatch.setattr(os.path, "abspath", strict(os.path.abspath, "os.path.abspath"))
    monkeypatch.setattr(os, "getcwd", strict(os.getcwd, "os.getcwd"))
"""


@pytest.mark.parametrize("runner", STANDALONE_AND_PYTEST_ASYNCIO)
def test_the_plugin_never_calls_a_path_function_a_suite_checks_on_the_loop_thread(
    pytester: pytest.Pytester, runner: tuple[str, ...]
) -> None:
    pytester.makeconftest(STRICT_PATHS)
    write_for_runner(
        pytester,
        runner,
        """
        import asyncio
        import os
        import pytest

        async def test_spawns_a_task(strict_paths):
            await asyncio.create_task(asyncio.sleep(0))

        async def test_leaks_a_task(strict_paths):
            asyncio.create_task(asyncio.sleep(10), name="sleeper")

        async def test_calls_abspath_itself(strict_paths):
            with pytest.raises(RuntimeError, match="blocking call to os.path.abspath"):
                os.path.abspath("relative")
            with pytest.raises(RuntimeError, match="blocking call to os.getcwd"):
                os.getcwd()
        """,
    )
    result = pytester.runpytest(*ARGS, *runner, "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_leaks_a_task (call):",
            "?leaked-task? task 'sleeper' running sleep() was still pending when the test returned",
            "  at test_mod.py:9 in test_leaks_a_task",
        ]
    )
    result.stdout.no_fnmatch_line("*blocking call to*")
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
