"""Every async test, whoever runs it, executes inside its check: a probe detector proves it ran in
the test's own task, on the test's own loop, and that nothing else about the test changed."""

from __future__ import annotations

import pytest

from tests.helpers import ANYIO, ARGS, ASYNCIO, ASYNCIO_INI, LOOP_SCOPE

PROBE_CONFTEST = """
import asyncio
import pathlib

import pytest

import pytest_asynccheck
from pytest_asynccheck import Detector

LOG = pathlib.Path(__file__).with_name("probe.log")


class Probe(Detector):
    def task_entered(self, test, loop, where):
        task = asyncio.current_task() if loop is not None else None
        test.data["probe"] = (loop, task)
        with LOG.open("a") as log:
            log.write(f"entered {test.nodeid} {where} {'trio' if loop is None else 'asyncio'}\\n")

    def task_exited(self, test, loop, where):
        entered_loop, entered_task = test.data["probe"]
        same = entered_loop is loop and (
            loop is None or asyncio.current_task() is entered_task
        )
        with LOG.open("a") as log:
            log.write(f"exited {test.nodeid} {where} same-task={same}\\n")


def pytest_asynccheck_detectors(config, settings):
    return [Probe()]


def probe():
    return pytest_asynccheck.active().current.data["probe"]


def assert_in_own_task():
    loop, task = probe()
    assert loop is asyncio.get_running_loop()
    assert task is asyncio.current_task()
"""


def probe_log(pytester: pytest.Pytester) -> list[str]:
    return (pytester.path / "probe.log").read_text().splitlines()


def make_probe(pytester: pytest.Pytester, ini: str = "") -> None:
    pytester.makeconftest(PROBE_CONFTEST)
    pytester.makeini("[pytest]\n" + ini)


def test_standalone_runner_runs_the_test_inside_its_check(pytester: pytest.Pytester) -> None:
    make_probe(pytester)
    pytester.makepyfile(
        """
        import asyncio
        from conftest import assert_in_own_task, probe

        async def test_standalone():
            assert_in_own_task()
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1)
    assert probe_log(pytester) == [
        "entered test_standalone_runner_runs_the_test_inside_its_check.py::test_standalone "
        "test asyncio",
        "exited test_standalone_runner_runs_the_test_inside_its_check.py::test_standalone "
        "test same-task=True",
    ]


PYTEST_ASYNCIO_TESTS = """
    import asyncio
    import pytest
    import pytest_asyncio
    from conftest import assert_in_own_task, probe

    LOOPS = []

    @pytest_asyncio.fixture
    async def afix():
        yield asyncio.get_running_loop()

    @pytest.mark.asyncio
    async def test_function_loop(afix):
        assert afix is asyncio.get_running_loop()
        assert_in_own_task()

    class TestInClass:
        @pytest.mark.asyncio
        async def test_method(self):
            assert_in_own_task()

    @pytest.mark.asyncio({LOOP_SCOPE}="module")
    async def test_module_loop_first():
        LOOPS.append(asyncio.get_running_loop())
        assert_in_own_task()

    @pytest.mark.asyncio({LOOP_SCOPE}="module")
    async def test_module_loop_second():
        LOOPS.append(asyncio.get_running_loop())
        assert_in_own_task()
        assert LOOPS[0] is LOOPS[1]
"""


def test_pytest_asyncio_strict_tests_run_inside_their_check(pytester: pytest.Pytester) -> None:
    make_probe(pytester, ASYNCIO_INI)
    pytester.makepyfile(PYTEST_ASYNCIO_TESTS.replace("{LOOP_SCOPE}", LOOP_SCOPE))
    result = pytester.runpytest(*ARGS, *ASYNCIO, "-v")
    result.assert_outcomes(passed=4)
    log = probe_log(pytester)
    # Four tests and the setup and teardown of the async fixture, each entered and exited.
    assert len(log) == 12
    assert (
        "entered test_pytest_asyncio_strict_tests_run_inside_their_check.py::test_function_loop "
        "fixture afix asyncio" in log
    )
    assert all(line.endswith("same-task=True") for line in log if line.startswith("exited"))
    assert (
        "entered test_pytest_asyncio_strict_tests_run_inside_their_check.py::TestInClass::"
        "test_method test asyncio" in log
    )


def test_pytest_asyncio_auto_mode_tests_run_inside_their_check(pytester: pytest.Pytester) -> None:
    make_probe(pytester, ASYNCIO_INI + "asyncio_mode = auto\n")
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        from conftest import assert_in_own_task, probe

        @pytest.fixture
        async def afix():
            yield asyncio.get_running_loop()

        async def test_auto(afix):
            assert afix is asyncio.get_running_loop()
            assert_in_own_task()
        """
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO)
    result.assert_outcomes(passed=1)
    steps = [line.split()[0] + " " + line.split()[2] for line in probe_log(pytester)]
    fixture_step = ["entered fixture", "exited fixture"]
    # The fixture's setup, the test, the fixture's teardown.
    assert steps == [*fixture_step, "entered test", "exited test", *fixture_step]


