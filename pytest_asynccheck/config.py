"""Options, their ini twins, and the validated settings every other module reads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .findings import Kind, Severity

ENABLE_HELP = "run every async test inside an asynccheck session (also: ini asynccheck = true)"
KIND_HELP = {
    Kind.UNAWAITED: "coroutines created and never awaited",
    Kind.LEAKED_TASK: "tasks the test created that are still pending when it returns",
    Kind.NEVER_RETRIEVED: "task exceptions never retrieved, pending tasks destroyed",
    Kind.BLOCKING: "blocking calls and stalls on the event-loop thread",
    Kind.MAX_WALL: "tests over their @pytest.mark.max_wall budget",
}
STALL_THRESHOLD_HELP = (
    "report any stall of the event loop longer than this many seconds (default 0.1)"
)
MODE_HELP = "error (findings fail tests, the default) or warn (report everything, fail nothing)"
REPORT_HELP = "write every finding and budget to this JSON file (schema: report-schema.json)"
CLOCK_HELP = (
    "clock for max_wall budgets: wall, or virtual (timers fast-forward while the loop is idle)"
)
BASELINE_HELP = "accept the findings recorded in this file; fail only on new ones"
UPDATE_BASELINE_HELP = "write this run's findings to the --asynccheck-baseline file"
WALL_INCLUDE_SETUP_HELP = "count the test's setup (its fixtures) in its max_wall time too"
WALL_FACTOR_HELP = "multiply every max_wall budget by this factor, e.g. 3 on slow CI (default 1)"
COROUTINE_ORIGIN_HELP = (
    "record where every coroutine is created, so a never-awaited one is placed at its "
    "creating line wherever it is dropped, and one kept into a later test is reported on its "
    "creator; costs about 0.3-1.3 us per coroutine created"
)
TRACE_HELP = (
    "write a Chrome trace-event JSON file (Perfetto, chrome://tracing, speedscope) of the "
    "event loop into this directory for every failing or budgeted async test"
)
SUGGEST_BUDGETS_HELP = (
    "list a suggested @pytest.mark.max_wall budget for every async test without one, "
    "from its measured call-phase time"
)
BLOCKING_ALLOW_HELP = (
    "blocking calls never reported, one per line: a catalogued call name (time.sleep), "
    "or module:<prefix> to allow every blocking call made from that module (third-party code)"
)

DEFAULT_STALL_THRESHOLD = 0.1
SEVERITY_CHOICES = ", ".join(s.value for s in Severity)


def option_name(kind: Kind) -> str:
    return f"--asynccheck-{kind.value}"


def ini_name(kind: Kind) -> str:
    return f"asynccheck_{kind.value.replace('-', '_')}"


def dest_name(kind: Kind) -> str:
    return ini_name(kind)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("asynccheck", "async correctness checks (pytest-asynccheck)")
    group.addoption(
        "--asynccheck", action="store_true", default=None, dest="asynccheck", help=ENABLE_HELP
    )
    parser.addini("asynccheck", ENABLE_HELP, type="bool", default=False)
    for kind in Kind:
        text = f"severity of {KIND_HELP[kind]}: {SEVERITY_CHOICES} (default error)"
        group.addoption(option_name(kind), dest=dest_name(kind), metavar="LEVEL", help=text)
        parser.addini(ini_name(kind), text, default=None)
    group.addoption("--asynccheck-mode", dest="asynccheck_mode", metavar="MODE", help=MODE_HELP)
    parser.addini("asynccheck_mode", MODE_HELP, default=None)
    group.addoption(
        "--asynccheck-report", dest="asynccheck_report", metavar="PATH", help=REPORT_HELP
    )
    parser.addini("asynccheck_report", REPORT_HELP, default=None)
    group.addoption("--asynccheck-clock", dest="asynccheck_clock", metavar="CLOCK", help=CLOCK_HELP)
    parser.addini("asynccheck_clock", CLOCK_HELP, default=None)
    group.addoption(
        "--asynccheck-baseline", dest="asynccheck_baseline", metavar="PATH", help=BASELINE_HELP
    )
    parser.addini("asynccheck_baseline", BASELINE_HELP, default=None)
    group.addoption(
        "--asynccheck-update-baseline",
        action="store_true",
        default=False,
        dest="asynccheck_update_baseline",
        help=UPDATE_BASELINE_HELP,
    )
    group.addoption(
        "--asynccheck-stall-threshold",
        dest="asynccheck_stall_threshold",
        metavar="SECONDS",
        help=STALL_THRESHOLD_HELP,
    )
    parser.addini("asynccheck_stall_threshold", STALL_THRESHOLD_HELP, default=None)
    group.addoption(
        "--asynccheck-wall-factor",
        dest="asynccheck_wall_factor",
        metavar="FACTOR",
        help=WALL_FACTOR_HELP,
    )
    parser.addini("asynccheck_wall_factor", WALL_FACTOR_HELP, default=None)
    group.addoption(
        "--asynccheck-wall-include-setup",
        action="store_true",
        default=None,
        dest="asynccheck_wall_include_setup",
        help=WALL_INCLUDE_SETUP_HELP,
    )
    parser.addini(
        "asynccheck_wall_include_setup", WALL_INCLUDE_SETUP_HELP, type="bool", default=False
    )
    group.addoption(
        "--asynccheck-coroutine-origin",
        action="store_true",
        default=None,
        dest="asynccheck_coroutine_origin",
        help=COROUTINE_ORIGIN_HELP,
    )
    parser.addini("asynccheck_coroutine_origin", COROUTINE_ORIGIN_HELP, type="bool", default=False)
    parser.addini("asynccheck_blocking_allow", BLOCKING_ALLOW_HELP, type="linelist", default=[])
    group.addoption("--asynccheck-trace", dest="asynccheck_trace", metavar="DIR", help=TRACE_HELP)
    parser.addini("asynccheck_trace", TRACE_HELP, default=None)
    group.addoption(
        "--asynccheck-suggest-budgets",
        action="store_true",
        default=None,
        dest="asynccheck_suggest_budgets",
        help=SUGGEST_BUDGETS_HELP,
    )
    parser.addini("asynccheck_suggest_budgets", SUGGEST_BUDGETS_HELP, type="bool", default=False)


@dataclass(frozen=True)
class Settings:
    """The effective configuration, resolved once at configure time (CLI beats ini)."""

    enabled: bool = False
    severities: Mapping[Kind, Severity] = field(
        default_factory=lambda: {kind: Severity.ERROR for kind in Kind}
    )
    stall_threshold: float = DEFAULT_STALL_THRESHOLD
    wall_factor: float = 1.0
    wall_include_setup: bool = False
    #: Record every coroutine's creating frame (``sys.set_coroutine_origin_tracking_depth``).
    coroutine_origin: bool = False
    #: ``warn``: every error-level kind is reported as a warning instead.
    mode: str = "error"
    report_path: str | None = None
    baseline_path: str | None = None
    clock: str = "wall"
    update_baseline: bool = False
    #: ``asynccheck_blocking_allow``: call names, and ``module:<prefix>`` entries.
    blocking_allow: tuple[str, ...] = ()
    #: ``--asynccheck-trace``: the directory trace files are written to.
    trace_dir: str | None = None
    suggest_budgets: bool = False

    def severity(self, kind: Kind | str) -> Severity:
        return self.severities[Kind(kind)]

    def header(self) -> str:
        parts = [f"mode={self.mode}"]
        parts += [f"{kind.value}={self.severities[kind].value}" for kind in Kind]
        parts.append(f"stall-threshold={self.stall_threshold:g}s")
        parts.append(f"wall-factor={self.wall_factor:g}")
        if self.clock != "wall":
            parts.append(f"clock={self.clock}")
        if self.coroutine_origin:
            parts.append("coroutine-origin")
        return "asynccheck: " + ", ".join(parts)


def _raw(config: pytest.Config, dest: str, ini: str) -> tuple[object, str] | None:
    value = config.getoption(dest, default=None)
    if value is not None:
        return value, "command line"
    value = config.getini(ini)
    if value not in (None, "", []):
        return value, f"ini file {config.inipath.name if config.inipath else ''}".rstrip()
    return None


def _invalid(name: str, value: object, source: str, expected: str) -> pytest.UsageError:
    return pytest.UsageError(
        f"asynccheck: {name}={value!r} (from {source}) is not valid; expected {expected}"
    )


def _flag(config: pytest.Config, name: str) -> bool:
    """A switch: its command-line flag, else its ini twin (a bool)."""
    value = config.getoption(name, default=None)
    if value is not None:
        return bool(value)
    try:
        return bool(config.getini(name))
    except (ValueError, pytest.UsageError) as exc:  # pytest 9 wraps the ValueError itself
        # pytest says "invalid truth value 'maybe'": the value is the quoted part.
        value = str(exc).partition(" value ")[2] or str(exc)
        source = f"ini file {config.inipath.name if config.inipath else ''}".rstrip()
        raise pytest.UsageError(
            f"asynccheck: {name}={value} (from {source}) is not valid; expected true or false"
        ) from None


def _positive_float(config: pytest.Config, dest: str, ini: str, cli: str, default: float) -> float:
    raw = _raw(config, dest, ini)
    if raw is None:
        return default
    value, source = raw
    name = cli if source == "command line" else ini
    try:
        number = float(str(value).strip().removesuffix("s"))
    except ValueError:
        raise _invalid(name, value, source, "a positive number of seconds") from None
    if not math.isfinite(number) or number <= 0:
        raise _invalid(name, value, source, "a positive number of seconds")
    return number


def _choice(config: pytest.Config, name: str, choices: tuple[str, ...]) -> str:
    """The value of option ``--<name>`` / ini ``name`` (dashes for underscores on the command
    line), one of ``choices``; the first choice is the default."""
    raw = _raw(config, name, name)
    if raw is None:
        return choices[0]
    value, source = raw
    text = str(value).strip().lower()
    if text not in choices:
        shown = "--" + name.replace("_", "-") if source == "command line" else name
        raise _invalid(shown, value, source, f"one of: {', '.join(choices)}")
    return text


def _directory(config: pytest.Config, name: str, cli: str) -> str | None:
    """A directory to write into, made now if missing, so a bad one stops the run at once."""
    raw = _raw(config, name, name)
    if raw is None:
        return None
    value, source = raw
    shown = cli if source == "command line" else name
    path = Path(str(value).strip())
    if not str(value).strip():
        raise _invalid(shown, value, source, "a directory")
    if source != "command line" and not path.is_absolute() and config.inipath is not None:
        path = config.inipath.parent / path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _invalid(
            shown, value, source, f"a directory that can be made ({exc.strerror})"
        ) from None
    return str(path)


def load_settings(config: pytest.Config) -> Settings:
    """Read and validate every option; a bad value is a usage error naming option and source."""
    enabled = config.getoption("asynccheck", default=None)
    if enabled is None:
        enabled = bool(config.getini("asynccheck"))
    severities: dict[Kind, Severity] = {}
    for kind in Kind:
        raw = _raw(config, dest_name(kind), ini_name(kind))
        if raw is None:
            severities[kind] = Severity.ERROR
            continue
        value, source = raw
        name = option_name(kind) if source == "command line" else ini_name(kind)
        text = str(value).strip().lower()
        try:
            severities[kind] = Severity(text)
        except ValueError:
            raise _invalid(name, value, source, f"one of: {SEVERITY_CHOICES}") from None
    mode = _choice(config, "asynccheck_mode", ("error", "warn"))
    if mode == "warn":
        severities = {
            kind: Severity.WARN if severity is Severity.ERROR else severity
            for kind, severity in severities.items()
        }
    clock = _choice(config, "asynccheck_clock", ("wall", "virtual"))
    raw_baseline = _raw(config, "asynccheck_baseline", "asynccheck_baseline")
    baseline_path = str(raw_baseline[0]) if raw_baseline is not None else None
    update_baseline = bool(config.getoption("asynccheck_update_baseline", default=False))
    if update_baseline and baseline_path is None:
        raise pytest.UsageError(
            "asynccheck: --asynccheck-update-baseline needs --asynccheck-baseline=PATH "
            "(or ini asynccheck_baseline) to know where to write"
        )
    raw_report = _raw(config, "asynccheck_report", "asynccheck_report")
    report_path = str(raw_report[0]) if raw_report is not None else None
    stall = _positive_float(
        config,
        "asynccheck_stall_threshold",
        "asynccheck_stall_threshold",
        "--asynccheck-stall-threshold",
        DEFAULT_STALL_THRESHOLD,
    )
    factor = _positive_float(
        config,
        "asynccheck_wall_factor",
        "asynccheck_wall_factor",
        "--asynccheck-wall-factor",
        1.0,
    )
    include_setup = _flag(config, "asynccheck_wall_include_setup")
    coroutine_origin = _flag(config, "asynccheck_coroutine_origin")
    blocking_allow = tuple(
        line.strip() for line in config.getini("asynccheck_blocking_allow") if line.strip()
    )
    for entry in blocking_allow:
        if entry.startswith("module:") and not entry[len("module:") :].strip():
            raise _invalid(
                "asynccheck_blocking_allow",
                entry,
                "ini file",
                "a call name such as time.sleep, or module:<module prefix>",
            )
    trace_dir = _directory(config, "asynccheck_trace", "--asynccheck-trace")
    suggest_budgets = _flag(config, "asynccheck_suggest_budgets")
    return Settings(
        trace_dir=trace_dir,
        suggest_budgets=suggest_budgets,
        enabled=bool(enabled),
        severities=severities,
        stall_threshold=stall,
        wall_factor=factor,
        blocking_allow=blocking_allow,
        wall_include_setup=include_setup,
        coroutine_origin=coroutine_origin,
        mode=mode,
        report_path=report_path,
        baseline_path=baseline_path,
        update_baseline=update_baseline,
        clock=clock,
    )
