"""The table of options (``_options.OPTIONS``) and everything made from it: ``Settings``, the
options and ini keys pytest knows (``--help``), the header line, the JSON report's ``settings``,
its schema and the README's table of options.

Every test goes through the table, so a new row is covered without a new test; a row of a new
kind of value needs its sample value in ``SAMPLES``."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_asynccheck import _option_values as values
from pytest_asynccheck._findings import Kind
from pytest_asynccheck._options import OPTIONS, Option, Settings, Shown
from tests.helpers import REPORT_SCHEMA

README = Path(__file__).parent.parent / "README.md"


def _sample(option: Option[Any]) -> str | None:
    """A value other than the default for ``option`` (``None``: the switch alone)."""
    value: values.Value[Any] = option.value
    if isinstance(value, values.Choice):
        return value.choices[-1]
    samples: dict[type[values.Value[Any]], str | None] = {
        values.Flag: None,
        values.Duration: "250ms",
        values.Factor: "3",
        values.FilePath: f"{option.name}.json",
        values.Directory: f"{option.name}-dir",
        values.AllowList: "time.sleep",
        values.Severities: "off",
    }
    return samples[type(value)]


def _every_option_changed() -> tuple[list[str], str]:
    """Command-line arguments and ini lines that give every option of the table a value other
    than its default: on the command line where it has one, else in the ini file."""
    args, ini = ["-p", "asynccheck"], ["[pytest]"]
    for option in OPTIONS:
        sample = _sample(option)
        for spelling in option.spellings():
            if spelling.cli:
                args.append(spelling.cli if sample is None else f"{spelling.cli}={sample}")
            else:
                assert spelling.ini is not None
                ini.append(f"{spelling.ini} = {'true' if sample is None else sample}")
    return args, "\n".join(ini) + "\n"


def test_settings_has_one_field_per_row_in_the_order_of_the_table() -> None:
    fields = [f.name for f in dataclasses.fields(Settings)]
    assert fields[-1] == "sources"  # where the given values came from: no option
    assert [option.setting for option in OPTIONS] == fields[:-1]
    defaults = Settings()
    for option in OPTIONS:
        assert getattr(defaults, option.setting) == option.value.default, option.setting


def test_every_row_has_its_own_names_and_help() -> None:
    spellings = [spelling for option in OPTIONS for spelling in option.spellings()]
    names = [name for s in spellings for name in (s.cli, s.ini) if name is not None]
    assert len(names) == len(set(names))
    assert all(s.help and (s.cli or s.ini) for s in spellings)
    severities = next(o for o in OPTIONS if isinstance(o.value, values.Severities))
    assert [s.cli for s in severities.spellings()] == [f"--asynccheck-{k.value}" for k in Kind]
    assert {o.setting for o in OPTIONS if o.header is Shown.NEVER} == {"enabled"}


def test_help_lists_every_option_and_ini_key_of_the_table(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "asynccheck", "--help")
    assert result.ret == pytest.ExitCode.OK
    text = result.stdout.str()
    for option in OPTIONS:
        for spelling in option.spellings():
            for name in filter(None, (spelling.cli, spelling.ini)):
                assert re.search(rf"^ +{re.escape(name)}(?:[= ]|$)", text, re.MULTILINE), name


def test_header_and_json_report_show_every_option_of_the_table(
    pytester: pytest.Pytester,
) -> None:
    args, ini = _every_option_changed()
    pytester.makeini(ini)
    pytester.makepyfile(test_mod="async def test_it():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    header = next(line for line in result.stdout.lines if line.startswith("asynccheck: mode="))
    shown = {part.partition("=")[0] for part in header.removeprefix("asynccheck: ").split(", ")}
    for option in OPTIONS:
        if option.header is Shown.NEVER:
            continue
        if isinstance(option.value, values.Severities):
            assert {kind.value for kind in Kind} <= shown, header
        else:
            assert option.name in shown, (option.name, header)
    report = _sample(next(o for o in OPTIONS if o.setting == "report_path"))
    settings = _load_report(pytester.path / str(report))["settings"]
    assert list(settings) == [option.setting for option in OPTIONS]
    for option in OPTIONS:  # each took the value given, not its default
        assert settings[option.setting] != option.value.json(option.value.default), option


def _load_report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    jsonschema.validate(data, json.loads(REPORT_SCHEMA.read_text()))
    return data


def test_the_schema_describes_every_setting_of_the_table() -> None:
    settings = json.loads(REPORT_SCHEMA.read_text())["properties"]["settings"]
    assert set(settings["properties"]) == {option.setting for option in OPTIONS}
    assert set(settings["required"]) <= set(settings["properties"])


def test_the_readme_table_of_options_names_every_option_and_ini_key() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("\n## Options\n") :]
    table = table[: table.index("\n## ", 1)]
    for option in OPTIONS:
        for spelling in option.spellings():
            for name in filter(None, (spelling.cli, spelling.ini)):
                assert re.search(rf"`{re.escape(name)}[`= ]", table), name


def test_with_the_checks_off_no_path_is_made_or_looked_at(pytester: pytest.Pytester) -> None:
    (pytester.path / "afile").write_text("")
    pytester.makepyfile(test_mod="def test_it():\n    pass\n")
    unusable = ("--asynccheck-report=afile/r.json", "--asynccheck-baseline=missing.json")
    result = pytester.runpytest("-p", "asynccheck", "--asynccheck-trace=traces", *unusable)
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("-p", "asynccheck", "--asynccheck-trace=afile/traces")
    result.assert_outcomes(passed=1)
    pytester.makeini("[pytest]\nasynccheck_trace = ini-traces\n")
    result = pytester.runpytest("-p", "asynccheck")
    result.assert_outcomes(passed=1)
    made = ("traces", "ini-traces", "r.json", "missing.json")
    assert not any((pytester.path / name).exists() for name in made)
    # With the checks on, the directory is made before any test runs (the command line wins).
    result = pytester.runpytest("-p", "asynccheck", "--asynccheck", "--asynccheck-trace=traces")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "traces").is_dir()
    assert not (pytester.path / "ini-traces").exists()
