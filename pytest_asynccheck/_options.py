"""Options, their ini twins, and the validated settings every other module reads.

Every value is checked once, at configure time: a bad one is a ``pytest.UsageError`` naming the
option (or ini key), the value, where it came from and what is expected. Durations take one form
everywhere (``0.1``, ``0.1s``, ``100ms``: ``parse_duration``, which the ``max_wall`` marker uses
too); allow entries must name a catalogued call, a kind, ``stall`` or (in the ini)
``module:<prefix>``. With the checks on, the report and baseline paths are checked before any
test runs (not a directory, a directory that exists or can be made, writable; a baseline in use
exists, is readable and is a baseline); nothing is created until the run writes.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ._findings import SETTABLE_SEVERITIES, Kind, Severity

ENABLE_HELP = "run every async test inside an asynccheck session (also: ini asynccheck = true)"
KIND_HELP = {
    Kind.UNAWAITED: "coroutines created and never awaited",
    Kind.LEAKED_TASK: "tasks the test created that are still pending when it returns",
    Kind.NEVER_RETRIEVED: "task exceptions never retrieved, pending tasks destroyed",
    Kind.BLOCKING: "blocking calls and stalls on the event-loop thread",
    Kind.MAX_WALL: "tests over their @pytest.mark.max_wall budget",
    Kind.CALLBACK_ERROR: "exceptions of loop callbacks, done callbacks and protocols, only logged",
    Kind.THREAD_UNSAFE: "loop methods that are not thread-safe called from another thread",
    Kind.UNCLOSED: "connections, sockets, files and event loops the test made and never closed",
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
HANG_FACTOR_HELP = (
    "cancel a test still running at its max_wall budget (times the wall factor) times this "
    "factor, and fail it with the await tree of its tasks (default 2)"
)
DEFAULT_HANG_FACTOR = 2.0
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
CANCEL_LEAKED_HELP = (
    "cancel the tasks reported as leaked, and await them (up to 1 s), at the end of the test "
    "or fixture that leaked them, so they do not run on into later tests on a shared loop "
    "(default false)"
)
BLOCKING_ALLOW_HELP = (
    "blocking calls never reported, one per line: a catalogued call name (time.sleep) or a "
    "function it is called through (mimetypes.guess_type), module:<prefix> for calls made "
    "from that module (third-party code), <call>@<path suffix>:<function> for calls made "
    "while that function is on the stack, or path:<glob> for calls on lines of those files"
)

DEFAULT_STALL_THRESHOLD = 0.1
_DURATION = re.compile(r"^\s*(?P<number>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?P<unit>ms|s)?\s*$")


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


SETTABLE_VALUES = frozenset(s.value for s in SETTABLE_SEVERITIES)
SEVERITY_CHOICES = ", ".join(s.value for s in SETTABLE_SEVERITIES)


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
        "--asynccheck-hang-factor",
        dest="asynccheck_hang_factor",
        metavar="FACTOR",
        help=HANG_FACTOR_HELP,
    )
    parser.addini("asynccheck_hang_factor", HANG_FACTOR_HELP, default=None)
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
    group.addoption(
        "--asynccheck-cancel-leaked",
        action="store_true",
        default=None,
        dest="asynccheck_cancel_leaked",
        help=CANCEL_LEAKED_HELP,
    )
    parser.addini("asynccheck_cancel_leaked", CANCEL_LEAKED_HELP, type="bool", default=False)
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
    #: A budgeted test still running at budget x wall factor x this is cancelled as hung.
    hang_factor: float = DEFAULT_HANG_FACTOR
    wall_include_setup: bool = False
    #: Record every coroutine's creating frame (``sys.set_coroutine_origin_tracking_depth``).
    coroutine_origin: bool = False
    #: Cancel (and await, bounded) the tasks reported as leaked, where they were found.
    cancel_leaked: bool = False
    #: ``warn``: every error-level kind is reported as a warning instead.
    mode: str = "error"
    report_path: str | None = None
    baseline_path: str | None = None
    #: Where ``baseline_path`` came from: ``command line`` or the ini file's name.
    baseline_source: str = "command line"
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
        if self.hang_factor != DEFAULT_HANG_FACTOR:
            parts.append(f"hang-factor={self.hang_factor:g}")
        if self.clock != "wall":
            parts.append(f"clock={self.clock}")
        if self.coroutine_origin:
            parts.append("coroutine-origin")
        if self.cancel_leaked:
            parts.append("cancel-leaked")
        return "asynccheck: " + ", ".join(parts)


def _raw(config: pytest.Config, dest: str, ini: str) -> tuple[object, str] | None:
    value = config.getoption(dest, default=None)
    if value is not None:
        return value, "command line"
    value = config.getini(ini)
    if value not in (None, "", []):
        return value, _ini_source(config)
    return None


def _ini_source(config: pytest.Config) -> str:
    return f"ini file {config.inipath.name if config.inipath else ''}".rstrip()


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
        raise pytest.UsageError(
            f"asynccheck: {name}={value} (from {_ini_source(config)}) is not valid; "
            "expected true or false"
        ) from None


def _source_and_name(
    config: pytest.Config, dest: str, ini: str, cli: str
) -> tuple[object, str, str] | None:
    raw = _raw(config, dest, ini)
    if raw is None:
        return None
    value, source = raw
    return value, source, cli if source == "command line" else ini


def _duration(config: pytest.Config, dest: str, ini: str, cli: str, default: float) -> float:
    found = _source_and_name(config, dest, ini, cli)
    if found is None:
        return default
    value, source, name = found
    seconds = parse_duration(value)
    if seconds is None:
        raise _invalid(
            name, value, source, "a positive duration in seconds, such as 0.1, 0.1s or 100ms"
        )
    return seconds


def _factor(config: pytest.Config, dest: str, ini: str, cli: str, default: float) -> float:
    found = _source_and_name(config, dest, ini, cli)
    if found is None:
        return default
    value, source, name = found
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise _invalid(name, value, source, "a positive number, such as 1.5 or 3")
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
    enabled = _flag(config, "asynccheck")
    severities: dict[Kind, Severity] = {}
    for kind in Kind:
        raw = _raw(config, dest_name(kind), ini_name(kind))
        if raw is None:
            severities[kind] = Severity.ERROR
            continue
        value, source = raw
        name = option_name(kind) if source == "command line" else ini_name(kind)
        text = str(value).strip().lower()
        if text not in SETTABLE_VALUES:
            raise _invalid(name, value, source, f"one of: {SEVERITY_CHOICES}")
        severities[kind] = Severity(text)
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
    stall = _duration(
        config,
        "asynccheck_stall_threshold",
        "asynccheck_stall_threshold",
        "--asynccheck-stall-threshold",
        DEFAULT_STALL_THRESHOLD,
    )
    factor = _factor(
        config,
        "asynccheck_wall_factor",
        "asynccheck_wall_factor",
        "--asynccheck-wall-factor",
        1.0,
    )
    hang_factor = _factor(
        config,
        "asynccheck_hang_factor",
        "asynccheck_hang_factor",
        "--asynccheck-hang-factor",
        DEFAULT_HANG_FACTOR,
    )
    include_setup = _flag(config, "asynccheck_wall_include_setup")
    coroutine_origin = _flag(config, "asynccheck_coroutine_origin")
    cancel_leaked = _flag(config, "asynccheck_cancel_leaked")
    blocking_allow = tuple(
        line.strip() for line in config.getini("asynccheck_blocking_allow") if line.strip()
    )
    check_allow_entries(blocking_allow, "asynccheck_blocking_allow", _ini_source(config))
    if enabled:
        _check_paths(report_path, raw_report, baseline_path, raw_baseline, update_baseline)
    trace_dir = _directory(config, "asynccheck_trace", "--asynccheck-trace")
    suggest_budgets = _flag(config, "asynccheck_suggest_budgets")
    return Settings(
        trace_dir=trace_dir,
        suggest_budgets=suggest_budgets,
        enabled=bool(enabled),
        severities=severities,
        stall_threshold=stall,
        wall_factor=factor,
        hang_factor=hang_factor,
        blocking_allow=blocking_allow,
        wall_include_setup=include_setup,
        coroutine_origin=coroutine_origin,
        cancel_leaked=cancel_leaked,
        mode=mode,
        report_path=report_path,
        baseline_path=baseline_path,
        baseline_source=raw_baseline[1] if raw_baseline is not None else "command line",
        update_baseline=update_baseline,
        clock=clock,
    )


def allow_vocabulary() -> tuple[str, ...]:
    """Every plain name an allow list may hold: finding kinds, catalogued calls and their
    aliases, and ``stall``."""
    # The detectors' package reads the settings: imported only when needed.
    from .detectors.blocking import catalogue
    from .detectors.blocking import watchdog as monitor

    return (
        *(kind.value for kind in Kind),
        *catalogue.names(),
        *catalogue.ALIASES,
        monitor.STALL_CALL,
    )


def _names_a_function(entry: str) -> bool:
    """Whether ``entry`` is ``module.qualname`` of a function that may stand on the way to a
    blocking call (``mimetypes.guess_type``). A module already imported, or one of the
    standard library's, is looked into; any other module is only found, never imported here:
    importing the code under test at configuration time could change what it does."""
    parts = entry.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name, path = ".".join(parts[:cut]), parts[cut:]
        module = sys.modules.get(module_name)
        if module is None and module_name.partition(".")[0] in sys.stdlib_module_names:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
        if module is not None:
            target: object = module
            for name in path:
                target = getattr(target, name, None)
                if target is None:
                    return False
            return callable(target)
        try:
            if importlib.util.find_spec(module_name) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def unknown_allow_entry(entry: str) -> str | None:
    """What an allow list expects instead of ``entry`` (with the closest valid names), or
    ``None`` when ``entry`` is valid: a kind, a catalogued call, ``stall``, a function on the
    way to a call, or one of the scoped forms ``parse_allow_entry`` reads."""
    from .detectors.blocking.allow import parse_allow_entry

    try:
        parsed = parse_allow_entry(entry)
    except ValueError as exc:
        return str(exc)
    if parsed.module or parsed.path:
        return None
    vocabulary = allow_vocabulary()
    name = parsed.call
    if name in vocabulary or name == "*" or _names_a_function(name):
        return None
    close = difflib.get_close_matches(name, vocabulary, n=3)
    kinds = ", ".join(kind.value for kind in Kind)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return (
        f"a catalogued call such as time.sleep, a function on the way to one "
        f"(module.qualname), a kind ({kinds}), stall, module:<prefix>, path:<glob> or "
        f"<call>@<path suffix>:<function>{hint}"
    )


def check_allow_entries(entries: Iterable[str], name: str, source: str) -> None:
    for entry in entries:
        expected = unknown_allow_entry(entry)
        if expected is not None:
            raise _invalid(name, entry, source, expected)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def writable_problem(path: str) -> str | None:
    """Why a file cannot be written at ``path`` (its directory made if needed), or ``None``."""
    if "\0" in path:
        return "it contains a NUL byte"
    try:
        return _writable(Path(path))
    except (OSError, ValueError) as exc:  # a name too long, say
        return f"it is not a usable path ({exc})"


def _readable_problem(path: str) -> str | None:
    if "\0" in path:
        return "it contains a NUL byte"
    try:
        target = Path(path)
        if target.is_dir():
            return "it is a directory"
        if not target.exists():
            return "the file does not exist; create it with --asynccheck-update-baseline"
        if not os.access(target, os.R_OK):
            return "the file is not readable"
    except (OSError, ValueError) as exc:
        return f"it is not a usable path ({exc})"
    return None


def _writable(target: Path) -> str | None:
    if target.is_dir():
        return "it is a directory"
    if target.exists() and not os.access(target, os.W_OK):
        return "the file is not writable"
    parent = target.absolute().parent
    existing = _nearest_existing(parent)
    if not existing.is_dir():
        return f"{_shown(existing)!r} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the directory {_shown(existing)!r} is not writable"
    return None


def _shown(path: Path) -> str:
    """``path`` as the user wrote it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()


