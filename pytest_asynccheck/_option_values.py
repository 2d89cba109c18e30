"""How an option's value is registered, read, checked and shown: one class per kind of value.

``_options`` makes its table of options of these. Each reads the command line first, then the
ini file, then takes its default; a bad value is a ``pytest.UsageError`` naming the option as it
was given (``--asynccheck-<name>`` or ini ``asynccheck_<name>``), the value, where it came from
and what is expected. ``check`` runs only with the checks on: it is where a path is looked at
(``_paths``) and a directory made. ``shown`` is the value's part of the header line, ``json`` its
value in the JSON report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from ._allow import unknown_allow_entry
from ._findings import SETTABLE_SEVERITIES, Kind, Severity
from ._paths import directory_problem, readable_problem, writable_problem

COMMAND_LINE = "command line"
SEVERITY_CHOICES = ", ".join(s.value for s in SETTABLE_SEVERITIES)
_DURATION = re.compile(r"^\s*(?P<number>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?P<unit>ms|s)?\s*$")

T = TypeVar("T")


def parse_duration(value: object) -> float | None:
    """Seconds from a positive finite number or a string such as ``"500ms"``, ``"2.1s"`` or
    ``"0.1"``: the one parser of durations, for the ``max_wall`` marker and the options."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match["number"]) / (1000 if match["unit"] == "ms" else 1)
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def cli_name(name: str) -> str:
    """``--asynccheck-<name>`` (``--asynccheck`` itself for ``""``)."""
    return f"--asynccheck-{name}".rstrip("-")


def ini_name(name: str) -> str:
    """``asynccheck_<name>``, dashes as underscores (``asynccheck`` itself for ``""``)."""
    return f"asynccheck_{name.replace('-', '_')}".rstrip("_")


@dataclass(frozen=True)
class Given:
    """A value the user gave: as given, and where (``command line`` or ``ini file <name>``)."""

    raw: object
    source: str


@dataclass(frozen=True)
class Spelling:
    """One option as pytest registers it: a command-line option, its ini twin, or both."""

    cli: str | None
    ini: str | None
    help: str

    @property
    def dest(self) -> str:
        return self.ini or (self.cli or "").lstrip("-").replace("-", "_")

    def shown(self, source: str) -> str:
        """The name a message gives: the one the value was given under."""
        return (self.cli if source == COMMAND_LINE else self.ini) or self.dest


class Value(Generic[T]):
    """How one option's value is registered, read, checked and shown. The base registers a
    command-line option taking a value and its ini twin (a string), and reads the first of them
    given through ``parse``."""

    default: T
    metavar = "VALUE"
    #: What a bad value gets: "... is not valid; expected <this>".
    expected = ""

    def spellings(self, spelling: Spelling) -> tuple[Spelling, ...]:
        """The options this value is given with: the row's own ``spelling``, by default."""
        return (spelling,)

    def add(self, group: pytest.OptionGroup, parser: pytest.Parser, spelling: Spelling) -> None:
        if spelling.cli:
            group.addoption(
                spelling.cli, dest=spelling.dest, metavar=self.metavar, help=spelling.help
            )
        if spelling.ini:
            parser.addini(spelling.ini, spelling.help, default=None)

    def read(
        self, config: pytest.Config, spellings: tuple[Spelling, ...]
    ) -> tuple[T, Given | None]:
        (spelling,) = spellings
        return _read(config, spelling, self.parse, self.expected, self.default)

    def parse(self, raw: object, given: Given, config: pytest.Config) -> T:
        """The value of ``raw``; ``ValueError`` when it is not valid."""
        raise NotImplementedError

    def check(self, spelling: Spelling, value: T, given: Given, values: Mapping[str, Any]) -> None:
        """With the checks on, before any test: a ``pytest.UsageError`` if what the value names
        (a path, say) cannot serve."""

    def shown(self, name: str, value: T) -> list[str]:
        return [f"{name}={value}"]

    def json(self, value: T) -> object:
        return value


def _read(
    config: pytest.Config,
    spelling: Spelling,
    parse: Callable[[object, Given, pytest.Config], T],
    expected: str,
    default: T,
) -> tuple[T, Given | None]:
    """The value given on the command line, else in the ini file, else ``default``."""
    given = _given(config, spelling)
    if given is None:
        return default, None
    try:
        return parse(given.raw, given, config), given
    except ValueError:
        raise _invalid(spelling.shown(given.source), given.raw, given.source, expected) from None


