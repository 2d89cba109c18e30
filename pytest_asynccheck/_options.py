"""The options, one row each in ``OPTIONS``, and the validated settings every other module reads.

A row (``Option``) names the ``Settings`` field it sets, the option (``--asynccheck-<name>``,
ini twin ``asynccheck_<name>``), how its value is read, checked and shown (a ``Value`` of
``_option_values``), its help and whether the header shows it: always, or only when it is not
the default. ``add_options``, ``load_settings``, the header line and the JSON
report's ``settings`` are all made by going through the table, so an option is added by adding
its row (and its ``Settings`` field: a test holds the two one to one). The severities are one
row that spells one option per ``Kind``: a new kind needs only its ``KIND_HELP`` line.

Every value is checked once, at configure time: a bad one is a ``pytest.UsageError`` naming the
option (or ini key), the value, where it came from and what is expected. Durations take one form
everywhere (``0.1``, ``0.1s``, ``100ms``: ``_option_values.parse_duration``, which the
``max_wall`` marker uses too); allow entries are checked by ``_allow``. Paths are looked at only
when the checks are on, before any test runs (``_paths``): a report or baseline file must be
usable (a baseline in use must exist), and the trace directory is made then; with the checks off
nothing is created.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic

import pytest

from ._findings import Kind, Severity
from ._option_values import (
    COMMAND_LINE,
    AllowList,
    Choice,
    Directory,
    Duration,
    Factor,
    FilePath,
    Flag,
    Given,
    Severities,
    Spelling,
    T,
    Value,
    cli_name,
    ini_name,
)

KIND_HELP = {
    Kind.UNAWAITED: "coroutines created and never awaited",
    Kind.LEAKED_TASK: "tasks the test created that are still pending when it returns",
    Kind.NEVER_RETRIEVED: "task exceptions never retrieved, pending tasks destroyed",
    Kind.BLOCKING: "blocking calls and stalls on the event-loop thread",
    Kind.MAX_WALL: "tests over their @pytest.mark.max_wall budget",
    Kind.CALLBACK_ERROR: "exceptions of loop callbacks, done callbacks and protocols, only logged",
    Kind.THREAD_UNSAFE: "loop methods that are not thread-safe called from another thread",
    Kind.SWALLOWED_CANCEL: "tasks that were cancelled and returned normally (Python 3.11+)",
    Kind.UNCLOSED: "connections, sockets, files and event loops the test made and never closed",
}

DEFAULT_STALL_THRESHOLD = 0.1
DEFAULT_HANG_FACTOR = 2.0
#: The clocks a ``max_wall`` budget can be measured with: the option's and the marker's.
CLOCKS = ("wall", "virtual")


class Shown(enum.Enum):
    """Whether the header line shows an option's value."""

    ALWAYS = "always"
    WHEN_CHANGED = "when it is not the default"
    #: ``--asynccheck`` itself: the header is there only when the checks are on.
    NEVER = "never"


@dataclass(frozen=True)
class Option(Generic[T]):
    """One row of the table: a ``Settings`` field and the option that sets it."""

    #: The ``Settings`` field, and the JSON report's key under ``settings``.
    setting: str
    #: ``--asynccheck-<name>``, ini ``asynccheck_<name>``, ``<name>=`` in the header.
    name: str
    value: Value[T]
    help: str
    cli: bool = True
    ini: bool = True
    header: Shown = Shown.WHEN_CHANGED

    @property
    def cli_name(self) -> str | None:
        return cli_name(self.name) if self.cli else None

    @property
    def ini_name(self) -> str | None:
        return ini_name(self.name) if self.ini else None

    def spellings(self) -> tuple[Spelling, ...]:
        """The options pytest registers for this row: one, or one per kind (severities)."""
        return self.value.spellings(Spelling(self.cli_name, self.ini_name, self.help))