def _check_paths(
    report_path: str | None,
    raw_report: tuple[object, str] | None,
    baseline_path: str | None,
    raw_baseline: tuple[object, str] | None,
    update_baseline: bool,
) -> None:
    """A path that cannot be used stops the run before any test, naming the option."""
    if report_path is not None and raw_report is not None:
        problem = writable_problem(report_path) if report_path.strip() else "it is empty"
        if problem:
            raise _path_error("report", report_path, raw_report[1], problem)
    if baseline_path is None or raw_baseline is None:
        return
    source = raw_baseline[1]
    if not baseline_path.strip():
        raise _path_error("baseline", baseline_path, source, "it is empty")
    if update_baseline:
        problem = writable_problem(baseline_path)
        if problem:
            raise _path_error("baseline", baseline_path, source, problem)
        return
    problem = _readable_problem(baseline_path)
    if problem:
        raise _path_error("baseline", baseline_path, source, problem)
    # Whether the file is a baseline is checked where it is read (``reporting.baseline``).


def _path_error(option: str, path: str, source: str, problem: str) -> pytest.UsageError:
    name = f"--asynccheck-{option}" if source == "command line" else f"asynccheck_{option}"
    return pytest.UsageError(
        f"asynccheck: {name}={path!r} (from {source}) cannot be used: {problem}"
    )
