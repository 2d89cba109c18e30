"""``python -m pytest_asynccheck``: tools for the JSON reports of sharded CI runs.

- ``merge SHARD.json... -o asynccheck.json`` combines the reports of the shards of one run into
  one valid report (see ``jsonreport.combine``).
- ``baseline REPORT.json -o asynccheck-baseline.json`` writes the baseline file
  ``--asynccheck-baseline`` reads, from the findings of a (merged) report.

Bad input (a missing file, a file that is not a report, an output path that cannot be written)
ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ._paths import writable_problem
from .reporting import baseline
from .reporting import json_report as jsonreport
from .reporting.text import plural

PROG = "python -m pytest_asynccheck"
USAGE_ERROR = 2


class UsageError(Exception):
    """Something the user gave cannot be used; the message says what and why."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {PROG} --help)")


def _read_report(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # also UnicodeDecodeError
        raise UsageError(f"{path} is not JSON: {exc}") from None
    try:
        return jsonreport.check_report(data)
    except jsonreport.NotAReport as exc:
        raise UsageError(f"{path} is not an asynccheck report: {exc}") from None


def _check_output(path: str) -> None:
    problem = writable_problem(path) if path.strip() else "it is empty"
    if problem:
        raise UsageError(f"cannot write -o {path!r}: {problem}")


def merge(paths: Sequence[str], output: str) -> str:
    _check_output(output)
    reports = [_read_report(path) for path in paths]
    combined = jsonreport.combine(reports)
    try:
        jsonreport.write_atomically(output, combined)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    totals = combined["totals"]
    state = "complete" if combined["complete"] else "incomplete"
    return (
        f"asynccheck: merged {plural(len(reports), 'report')} "
        f"({plural(totals['findings'], 'finding')} in "
        f"{plural(totals['checked_tests'], 'checked test')}, {state}) into {output}"
    )


def make_baseline(path: str, output: str) -> str:
    _check_output(output)
    report = _read_report(path)
    try:
        entries = baseline.write(output, jsonreport.findings_of(report))
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    note = "" if report["complete"] else " (the report is incomplete: only what ran is in it)"
    return (
        f"asynccheck: baseline of {plural(entries, 'entry', 'entries')} written to {output}{note}"
    )


def _parser() -> _Parser:
    parser = _Parser(prog=PROG, description="Tools for pytest-asynccheck's JSON reports.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    merging = commands.add_parser("merge", help="combine the reports of a sharded run into one")
    merging.add_argument("reports", nargs="+", metavar="REPORT", help="the shards' reports")
    merging.add_argument("-o", "--output", required=True, help="the combined report to write")
    baselining = commands.add_parser("baseline", help="write a baseline from a report's findings")
    baselining.add_argument("report", metavar="REPORT", help="a (merged) JSON report")
    baselining.add_argument("-o", "--output", required=True, help="the baseline file to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "merge":
            message = merge(args.reports, args.output)
        else:
            message = make_baseline(args.report, args.output)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
