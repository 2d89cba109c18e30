"""Arbitrary marker arguments and option values never crash the plugin: each is a usage error,
a clean error of the one test, or accepted; never an INTERNALERROR or a traceback from inside
the plugin."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import ARGS

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.text(max_size=6), max_size=3),
)
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every CI run
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def literal(value: object) -> str:
    """Source text that evaluates to ``value`` (``repr`` of ``inf`` and ``nan`` does not)."""
    if isinstance(value, float):
        return f"float({str(value)!r})"
    if isinstance(value, list):
        return "[" + ", ".join(map(literal, value)) + "]"
    return repr(value)


def _call(args: list[object], kwargs: dict[str, object]) -> str:
    return ", ".join([*map(literal, args), *(f"{k}={literal(v)}" for k, v in kwargs.items())])


def _clean(result: pytest.RunResult) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text
    assert (
        "pytest_asynccheck/" not in text.split("short test summary")[0].split("= asynccheck =")[0]
    )


@FUZZ
@given(
    args=st.lists(VALUES, max_size=3),
    kwargs=st.dictionaries(st.sampled_from(["allow", "x", "clock"]), VALUES, max_size=2),
)
def test_fuzzed_max_wall_markers(
    pytester: pytest.Pytester, args: list[object], kwargs: dict[str, object]
) -> None:
    call = _call(args, kwargs)
    pytester.makepyfile(
        test_mod=f"""
        import pytest

        @pytest.mark.max_wall({call})
        def test_marked():
            pass

        def test_other():
            pass
        """
    )
    result = pytester.runpytest(*ARGS)
    outcomes = result.parseoutcomes()
    # A valid but tiny budget fails the test (over budget): a clean per-test failure too.
    total = sum(outcomes.get(k, 0) for k in ("passed", "failed", "errors"))
    assert total == 2 and outcomes.get("passed", 0) >= 1
    _clean(result)


@FUZZ
@given(
    kwargs=st.dictionaries(st.sampled_from(["allow", "x"]), VALUES, max_size=2),
    args=st.lists(VALUES, max_size=2),
)
def test_fuzzed_asynccheck_markers(
    pytester: pytest.Pytester, args: list[object], kwargs: dict[str, object]
) -> None:
    call = _call(args, kwargs)
    pytester.makepyfile(
        test_mod=f"""
        import pytest

        @pytest.mark.asynccheck({call})
        async def test_marked():
            pass
        """
    )
    result = pytester.runpytest(*ARGS)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("errors", 0) == 1
    _clean(result)


OPTIONS = st.sampled_from(
    [
        "--asynccheck-blocking",
        "--asynccheck-unawaited",
        "--asynccheck-mode",
        "--asynccheck-stall-threshold",
        "--asynccheck-wall-factor",
    ]
)


@FUZZ
@given(
    option=OPTIONS,
    value=st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=10),
)
def test_fuzzed_option_values(pytester: pytest.Pytester, option: str, value: str) -> None:
    pytester.makepyfile(test_mod="def test_it():\n    pass\n")
    result = pytester.runpytest(*ARGS, f"{option}={value}")
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.USAGE_ERROR)
    if result.ret == pytest.ExitCode.USAGE_ERROR:
        result.stderr.fnmatch_lines([f"ERROR: asynccheck: {option}=* is not valid; expected *"])
    _clean(result)


PATH_PARTS = st.sampled_from(["dir", "file", "new", "", " ", ".", "x.json", "a\x00b", "é", "*"])


@FUZZ
@given(
    option=st.sampled_from(["--asynccheck-report", "--asynccheck-baseline"]),
    update=st.booleans(),
    parts=st.lists(PATH_PARTS, max_size=3),
)
def test_fuzzed_path_options(
    pytester: pytest.Pytester, option: str, update: bool, parts: list[str]
) -> None:
    # Paths stay inside the test's directory: no part is absolute or goes up.
    value = "/".join(parts)
    (pytester.path / "dir").mkdir(exist_ok=True)
    (pytester.path / "file").write_text("not json")
    pytester.makepyfile(test_mod="async def test_it():\n    pass\n")
    extra = ["--asynccheck-baseline=b.json"] if option == "--asynccheck-report" else []
    (pytester.path / "b.json").write_text('{"version": 1, "entries": []}')
    if update:
        extra.append("--asynccheck-update-baseline")
    result = pytester.runpytest(*ARGS, f"{option}={value}", *extra)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.USAGE_ERROR)
    if result.ret == pytest.ExitCode.USAGE_ERROR:
        result.stderr.fnmatch_lines([f"ERROR: asynccheck: {option}=* (from command line) *"])
    else:
        result.assert_outcomes(passed=1)
    _clean(result)
    assert "could not write" not in result.stdout.str()  # the check at configure time held
