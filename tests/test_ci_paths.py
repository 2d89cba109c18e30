"""Paths and values CI passes in: a path that cannot be used is a usage error before any test
runs, naming the option, the value, where it came from and what is wrong; a write that fails
during the run is one warning line and changes no outcome; every message says exactly what is
wrong (durations with units, factors, switches, allow entries, plurals)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_asynccheck._findings import Kind
from tests.helpers import ARGS

KIND_NAMES = ", ".join(kind.value for kind in Kind)

PASSING = "import asyncio\n\nasync def test_it():\n    await asyncio.sleep(0)\n"


def usage_error(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_mod=PASSING)
    result = pytester.runpytest(*ARGS, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    return result


# -- path options -------------------------------------------------------------------------


def test_a_report_path_that_is_a_directory_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "reports").mkdir()
    result = usage_error(pytester, "--asynccheck-report=reports")
    result.stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: --asynccheck-report='reports' (from command line) cannot be "
            "used: it is a directory"
        ]
    )


def test_a_report_path_under_a_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "taken").write_text("")
    result = usage_error(pytester, "--asynccheck-report=taken/sub/report.json")
    result.stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: --asynccheck-report='taken/sub/report.json' (from command line) "
            "cannot be used: 'taken' is not a directory"
        ]
    )


def test_a_report_path_from_the_ini_file_is_named_by_its_ini_key(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "reports").mkdir()
    pytester.makeini("[pytest]\nasynccheck_report = reports\n")
    result = usage_error(pytester)
    result.stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: asynccheck_report='reports' (from ini file tox.ini) cannot be "
            "used: it is a directory"
        ]
    )


def test_a_report_in_a_directory_still_to_be_made_is_accepted(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mod=PASSING)
    result = pytester.runpytest(*ARGS, "--asynccheck-report=new/deeper/r.json")
    result.assert_outcomes(passed=1)
    assert json.loads((pytester.path / "new" / "deeper" / "r.json").read_text())["complete"]


def test_a_missing_baseline_is_a_usage_error_that_says_how_to_make_one(
    pytester: pytest.Pytester,
) -> None:
    result = usage_error(pytester, "--asynccheck-baseline=missing.json")
    result.stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: --asynccheck-baseline='missing.json' (from command line) cannot "
            "be used: the file does not exist; create it with --asynccheck-update-baseline"
        ]
    )


def test_a_baseline_directory_is_a_usage_error_for_reading_and_for_writing(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "base").mkdir()
    expected = (
        "ERROR: asynccheck: --asynccheck-baseline='base' (from command line) cannot be used: "
        "it is a directory"
    )
    usage_error(pytester, "--asynccheck-baseline=base").stderr.fnmatch_lines([expected])
    result = usage_error(pytester, "--asynccheck-baseline=base", "--asynccheck-update-baseline")
    result.stderr.fnmatch_lines([expected])


def test_an_unreadable_baseline_and_an_unwritable_directory_are_usage_errors(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Permission bits do not stop root: the access check itself is what is asked.
    (pytester.path / "b.json").write_text('{"version": 1, "entries": []}')
    (pytester.path / "locked").mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode: Path(path).name not in ("b.json", "locked") and real_access(path, mode),
    )
    usage_error(pytester, "--asynccheck-baseline=b.json").stderr.fnmatch_lines(
        ["ERROR: *--asynccheck-baseline='b.json' (from command line) cannot be used: "
         "the file is not readable"]
    )  # fmt: skip
    usage_error(
        pytester, "--asynccheck-baseline=b.json", "--asynccheck-update-baseline"
    ).stderr.fnmatch_lines(["ERROR: *--asynccheck-baseline='b.json' * the file is not writable"])
    usage_error(pytester, "--asynccheck-report=locked/r.json").stderr.fnmatch_lines(
        ["ERROR: *--asynccheck-report='locked/r.json' * the directory 'locked' is not writable"]
    )


def test_empty_and_nul_paths_are_usage_errors(pytester: pytest.Pytester) -> None:
    usage_error(pytester, "--asynccheck-report=").stderr.fnmatch_lines(
        ["ERROR: *--asynccheck-report='' (from command line) cannot be used: it is empty"]
    )
    usage_error(pytester, "--asynccheck-baseline= ").stderr.fnmatch_lines(
        ["ERROR: *--asynccheck-baseline=' ' (from command line) cannot be used: it is empty"]
    )
    usage_error(pytester, "--asynccheck-report=a\x00b").stderr.fnmatch_lines(
        [
            "ERROR: *--asynccheck-report='a\\x00b' (from command line) cannot be used: "
            "it contains a NUL byte"
        ]
    )


def test_paths_are_not_checked_when_the_checks_are_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod="def test_it():\n    pass\n")
    result = pytester.runpytest("-p", "asynccheck", "--asynccheck-baseline=missing.json")
    result.assert_outcomes(passed=1)


# -- failed writes during the run ----------------------------------------------------------

REPLACES_ITS_DIRECTORY = """
import asyncio
import shutil
from pathlib import Path