#: Every option, in the order of ``--help``, the header line and the JSON report.
OPTIONS: tuple[Option[Any], ...] = (
    Option("enabled", "", Flag(), "run every async test inside an asynccheck session "
           "(also: ini asynccheck = true)", header=Shown.NEVER),
    Option("mode", "mode", Choice(("error", "warn"), "MODE"), "error (findings fail tests, "
           "the default) or warn (report everything, fail nothing)", header=Shown.ALWAYS),
    # One option --asynccheck-<kind> (and ini twin) per Kind, its help from KIND_HELP.
    Option("severities", "", Severities(KIND_HELP), "", cli=False, ini=False, header=Shown.ALWAYS),
    Option("stall_threshold", "stall-threshold", Duration(DEFAULT_STALL_THRESHOLD),
           "report any stall of the event loop longer than this many seconds (default 0.1)",
           header=Shown.ALWAYS),
    Option("wall_factor", "wall-factor", Factor(1.0), "multiply every max_wall budget by this "
           "factor, e.g. 3 on slow CI (default 1)", header=Shown.ALWAYS),
    Option("hang_factor", "hang-factor", Factor(DEFAULT_HANG_FACTOR), "cancel a test still "
           "running at its max_wall budget (times the wall factor) times this factor, and "
           "fail it with the await tree of its tasks (default 2)"),
    Option("clock", "clock", Choice(CLOCKS, "CLOCK"), "clock for max_wall budgets: wall, or "
           "virtual (timers fast-forward while the loop is idle)"),
    Option("coroutine_origin", "coroutine-origin", Flag(), "record where every coroutine is "
           "created, so a never-awaited one is placed at its creating line wherever it is "
           "dropped, and one kept into a later test is reported on its creator; costs about "
           "0.3-1.3 us per coroutine created"),
    Option("cancel_leaked", "cancel-leaked", Flag(), "cancel the tasks reported as leaked, and "
           "await them (up to 1 s), at the end of the test or fixture that leaked them, so they "
           "do not run on into later tests on a shared loop (default false)"),
    Option("wall_include_setup", "wall-include-setup", Flag(), "count the test's setup (its "
           "fixtures) in its max_wall time too"),
    Option("report_path", "report", FilePath(), "write every finding and budget to this JSON "
           "file (schema: report-schema.json)"),
    Option("baseline_path", "baseline", FilePath(read_unless="update_baseline"), "accept the "
           "findings recorded in this file; fail only on new ones"),
    Option("update_baseline", "update-baseline", Flag(), "write this run's findings to the "
           "--asynccheck-baseline file", ini=False),
    Option("trace_dir", "trace", Directory(), "write a Chrome trace-event JSON file (Perfetto, "
           "chrome://tracing, speedscope) of the event loop into this directory for every "
           "failing or budgeted async test"),
    Option("suggest_budgets", "suggest-budgets", Flag(), "list a suggested @pytest.mark.max_wall "
           "budget for every async test without one, from its measured call-phase time"),
    Option("blocking_allow", "blocking-allow", AllowList(), "blocking calls never reported, one "
           "per line: a catalogued call name (time.sleep) or a function it is called through "
           "(mimetypes.guess_type), module:<prefix> for calls made from that module "
           "(third-party code), <call>@<path suffix>:<function> for calls made while that "
           "function is on the stack, or path:<glob> for calls on lines of those files",
           cli=False),
)  # fmt: skip


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("asynccheck", "async correctness checks (pytest-asynccheck)")
    for option in OPTIONS:
        for spelling in option.spellings():
            option.value.add(group, parser, spelling)


@dataclass(frozen=True)
class Settings:
    """The effective configuration, resolved once at configure time (CLI beats ini). One field
    per row of ``OPTIONS``, in its order, but for ``sources``."""

    enabled: bool = False
    #: ``warn`` mode: every error-level kind is reported as a warning instead.
    mode: str = "error"
    severities: Mapping[Kind, Severity] = field(
        default_factory=lambda: {kind: Severity.ERROR for kind in Kind}
    )
    stall_threshold: float = DEFAULT_STALL_THRESHOLD
    wall_factor: float = 1.0
    #: A budgeted test still running at budget x wall factor x this is cancelled as hung.
    hang_factor: float = DEFAULT_HANG_FACTOR
    clock: str = "wall"
    #: Record every coroutine's creating frame (``sys.set_coroutine_origin_tracking_depth``).
    coroutine_origin: bool = False
    #: Cancel (and await, bounded) the tasks reported as leaked, where they were found.
    cancel_leaked: bool = False
    wall_include_setup: bool = False
    report_path: str | None = None
    baseline_path: str | None = None
    update_baseline: bool = False
    #: ``--asynccheck-trace``: the directory trace files are written to.
    trace_dir: str | None = None
    suggest_budgets: bool = False
    #: ``asynccheck_blocking_allow``: call names, and ``module:<prefix>`` entries.
    blocking_allow: tuple[str, ...] = ()
    #: Where each option given was read from (``command line`` or ``ini file <name>``), by
    #: field; the severities are not listed.
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def baseline_source(self) -> str:
        """Where ``baseline_path`` came from: ``command line`` or the ini file's name."""
        return self.sources.get("baseline_path", COMMAND_LINE)

    def severity(self, kind: Kind | str) -> Severity:
        return self.severities[Kind(kind)]

    def header(self) -> str:
        """The header line: every option the table shows, always or when not the default."""
        parts = []
        for option in OPTIONS:
            value = getattr(self, option.setting)
            always = option.header is Shown.ALWAYS
            if always or (option.header is Shown.WHEN_CHANGED and value != option.value.default):
                parts += option.value.shown(option.name, value)
        return "asynccheck: " + ", ".join(parts)

    def as_json(self) -> dict[str, object]:
        """The JSON report's ``settings``: every option, by ``Settings`` field."""
        return {
            option.setting: option.value.json(getattr(self, option.setting)) for option in OPTIONS
        }


def load_settings(config: pytest.Config) -> Settings:
    """Read and validate every option; a bad value is a usage error naming option and source."""
    values: dict[str, Any] = {}
    given: dict[str, Given] = {}
    for option in OPTIONS:
        values[option.setting], found = option.value.read(config, option.spellings())
        if found is not None:
            given[option.setting] = found
    if values["mode"] == "warn":
        values["severities"] = {
            kind: Severity.WARN if severity is Severity.ERROR else severity
            for kind, severity in values["severities"].items()
        }
    if values["update_baseline"] and values["baseline_path"] is None:
        raise pytest.UsageError(
            "asynccheck: --asynccheck-update-baseline needs --asynccheck-baseline=PATH "
            "(or ini asynccheck_baseline) to know where to write"
        )
    if values["enabled"]:  # with the checks off, no path is looked at nor made
        for option in OPTIONS:
            if option.setting in given:
                (spelling, *_) = option.spellings()
                option.value.check(spelling, values[option.setting], given[option.setting], values)
    sources = {setting: found.source for setting, found in given.items()}
    return Settings(**values, sources=sources)