def _given(config: pytest.Config, spelling: Spelling) -> Given | None:
    value = config.getoption(spelling.dest, default=None) if spelling.cli else None
    if value is not None:
        return Given(value, COMMAND_LINE)
    if not spelling.ini:
        return None
    value = config.getini(spelling.ini)
    if value not in (None, "", []):
        return Given(value, _ini_source(config, spelling.ini))
    return None


def _ini_source(config: pytest.Config, name: str) -> str:
    """Where ini option ``name`` was read from: pytest's ``-o``/``--override-ini``, which wins
    over the file, or the ini file."""
    overrides = config.getoption("override_ini", default=None) or ()
    if any(str(entry).partition("=")[0].strip() == name for entry in overrides):
        return "-o on the command line"
    return f"ini file {config.inipath.name if config.inipath else ''}".rstrip()


def _invalid(name: str, value: object, source: str, expected: str) -> pytest.UsageError:
    return pytest.UsageError(
        f"asynccheck: {name}={value!r} (from {source}) is not valid; expected {expected}"
    )


class Flag(Value[bool]):
    """A switch: ``--asynccheck-<name>``, or its ini twin set to true or false."""

    default = False

    def add(self, group: pytest.OptionGroup, parser: pytest.Parser, spelling: Spelling) -> None:
        if spelling.cli:
            group.addoption(
                spelling.cli, action="store_true", default=None, dest=spelling.dest,
                help=spelling.help,
            )  # fmt: skip
        if spelling.ini:
            parser.addini(spelling.ini, spelling.help, type="bool", default=False)

    def read(
        self, config: pytest.Config, spellings: tuple[Spelling, ...]
    ) -> tuple[bool, Given | None]:
        (spelling,) = spellings
        value = config.getoption(spelling.dest, default=None)
        if value is not None:
            return bool(value), Given(value, COMMAND_LINE)
        if spelling.ini is None:
            return False, None
        try:
            on = bool(config.getini(spelling.ini))
        except (ValueError, pytest.UsageError) as exc:  # pytest 9 wraps the ValueError itself
            # pytest says "invalid truth value 'maybe'": the value is the quoted part.
            value = str(exc).partition(" value ")[2] or str(exc)
            raise pytest.UsageError(
                f"asynccheck: {spelling.ini}={value} (from {_ini_source(config, spelling.ini)}) "
                "is not valid; expected true or false"
            ) from None
        return on, (Given(on, _ini_source(config, spelling.ini)) if on else None)

    def shown(self, name: str, value: bool) -> list[str]:
        return [name] if value else []


class Choice(Value[str]):
    """One of a few words, any case; the first is the default."""

    def __init__(self, choices: tuple[str, ...], metavar: str) -> None:
        self.choices = choices
        self.default = choices[0]
        self.metavar = metavar
        self.expected = f"one of: {', '.join(choices)}"

    def parse(self, raw: object, given: Given, config: pytest.Config) -> str:
        text = str(raw).strip().lower()
        if text not in self.choices:
            raise ValueError(text)
        return text


class Number(Value[float]):
    """A positive finite number, shown with its ``unit``."""

    unit = ""

    def __init__(self, default: float) -> None:
        self.default = default

    def parse(self, raw: object, given: Given, config: pytest.Config) -> float:
        number = self.number(raw)
        if number is None:
            raise ValueError(raw)
        return number

    def number(self, raw: object) -> float | None:
        raise NotImplementedError

    def shown(self, name: str, value: float) -> list[str]:
        return [f"{name}={value:g}{self.unit}"]


class Duration(Number):
    """Seconds: ``0.1``, ``0.1s`` or ``100ms`` (``parse_duration``)."""

    metavar = "SECONDS"
    unit = "s"
    expected = "a positive duration in seconds, such as 0.1, 0.1s or 100ms"

    def number(self, raw: object) -> float | None:
        return parse_duration(raw)


class Factor(Number):
    """A plain number that multiplies something: ``1.5``, ``3``."""

    metavar = "FACTOR"
    expected = "a positive number, such as 1.5 or 3"

    def number(self, raw: object) -> float | None:
        try:
            number = float(str(raw).strip())
        except ValueError:
            return None
        return number if math.isfinite(number) and number > 0 else None


