"""A library's task made to run until its loop closes (anyio's process-pool shutdown task,
started by the first ``to_process.run_sync`` on a loop) is not a test's leak; a task of the
user's own with the same name still is."""

from __future__ import annotations

import pytest

from tests.helpers import ANYIO, ARGS, anyio_module


def test_anyios_process_pool_task_is_not_a_leak_and_a_namesake_of_the_users_is(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod=anyio_module(
            """
            async def _shutdown_process_pool_on_exit():
                await asyncio.sleep(10)

            @pytest.mark.anyio
            async def test_to_process(anyio_backend):
                assert await anyio.to_process.run_sync(abs, -5) == 5

            @pytest.mark.anyio
            async def test_namesake(anyio_backend):
                asyncio.create_task(_shutdown_process_pool_on_exit())
            """,
            imports=("anyio", "anyio.to_process", "asyncio"),
        )
    )
    result = pytester.runpytest(*ARGS, *ANYIO, "-p", "no:randomly", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["PASSED test_mod.py::test_to_process"])
    result.stdout.fnmatch_lines(
        [
            "asynccheck found 1 problem in test_mod.py::test_namesake (call):",
            "?leaked-task? task * running _shutdown_process_pool_on_exit() was still pending "
            "when the test returned",
            "  at test_mod.py:19 in test_namesake",
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
