"""The switch: options, ini twins, the header line, validation, and being inert when off."""

from __future__ import annotations

import pytest

from pytest_asynccheck._findings import Kind
from tests.helpers import ARGS

ASYNC_TEST = """
    async def test_async():
        pass

    def test_sync():
        pass
"""


def test_header_line_states_the_effective_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest(*ARGS, "--asynccheck-blocking=warn")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "asynccheck: mode=error, "
            + ", ".join(f"{kind}={'warn' if kind is Kind.BLOCKING else 'error'}" for kind in Kind)
            + ", stall-threshold=0.1s, wall-factor=1",
            "*= asynccheck =*",
            "asynccheck: no findings in 1 checked test",  # the async test only
        ]
    )


def test_ini_switches_the_checks_on(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        asynccheck = true
        asynccheck_unawaited = warn
        asynccheck_stall_threshold = 0.25
        asynccheck_wall_factor = 3
        """
    )
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest("-p", "asynccheck")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["asynccheck: mode=error, unawaited=warn, *, stall-threshold=0.25s, wall-factor=3"]
    )


def test_command_line_beats_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasynccheck_blocking = off\n")
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest(*ARGS, "--asynccheck-blocking=ERROR")
    result.stdout.fnmatch_lines(["asynccheck: *blocking=error*"])


def test_without_the_switch_there_is_no_header_and_no_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_sync():\n    pass\n")
    result = pytester.runpytest("-p", "asynccheck")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("asynccheck:*")
    result.stdout.no_fnmatch_line("*= asynccheck =*")


def test_without_the_switch_async_tests_are_left_to_pytest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pathlib

        async def test_async():
            pathlib.Path("ran").write_text("ran")
        """
    )
    result = pytester.runpytest("-p", "asynccheck")
    # pytest >= 8.4 fails such a test, older releases skip it; either way it never ran.
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("skipped", 0) == 1
    assert not (pytester.path / "ran").exists()


@pytest.mark.parametrize(
    ("kind", "value"),
    # The severities the run gives (a baseline's, a rerun attempt's) are no option values.
    [*((k.value, "wran") for k in Kind), ("blocking", "accepted"), ("max-wall", "rerun")],
)
def test_bad_severity_on_the_command_line_is_a_usage_error(
    pytester: pytest.Pytester, kind: str, value: str
) -> None:
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest(*ARGS, f"--asynccheck-{kind}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: asynccheck: --asynccheck-{kind}='{value}' (from command line) is not valid; "
            "expected one of: error, warn, off"
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stderr.no_fnmatch_line("*Traceback*")


def test_bad_severity_in_ini_names_the_key_and_the_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasynccheck_leaked_task = loud\n")
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: asynccheck_leaked_task='loud' (from ini file tox.ini) is not "
            "valid; expected one of: error, warn, off"
        ]
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("asynccheck_leaked_task=loud", "one of: error, warn, off"),
        ("asynccheck_hang_factor=-1", "a positive number, such as 1.5 or 3"),
        ("asynccheck_coroutine_origin=maybe", "true or false"),
        ("asynccheck_blocking_allow=no.such.call", "a catalogued call*"),
    ],
)
def test_a_bad_value_given_with_dash_o_is_said_to_come_from_there_not_the_file(
    pytester: pytest.Pytester, override: str, expected: str
) -> None:
    # The ini file holds a good value: -o overrides it, and the message names where the bad
    # one was written.
    key, _, value = override.partition("=")
    pytester.makeini("[pytest]\nasynccheck_leaked_task = warn\n")
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest(*ARGS, "-o", override)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: asynccheck: {key}='{value}' (from -o on the command line) is not valid; "
         f"expected {expected}"]
    )  # fmt: skip
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


@pytest.mark.parametrize("key", ["asynccheck_coroutine_origin", "asynccheck_wall_include_setup"])
def test_bad_switch_in_ini_names_the_key_and_the_file(pytester: pytest.Pytester, key: str) -> None:
    pytester.makeini(f"[pytest]\n{key} = maybe\n")
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: asynccheck: {key}='maybe' (from ini file tox.ini) is not valid; "
            "expected true or false"
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


EXPECTED = {
    "--asynccheck-stall-threshold": "a positive duration in seconds, such as 0.1, 0.1s or 100ms",
    "--asynccheck-wall-factor": "a positive number, such as 1.5 or 3",
}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--asynccheck-stall-threshold", "abc"),
        ("--asynccheck-stall-threshold", "0"),
        ("--asynccheck-stall-threshold", "-1"),
        ("--asynccheck-stall-threshold", "nan"),
        ("--asynccheck-wall-factor", "inf"),
        ("--asynccheck-wall-factor", ""),
    ],
)
def test_bad_numbers_are_usage_errors(pytester: pytest.Pytester, option: str, value: str) -> None:
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest(*ARGS, f"{option}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: asynccheck: {option}={value!r} (from command line) is not valid; "
            f"expected {EXPECTED[option]}"
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_bad_values_are_rejected_even_when_the_checks_are_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest("-p", "asynccheck", "--asynccheck-unawaited=maybe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_units_on_numbers_are_accepted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest(*ARGS, "--asynccheck-stall-threshold=0.05s")
    result.stdout.fnmatch_lines(["asynccheck: *stall-threshold=0.05s*"])


def test_disabling_the_plugin_by_name_removes_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    pytester.makepyfile(
        """
        import pytest

        def test_plugin_is_gone(request):
            assert not request.config.pluginmanager.has_plugin("asynccheck")
        """
    )
    result = pytester.runpytest("-p", "no:asynccheck", "-p", "no:asyncio", "-p", "no:anyio")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("asynccheck:*")


def test_the_plugin_is_found_by_its_entry_point_name(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    pytester.makepyfile(
        """
        def test_plugin_is_there(request):
            assert request.config.pluginmanager.has_plugin("asynccheck")
        """
    )
    result = pytester.runpytest("-p", "no:asyncio", "-p", "no:anyio", "--asynccheck")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["asynccheck: mode=error, unawaited=error*"])


def test_markers_are_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asynccheck(allow=["blocking"])
        @pytest.mark.max_wall(2.1)
        def test_marked():
            pass
        """
    )
    result = pytester.runpytest("-p", "asynccheck", "--strict-markers")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("-p", "asynccheck", "--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.asynccheck(allow=*", "@pytest.mark.max_wall(seconds)*"]
    )