class FilePath(Value[str | None]):
    """A file the run writes; or, with ``read_unless``, one it reads unless the flag setting
    named there is on (then it writes it)."""

    def __init__(self, read_unless: str | None = None) -> None:
        self.read_unless = read_unless
        self.default = None

    metavar = "PATH"

    def parse(self, raw: object, given: Given, config: pytest.Config) -> str | None:
        return str(raw)

    def check(
        self, spelling: Spelling, value: str | None, given: Given, values: Mapping[str, Any]
    ) -> None:
        path = str(value)
        if not path.strip():
            problem: str | None = "it is empty"
        elif self.read_unless is None or values[self.read_unless]:
            problem = writable_problem(path)
        else:
            problem = readable_problem(path)
            # Whether the file is a baseline is checked where it is read (``reporting.baseline``).
        if problem:
            name = spelling.shown(given.source)
            raise pytest.UsageError(
                f"asynccheck: {name}={path!r} (from {given.source}) cannot be used: {problem}"
            )


class Directory(Value[str | None]):
    """A directory to write into (relative to the ini file when given there), made when the
    checks start, so a bad one stops the run at once."""

    default = None
    metavar = "DIR"

    def parse(self, raw: object, given: Given, config: pytest.Config) -> str | None:
        text = str(raw).strip()
        path = Path(text)
        if given.source != COMMAND_LINE and not path.is_absolute() and config.inipath is not None:
            path = config.inipath.parent / path
        return str(path) if text else None

    def check(
        self, spelling: Spelling, value: str | None, given: Given, values: Mapping[str, Any]
    ) -> None:
        name = spelling.shown(given.source)
        if value is None:
            raise _invalid(name, given.raw, given.source, "a directory")
        problem = directory_problem(value)
        if problem:
            expected = f"a directory that can be made ({problem})"
            raise _invalid(name, given.raw, given.source, expected)


class AllowList(Value[tuple[str, ...]]):
    """Allow entries, one a line, in the ini file only (``_allow`` says which are valid)."""

    default = ()

    def add(self, group: pytest.OptionGroup, parser: pytest.Parser, spelling: Spelling) -> None:
        parser.addini(spelling.dest, spelling.help, type="linelist", default=[])

    def read(
        self, config: pytest.Config, spellings: tuple[Spelling, ...]
    ) -> tuple[tuple[str, ...], Given | None]:
        (spelling,) = spellings
        lines = config.getini(spelling.dest)
        entries = tuple(line.strip() for line in lines if line.strip())
        for entry in entries:
            expected = unknown_allow_entry(entry)
            if expected is not None:
                raise _invalid(spelling.dest, entry, _ini_source(config, spelling.dest), expected)
        return entries, (Given(lines, _ini_source(config, spelling.dest)) if entries else None)

    def shown(self, name: str, value: tuple[str, ...]) -> list[str]:
        return [f"{name}={' '.join(value)}"]

    def json(self, value: tuple[str, ...]) -> object:
        return list(value)


class Severities(Value[Mapping[Kind, Severity]]):
    """A severity for every ``Kind``: one option ``--asynccheck-<kind>`` (and ini twin) each,
    with ``help_of[kind]`` in its help; a kind without a help line is an error at import."""

    metavar = "LEVEL"
    expected = f"one of: {SEVERITY_CHOICES}"

    def __init__(self, help_of: Mapping[Kind, str]) -> None:
        self.default = {kind: Severity.ERROR for kind in Kind}
        self.by_kind = {
            kind: Spelling(
                cli_name(kind.value),
                ini_name(kind.value),
                f"severity of {help_of[kind]}: {SEVERITY_CHOICES} (default error)",
            )
            for kind in Kind
        }

    def spellings(self, spelling: Spelling) -> tuple[Spelling, ...]:
        return tuple(self.by_kind.values())

    def read(
        self, config: pytest.Config, spellings: tuple[Spelling, ...]
    ) -> tuple[Mapping[Kind, Severity], Given | None]:
        severities = {
            kind: _read(config, spelling, self.parse_one, self.expected, Severity.ERROR)[0]
            for kind, spelling in self.by_kind.items()
        }
        return severities, None

    @staticmethod
    def parse_one(raw: object, given: Given, config: pytest.Config) -> Severity:
        severity = Severity(str(raw).strip().lower())  # ValueError: not a severity
        if severity not in SETTABLE_SEVERITIES:
            raise ValueError(severity)
        return severity

    def shown(self, name: str, value: Mapping[Kind, Severity]) -> list[str]:
        return [f"{kind.value}={value[kind].value}" for kind in Kind]

    def json(self, value: Mapping[Kind, Severity]) -> object:
        return {kind.value: severity.value for kind, severity in value.items()}
