"""One findings pipeline: a finding fails its test (error), warns (warn) or vanishes (off), is
listed in the ``asynccheck`` summary, survives pytest-xdist; a broken detector breaks nothing."""

from __future__ import annotations

import pytest

from tests.helpers import ARGS

#: A detector that reports one blocking finding in every test whose name contains "bad",
#: in the phase named by the test's "phase" marker (default: call).
REPORTING_CONFTEST = """
import pytest
from pytest_asynccheck import Detector, Finding


class Reporter(Detector):
    def phase_finished(self, test, phase):
        marker = test.item.get_closest_marker("phase")
        wanted = marker.args[0] if marker else "call"
        if "bad" in test.item.name and phase == wanted:
            test.add(
                Finding(
                    kind="blocking",
                    message="time.sleep(0.2) held the event loop for 0.200 s",
                    file="test_mod.py",
                    line=7,
                    function="fetch",
                    call="time.sleep",
                    fix="await asyncio.sleep(...)",
                    stack=("test_mod.py:12 in test_bad", "test_mod.py:7 in fetch"),
                    duration=0.2,
                )
            )


def pytest_asynccheck_detectors(config, settings):
    return [Reporter()]


def pytest_configure(config):
    config.addinivalue_line("markers", "phase(name): where the finding is reported")
"""

TESTS = """
    import pytest

    async def test_good():
        pass

    async def test_bad():
        pass
"""


@pytest.fixture
def reporting(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(REPORTING_CONFTEST)
    return pytester


def test_error_level_finding_fails_its_test_with_the_finding_text(
    reporting: pytest.Pytester,
) -> None:
    reporting.makepyfile(test_mod=TESTS)
    result = reporting.runpytest(*ARGS)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_bad _*",
            "asynccheck found 1 problem in test_mod.py::test_bad (call):",
            "[blocking] time.sleep(0.2) held the event loop for 0.200 s",
            "  at test_mod.py:7 in fetch",
            "  test_mod.py:12 in test_bad",
            "  test_mod.py:7 in fetch",
            "  fix: await asyncio.sleep(...)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*= asynccheck =*",
            "error blocking        test_mod.py:7 in fetch time.sleep  x1",
            "        test_mod.py::test_bad",
            "asynccheck: 1 error, 0 warnings in 1 of 2 checked tests",
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_warn_level_finding_becomes_a_filterable_warning(reporting: pytest.Pytester) -> None:
    # In-process runs inherit this suite's "error" filter; the inner run states its own.
    reporting.makeini("[pytest]\nfilterwarnings = default\n")
    reporting.makepyfile(test_mod=TESTS)
    result = reporting.runpytest(*ARGS, "--asynccheck-blocking=warn")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "test_mod.py::test_bad",
            "  test_mod.py:7: BlockingCallWarning: ?blocking? time.sleep(0.2) held the event loop*",
            "warn  blocking        test_mod.py:7 in fetch time.sleep  x1",
            "asynccheck: 0 errors, 1 warning in 1 of 2 checked tests",
        ]
    )
    escalated = reporting.runpytest(
        *ARGS, "--asynccheck-blocking=warn", "-W", "error::pytest_asynccheck.BlockingCallWarning"
    )
    escalated.assert_outcomes(passed=1, failed=1)
    escalated.stdout.fnmatch_lines(["*BlockingCallWarning: ?blocking? time.sleep(0.2)*"])


def test_off_level_finding_is_dropped(reporting: pytest.Pytester) -> None:
    reporting.makepyfile(test_mod=TESTS)
    result = reporting.runpytest(*ARGS, "--asynccheck-blocking=off")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["asynccheck: no findings in 2 checked tests"])