async def test_unawaited():
    asyncio.sleep(1)


def test_takes_the_directory_away():
    shutil.rmtree("out")
    Path("out").write_text("now a file")
"""


@pytest.mark.parametrize("mode", ["error", "warn"])
def test_a_report_that_cannot_be_written_at_the_end_is_one_warning_line(
    pytester: pytest.Pytester, mode: str
) -> None:
    (pytester.path / "out").mkdir()
    pytester.makeini("[pytest]\nfilterwarnings = default\n")
    pytester.makepyfile(test_mod=REPLACES_ITS_DIRECTORY)
    result = pytester.runpytest(
        *ARGS, "-p", "no:randomly", f"--asynccheck-mode={mode}", "--asynccheck-report=out/r.json"
    )
    if mode == "error":
        result.assert_outcomes(passed=1, failed=1)
    else:
        result.assert_outcomes(passed=2, warnings=1)
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text
    warnings = [line for line in result.outlines if "could not write" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("asynccheck: warning: could not write the report to out/r.json: ")
    assert "report written to" not in text


def test_a_baseline_that_cannot_be_written_is_one_warning_line(pytester: pytest.Pytester) -> None:
    (pytester.path / "out").mkdir()
    pytester.makepyfile(test_mod=REPLACES_ITS_DIRECTORY)
    result = pytester.runpytest(
        *ARGS, "--asynccheck-baseline=out/b.json", "--asynccheck-update-baseline"
    )
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["asynccheck: warning: could not write the baseline to out/b.json: *"]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_failed_rewrite_during_the_run_is_retried_at_the_end(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mod="""
import asyncio
import shutil
from pathlib import Path


def test_a_takes_the_directory_away():
    shutil.rmtree("out")
    Path("out").write_text("a file for now")


async def test_b_unawaited():
    asyncio.sleep(1)


def test_c_gives_the_directory_back():
    Path("out").unlink()
    Path("out").mkdir()
