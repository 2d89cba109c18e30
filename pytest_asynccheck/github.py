"""GitHub Actions workflow commands for findings, so they show on the pull request's diff."""

from __future__ import annotations

from collections.abc import Iterable

from .findings import Finding, Severity


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_commands(findings: Iterable[Finding]) -> list[str]:
    """``::error file=...,line=...,title=...::message`` (``::warning`` at warn level)."""
    lines = []
    for finding in findings:
        command = "error" if finding.severity == Severity.ERROR.value else "warning"
        properties = []
        if finding.file:
            properties.append(f"file={_escape_property(finding.file)}")
            if finding.line:
                properties.append(f"line={finding.line}")
        title = f"asynccheck {finding.kind}" + (f" in {finding.nodeid}" if finding.nodeid else "")
        properties.append(f"title={_escape_property(title)}")
        body = finding.message + (f" (fix: {finding.fix})" if finding.fix else "")
        lines.append(f"::{command} {','.join(properties)}::{_escape_data(body)}")
    return lines