def test_anyio_tests_run_inside_their_check_on_both_backends(pytester: pytest.Pytester) -> None:
    make_probe(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import sniffio
        from conftest import assert_in_own_task, probe

        pytestmark = pytest.mark.anyio

        @pytest.fixture(params=["asyncio", "trio"])
        def anyio_backend(request):
            return request.param

        async def test_anyio(anyio_backend):
            if sniffio.current_async_library() == "asyncio":
                assert_in_own_task()
            else:
                assert probe() == (None, None)
        """
    )
    result = pytester.runpytest(*ARGS, *ANYIO, "-p", "no:asyncio")
    result.assert_outcomes(passed=2)
    log = probe_log(pytester)
    assert (
        "entered test_anyio_tests_run_inside_their_check_on_both_backends.py::"
        "test_anyio[asyncio] test asyncio" in log
    )
    assert (
        "entered test_anyio_tests_run_inside_their_check_on_both_backends.py::"
        "test_anyio[trio] test trio" in log
    )


def test_hypothesis_async_tests_are_checked_per_example(pytester: pytest.Pytester) -> None:
    make_probe(pytester, ASYNCIO_INI)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        from hypothesis import given, settings, strategies as st
        from conftest import assert_in_own_task, probe

        @pytest.mark.asyncio
        @settings(max_examples=3, database=None)
        @given(st.integers())
        async def test_property(n):
            assert_in_own_task()
        """
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO)
    result.assert_outcomes(passed=1)
    log = probe_log(pytester)
    assert (
        log.count(
            "entered test_hypothesis_async_tests_are_checked_per_example.py::test_property "
            "test asyncio"
        )
        >= 1
    )
    assert all(line.endswith("same-task=True") for line in log if line.startswith("exited"))


def test_claimed_tests_run_once_on_their_own_runner(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n" + ASYNCIO_INI)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import pytest_asyncio

        RUNS = []

        @pytest_asyncio.fixture
        async def fixture_loop():
            return asyncio.get_running_loop()

        @pytest.mark.asyncio
        async def test_pytest_asyncio(fixture_loop):
            assert fixture_loop is asyncio.get_running_loop()
            RUNS.append("asyncio")

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.anyio
        async def test_anyio(anyio_backend):
            RUNS.append("anyio")

        async def test_unclaimed():
            RUNS.append("standalone")

        def test_each_ran_once():
            assert sorted(RUNS) == ["anyio", "asyncio", "standalone"]
        """
    )
    result = pytester.runpytest(*ARGS, *ASYNCIO, *ANYIO, "-p", "no:randomly")
    result.assert_outcomes(passed=4)


def test_outcome_and_ids_are_unchanged_by_the_checks(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n" + ASYNCIO_INI)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.parametrize("n", [1, 2])
        async def test_param(n):
            assert n == 1

        @pytest.mark.asyncio
        @pytest.mark.xfail(strict=True)
        async def test_xfail():
            raise ValueError

        @pytest.mark.asyncio
        async def test_skip():
            pytest.skip("because")
        """
    )
    # In a subprocess: the failing test's traceback keeps pytest-asyncio 0.23's loop alive,
    # and its unclosed sockets would be collected during a later test of this suite.
    without = pytester.runpytest_subprocess(*ASYNCIO, "-p", "asynccheck", "-rA")
    with_checks = pytester.runpytest_subprocess(*ASYNCIO, *ARGS, "-rA")
    for result in (without, with_checks):
        result.assert_outcomes(passed=1, failed=1, xfailed=1, skipped=1)
        result.stdout.fnmatch_lines(
            [
                "PASSED test_outcome_and_ids_are_unchanged_by_the_checks.py::test_param?1?",
                "FAILED test_outcome_and_ids_are_unchanged_by_the_checks.py::test_param?2?*",
            ],
            consecutive=False,
        )


