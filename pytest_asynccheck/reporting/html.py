"""Findings in pytest-html's report: each finding as an extra of its test (kind, message,
file:line, fix and stack), the recorded timeline of a budgeted test (every test with
``--asynccheck-trace``) drawn as an inline SVG, and the session's summary in the report's
summary section.

Imported only when pytest-html's plugin is loaded (``outputs.register``), and it imports nothing
from pytest-html: extras are the plain dictionaries pytest-html documents. The extras are added
on the controller as each report is logged, before pytest-html (``trylast``) reads them.

The SVG has one lane (``<g class="asynccheck-lane">``) per task, the test's own first: green
while the task was running or ready, yellow while the loop waited on timers or I/O, red where
a blocked call or a stall held the loop (on every lane alive then: a blocked loop runs no
task). Every span carries a ``<title>``, which browsers show on hover: its state and times, and
for a blocked span its call and file:line.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

import pytest

from .._findings import Finding
from .._hookholder import HookHolder
from .._session import CheckSession
from .._wire import REPORT_ATTR, TIMELINE_ATTR
from .summary import Summary
from .text import totals_line

WIDTH = 800
LABEL = 160
LANE = 18
GAP = 4
AXIS = 18
COLOURS = {"running": "#5cb85c", "waiting": "#f0c75e", "blocked": "#d9534f", "stall": "#d9534f"}
STATE_NAMES = {"running": "running or ready", "waiting": "waiting on timers or I/O"}


def _extra(content: str) -> dict[str, Any]:
    # The dictionary ``pytest_html.extras.html(content)`` makes, without importing it.
    return {
        "name": None,
        "format_type": "html",
        "content": content,
        "mime_type": None,
        "extension": None,
    }


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def finding_html(finding: dict[str, Any]) -> str:
    esc = html.escape
    where = f"{finding.get('file') or '<unknown>'}:{finding.get('line', 0)}"
    if finding.get("function"):
        where += f" in {finding['function']}"
    count = f" ({finding['count']} times)" if finding.get("count", 1) > 1 else ""
    parts = [
        f'<div class="asynccheck-finding" data-kind="{esc(finding["kind"])}" '
        'style="border-left:4px solid #d9534f;padding:4px 8px;margin:4px 0">',
        f"<b>asynccheck {esc(finding['kind'])}</b> ({esc(finding.get('severity', ''))}): "
        f"{esc(finding['message'])}{count}<br>",
        f'at <code class="asynccheck-where">{esc(where)}</code>',
    ]
    if finding.get("fix"):
        parts.append(f'<br>fix: <span class="asynccheck-fix">{esc(finding["fix"])}</span>')
    if finding.get("stack"):
        parts.append(f"<pre>{esc(chr(10).join(finding['stack']))}</pre>")
    parts.append("</div>")
    return "".join(parts)


def timeline_svg(timeline: dict[str, Any], title: str = "") -> str:
    """The timeline as an inline SVG: one lane per task, time across."""
    esc = html.escape
    wall = max(float(timeline["wall"]), 1e-9)
    lanes = timeline["lanes"]
    plot = WIDTH - LABEL - 10
    height = AXIS + len(lanes) * (LANE + GAP) + 20

    def x(seconds: float) -> float:
        return round(LABEL + max(0.0, min(seconds, wall)) / wall * plot, 2)

    clock = " (virtual time)" if timeline.get("clock") == "virtual" else ""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="asynccheck-timeline" '
        f'data-lanes="{len(lanes)}" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{esc(title or 'asynccheck timeline')}{clock}</title>",
        f'<text x="{LABEL}" y="12">0 s</text>',
        f'<text x="{LABEL + plot}" y="12" text-anchor="end">{_seconds(wall)}{clock}</text>',
    ]
    for index, lane in enumerate(lanes):
        top = AXIS + index * (LANE + GAP)
        out.append(f'<g class="asynccheck-lane" data-task="{esc(lane["name"])}">')
        out.append(f'<text x="0" y="{top + LANE - 5}">{esc(lane["name"][:24])}</text>')
        first = last = None
        for start, end, state in lane["spans"]:
            first = start if first is None else first
            last = end
            width = max(x(end) - x(start), 0.5)
            out.append(
                f'<rect class="asynccheck-{state}" x="{x(start)}" y="{top}" width="{width:.2f}" '
                f'height="{LANE}" fill="{COLOURS[state]}"><title>{STATE_NAMES[state]} '
                f"{_seconds(start)} to {_seconds(end)}</title></rect>"
            )
        for span in timeline["blocked"]:
            if first is None or last is None or span["end"] < first or span["start"] > last:
                continue
            width = max(x(span["end"]) - x(span["start"]), 1.5)
            length = span["end"] - span["start"]
            label = f"{span['what']}: {span['call']} at {span['where']} ({_seconds(length)})"
            out.append(
                f'<rect class="asynccheck-{span["what"]}" x="{x(span["start"])}" y="{top}" '
                f'width="{width:.2f}" height="{LANE}" fill="{COLOURS[span["what"]]}">'
                f"<title>{esc(label)}</title></rect>"
            )
        out.append("</g>")
    legend_y = AXIS + len(lanes) * (LANE + GAP) + 12
    legend = "green: running or ready, yellow: waiting on timers or I/O, red: loop blocked"
    if timeline.get("more_lanes"):
        legend += f"; {timeline['more_lanes']} more tasks not shown"
    out.append(f'<text x="{LABEL}" y="{legend_y}">{legend}</text>')
    out.append("</svg>")
    return "".join(out)


def summary_html(summary: Summary) -> str:
    esc = html.escape
    findings: list[Finding] = summary._all()
    rows: Counter[tuple[str, str]] = Counter()
    for finding in findings:
        rows[(finding.kind, finding.severity)] += finding.count
    parts = [
        '<div class="asynccheck-summary"><h2>asynccheck</h2>',
        f"<p>{esc(totals_line(findings, summary.checked))}</p>",
    ]
    if rows:
        parts.append("<table><tr><th>kind</th><th>severity</th><th>count</th></tr>")
        parts += [
            f"<tr><td>{esc(k)}</td><td>{esc(s)}</td><td>{n}</td></tr>"
            for (k, s), n in sorted(rows.items())
        ]
        parts.append("</table>")
    exceeded = sum(1 for b in summary.budgets if b["margin"] < 0)
    if summary.budgets:
        parts.append(f"<p>{len(summary.budgets)} budgeted tests, {exceeded} over budget.</p>")
    parts.append("</div>")
    return "".join(parts)


class HtmlOutputs(HookHolder):
    """Adds the extras to each report, and the summary to pytest-html's summary section."""

    name = "asynccheck-html"

    def __init__(self, session: CheckSession, summary: Summary) -> None:
        self.session = session
        self.summary = summary

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        findings = getattr(report, REPORT_ATTR, None) or ()
        timeline = getattr(report, TIMELINE_ATTR, None)
        if not findings and timeline is None:
            return
        extras = list(getattr(report, "extras", None) or [])
        extras += [_extra(finding_html(f)) for f in findings]
        if timeline is not None:
            extras.append(_extra(timeline_svg(timeline, report.nodeid)))
        report.extras = extras  # type: ignore[attr-defined]

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        postfix.append(summary_html(self.summary))