"""
    )
    (pytester.path / "out").mkdir()
    result = pytester.runpytest(*ARGS, "-p", "no:randomly", "--asynccheck-report=out/r.json")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "asynccheck: report written to out/r.json",
            "asynccheck: warning: could not write the report to out/r.json: *",
        ]
    )
    data = json.loads((pytester.path / "out" / "r.json").read_text())
    assert data["complete"] is True and len(data["findings"]) == 1


# -- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"), [("500ms", "0.5s"), ("0.25s", "0.25s"), ("0.3", "0.3s"), (" 2 s", "2s")]
)
def test_the_stall_threshold_takes_units_on_the_command_line_and_in_the_ini(
    pytester: pytest.Pytester, value: str, shown: str
) -> None:
    pytester.makepyfile(test_mod=PASSING)
    result = pytester.runpytest(*ARGS, f"--asynccheck-stall-threshold={value}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"asynccheck: *stall-threshold={shown}, *"])
    pytester.makeini(f"[pytest]\nasynccheck_stall_threshold = {value}\n")
    result = pytester.runpytest(*ARGS)
    result.stdout.fnmatch_lines([f"asynccheck: *stall-threshold={shown}, *"])


def test_a_bad_duration_names_the_option_or_the_ini_key(pytester: pytest.Pytester) -> None:
    usage_error(pytester, "--asynccheck-stall-threshold=10 minutes").stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: --asynccheck-stall-threshold='10 minutes' (from command line) "
            "is not valid; expected a positive duration in seconds, such as 0.1, 0.1s or 100ms"
        ]
    )
    pytester.makeini("[pytest]\nasynccheck_stall_threshold = 0ms\n")
    usage_error(pytester).stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: asynccheck_stall_threshold='0ms' (from ini file tox.ini) is not "
            "valid; expected a positive duration in seconds, such as 0.1, 0.1s or 100ms"
        ]
    )


def test_the_wall_factor_is_a_factor_not_seconds(pytester: pytest.Pytester) -> None:
    usage_error(pytester, "--asynccheck-wall-factor=0").stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: --asynccheck-wall-factor='0' (from command line) is not valid; "
            "expected a positive number, such as 1.5 or 3"
        ]
    )
    usage_error(pytester, "--asynccheck-wall-factor=2s").stderr.fnmatch_lines(
        ["ERROR: asynccheck: --asynccheck-wall-factor='2s' * expected a positive number, *"]
    )
    pytester.makepyfile(test_mod=PASSING)
    result = pytester.runpytest(*ARGS, "--asynccheck-wall-factor=2.5")
    result.stdout.fnmatch_lines(["asynccheck: *, wall-factor=2.5"])


def test_a_bad_switch_in_the_ini_names_its_key(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasynccheck = maybe\n")
    pytester.makepyfile(test_mod=PASSING)
    result = pytester.runpytest("-p", "asynccheck")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: asynccheck='maybe' (from ini file tox.ini) is not valid; "
            "expected true or false"
        ]
    )


def test_an_ini_allow_entry_naming_nothing_is_a_usage_error_with_the_closest_names(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasynccheck_blocking_allow =\n    module:vendored\n    time.slep\n")
    usage_error(pytester).stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: asynccheck_blocking_allow='time.slep' (from ini file tox.ini) is "
            "not valid; expected a catalogued call such as time.sleep, a function on the way "
            f"to one (module.qualname), a kind ({KIND_NAMES}), stall, module:<prefix>, "
            "path:<glob> or "
            "<call>@<path suffix>:<function>; did you mean 'time.sleep'?"
        ]
    )
    pytester.makeini("[pytest]\nasynccheck_blocking_allow = nothing-like-it\n")
    result = usage_error(pytester)
    result.stderr.fnmatch_lines(
        ["*asynccheck_blocking_allow='nothing-like-it' *<call>@<path suffix>:<function>"]
    )
    pytester.makeini("[pytest]\nasynccheck_blocking_allow = mimetypes.guess_typ\n")
    usage_error(pytester).stderr.fnmatch_lines(["*'mimetypes.guess_typ' (from ini file*"])


def test_valid_ini_allow_entries_are_accepted(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasynccheck_blocking_allow =\n    time.sleep\n    builtins.open\n    stall\n"
        "    blocking\n    module:vendored\n    mimetypes.guess_type\n    path:tests/*\n"
        "    open@pydantic/networks.py:import_email_validator\n"
    )
    pytester.makepyfile(test_mod=PASSING)
    pytester.runpytest(*ARGS).assert_outcomes(passed=1)


def test_a_marker_allow_entry_naming_nothing_errors_its_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
import time
import pytest

@pytest.mark.asynccheck(allow=["time.slep"])
async def test_typo():
    time.sleep(0.002)

@pytest.mark.asynccheck(allow=["time.sleep", "leaked-task", "stall", "open"])
async def test_valid():
    time.sleep(0.002)
"""
    )
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1, errors=1)
    assert (
        "test_mod.py::test_typo: @pytest.mark.asynccheck(allow=['time.slep']) names no "
        "check; expected a catalogued call such as time.sleep, a function on the way to one "
        f"(module.qualname), a kind ({KIND_NAMES}), stall, module:<prefix>, path:<glob> or "
        "<call>@<path suffix>:<function>; "
        "did you mean 'time.sleep'?"
    ) in result.outlines
    assert "During handling" not in result.stdout.str()


def test_counts_agree_with_their_nouns(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod="import asyncio\n\nasync def test_it():\n    asyncio.sleep(1)\n")
    result = pytester.runpytest(
        *ARGS, "--asynccheck-baseline=b.json", "--asynccheck-update-baseline"
    )
    result.stdout.fnmatch_lines(
        [
            "asynccheck: 0 errors, 0 warnings in 1 of 1 checked test",
            "asynccheck: baseline of 1 entry written to b.json",
        ]
    )
    result = pytester.runpytest(*ARGS, "-k", "nothing")
    result.stdout.fnmatch_lines(["asynccheck: no findings in 0 checked tests"])
    result = pytester.runpytest(*ARGS)
    result.stdout.fnmatch_lines(["asynccheck: 1 error, 0 warnings in 1 of 1 checked test"])


def test_a_baseline_file_that_is_no_baseline_is_named_by_its_ini_key(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "b.json").write_text('{"version": 1}')
    pytester.makeini("[pytest]\nasynccheck_baseline = b.json\n")
    usage_error(pytester).stderr.fnmatch_lines(
        [
            "ERROR: asynccheck: asynccheck_baseline='b.json' (from ini file tox.ini) is not a "
            "baseline file written by --asynccheck-update-baseline (KeyError: 'entries')"
        ]
    )


@pytest.mark.parametrize("option", ["--asynccheck-report", "--asynccheck-baseline"])
def test_a_name_too_long_is_a_usage_error(pytester: pytest.Pytester, option: str) -> None:
    name = "n" * 300
    usage_error(pytester, f"{option}={name}").stderr.fnmatch_lines(
        [f"ERROR: asynccheck: {option}='{name}' (from command line) cannot be used: "
         "it is not a usable path (*File name too long*)"]
    )  # fmt: skip