def test_allow_marker_accepts_a_kind_or_a_call(reporting: pytest.Pytester) -> None:
    reporting.makepyfile(
        test_mod="""
        import pytest

        @pytest.mark.asynccheck(allow=["blocking"])
        async def test_bad_kind_allowed():
            pass

        @pytest.mark.asynccheck(allow="time.sleep")
        async def test_bad_call_allowed():
            pass

        @pytest.mark.asynccheck(allow=["unawaited"])
        async def test_bad_other_kind_allowed():
            pass
        """
    )
    result = reporting.runpytest(*ARGS)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_mod.py::test_bad_other_kind_allowed*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("asynccheck('time.sleep')", "asynccheck takes only the keyword 'allow'*"),
        ("asynccheck(alow=['x'])", "asynccheck got unknown keyword alow; valid: allow"),
        ("asynccheck(allow=3)", "asynccheck(allow=3) must be a list of finding kinds*"),
        ("asynccheck(allow=[''])", "asynccheck(allow=?''?) must be a list of finding kinds*"),
    ],
)
def test_bad_allow_marker_errors_that_test_only(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        test_mod=f"""
        import pytest

        @pytest.mark.{marker}
        async def test_marked():
            pass

        async def test_other():
            pass
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"*test_mod.py::test_marked: @pytest.mark.{message}"])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_finding_in_setup_errors_the_test(reporting: pytest.Pytester) -> None:
    reporting.makepyfile(
        test_mod="""
        import pytest

        @pytest.mark.phase("setup")
        async def test_bad():
            pass
        """
    )
    result = reporting.runpytest(*ARGS)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["asynccheck found 1 problem in test_mod.py::test_bad (setup):"])


def test_finding_in_teardown_errors_the_test(reporting: pytest.Pytester) -> None:
    reporting.makepyfile(
        test_mod="""
        import pytest

        @pytest.mark.phase("teardown")
        def test_bad():
            pass
        """
    )
    result = reporting.runpytest(*ARGS)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_bad*",
            "asynccheck found 1 problem in test_mod.py::test_bad (teardown):",
        ]
    )


def test_finding_in_a_test_that_already_failed_is_shown_beside_its_failure(
    reporting: pytest.Pytester,
) -> None:
    reporting.makepyfile(
        test_mod="""
        async def test_bad():
            assert 1 == 2
        """
    )
    result = reporting.runpytest(*ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       assert 1 == 2",
            "*- Captured asynccheck call -*",
            "asynccheck found 1 problem in test_mod.py::test_bad (call):",
            "?blocking? time.sleep(0.2)*",
        ]
    )


def test_findings_reach_the_controller_under_xdist(reporting: pytest.Pytester) -> None:
    reporting.makepyfile(
        test_mod="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        async def test_bad(n):
            pass

        @pytest.mark.parametrize("n", range(6))
        async def test_good(n):
            pass
        """
    )
    result = reporting.runpytest(*ARGS, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=6, failed=6)
    result.stdout.fnmatch_lines(
        [
            "error blocking        test_mod.py:7 in fetch time.sleep  x6",
            "*... and 1 more test",
            "asynccheck: 6 errors, 0 warnings in 6 of 12 checked tests",
        ]
    )


RAISING_CONFTEST = """
import pathlib
from pytest_asynccheck import Detector

class Broken(Detector):
    name = "broken-probe"

    def task_entered(self, test, loop, where):
        raise RuntimeError("injected bug")

    def session_finished(self, session):
        pathlib.Path("cleaned-up").write_text("yes")


def pytest_asynccheck_detectors(config, settings):
    return [Broken()]
"""


def test_a_detector_that_raises_is_disabled_and_the_test_still_passes(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RAISING_CONFTEST)
    pytester.makepyfile(
        """
        async def test_one():
            pass

        async def test_two():
            pass
        """
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "note: detector broken-probe raised RuntimeError: injected bug in task_entered; "
            "it has been disabled",
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    assert (pytester.path / "cleaned-up").read_text() == "yes"


def test_late_findings_are_listed_under_their_test_and_fail_the_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import pytest_asynccheck
        from pytest_asynccheck import Detector, Finding

        class Late(Detector):
            def session_ending(self, session):
                session.report(
                    Finding(kind="unawaited", message="coroutine 'y' was never awaited",
                            file="test_late.py", line=5, function="test_second"),
                    nodeid="test_late.py::test_second",
                )

            def test_started(self, test):
                if test.item.name == "test_second":
                    pytest_asynccheck.active().report(
                        Finding(kind="unawaited", message="coroutine 'x' was never awaited",
                                file="test_late.py", line=2, function="test_first"),
                        nodeid="test_late.py::test_first",
                    )

        def pytest_asynccheck_detectors(config, settings):
            return [Late()]
        """
    )
    pytester.makepyfile(
        test_late="""
        async def test_first():
            pass

        async def test_second():
            pass
        """
    )
    result = pytester.runpytest(*ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "error unawaited       test_late.py:2 in test_first  x1",
            "        test_late.py::test_first",
            "error unawaited       test_late.py:5 in test_second  x1",
            "        test_late.py::test_second",
        ]
    )