def test_pytest_trio_tests_run_inside_their_check(pytester: pytest.Pytester) -> None:
    make_probe(pytester)
    pytester.makepyfile(
        """
        import pytest
        import trio
        from conftest import probe

        @pytest.mark.trio
        async def test_trio():
            await trio.sleep(0)
            assert probe() == (None, None)
        """
    )
    result = pytester.runpytest(*ARGS, "-p", "trio")
    result.assert_outcomes(passed=1)
    assert probe_log(pytester) == [
        "entered test_pytest_trio_tests_run_inside_their_check.py::test_trio test trio",
        "exited test_pytest_trio_tests_run_inside_their_check.py::test_trio test same-task=True",
    ]


UNITTEST_CASES = """
import asyncio
import unittest

import pytest


class Cases(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.server = asyncio.create_task(asyncio.sleep(60))

    async def asyncTearDown(self):
        stopping = [self.server, *getattr(self, "workers", ())]
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)

    async def test_awaits_its_task(self):
        await asyncio.create_task(asyncio.sleep(0))

    async def test_starts_what_its_teardown_stops(self):
        self.workers = [asyncio.create_task(asyncio.sleep(60))]
        await asyncio.sleep(0)

    async def test_leaks_a_task(self):
        asyncio.create_task(asyncio.sleep(60))  # <- leak
        await asyncio.sleep(0)

    @pytest.mark.max_wall(0.2)
    async def test_hangs(self):
        await asyncio.sleep(2)  # <- hang: cancelled at 0.4 s with the checks

    async def test_fails(self):
        self.assertEqual(1, 2)

    @unittest.expectedFailure
    async def test_expected_failure(self):
        self.assertEqual(1, 2)

    @unittest.skip("because")
    async def test_skipped(self):
        pass

    async def test_subtests(self):
        for n in range(2):
            with self.subTest(n=n):
                await asyncio.sleep(0)
"""


def test_unittest_isolated_asyncio_tests_run_inside_their_check(
    pytester: pytest.Pytester,
) -> None:
    # unittest runs getattr(case, methodName), never item.obj: the check's wrapper is put on
    # the test case instance, in front of the method, and taken off after the call.
    make_probe(pytester)
    pytester.makepyfile(
        test_cases="""
        import asyncio
        import unittest
        from conftest import assert_in_own_task

        class Cases(unittest.IsolatedAsyncioTestCase):
            async def test_method(self):
                assert_in_own_task()
        """
    )
    pytester.makeconftest(
        PROBE_CONFTEST
        + """

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    case = item.obj.__self__
    with LOG.open("a") as log:
        log.write(f"shadowed after the call: {item.name in vars(case)}\\n")
"""
    )
    result = pytester.runpytest(*ARGS, "-p", "no:asyncio")
    result.assert_outcomes(passed=1)
    assert probe_log(pytester) == [
        "entered test_cases.py::Cases::test_method test asyncio",
        "exited test_cases.py::Cases::test_method test same-task=True",
        "shadowed after the call: False",
    ]


def test_unittest_isolated_asyncio_tests_get_every_check_and_keep_their_outcomes(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_cases=UNITTEST_CASES)
    lines = UNITTEST_CASES.lstrip("\n").splitlines()  # as pytester writes the file
    leak, hang = (next(n for n, t in enumerate(lines, 1) if m in t) for m in ("# <- l", "# <- h"))
    without = pytester.runpytest_subprocess("-p", "no:asyncio", "-p", "asynccheck", "-rA")
    without.assert_outcomes(passed=5, failed=1, xfailed=1, skipped=1)
    checked = pytester.runpytest_subprocess("-p", "no:asyncio", *ARGS, "-rA")
    checked.assert_outcomes(passed=3, failed=3, xfailed=1, skipped=1)
    checked.stdout.fnmatch_lines(
        [
            "*[[]max-wall[]] hung: still running after * (max_wall budget of 200 ms*",
            f"*test_cases.py:{hang} in test_hangs*",
            "*[[]leaked-task[]] task * running sleep() was still pending when the test and its "
            "asyncTearDown returned",
            f"*at test_cases.py:{leak} in test_leaks_a_task",
        ],
        consecutive=False,
    )
    for result in (without, checked):
        result.stdout.fnmatch_lines(
            [
                "PASSED test_cases.py::Cases::test_awaits_its_task",
                "PASSED test_cases.py::Cases::test_starts_what_its_teardown_stops",
                "PASSED test_cases.py::Cases::test_subtests",
                "FAILED test_cases.py::Cases::test_fails - AssertionError: 1 != 2",
            ],
            consecutive=False,
        )
