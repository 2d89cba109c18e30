"""GitHub Actions workflow commands for findings, so they show on the pull request's diff.

GitHub attaches an annotation to the diff only when its ``file`` is relative to the
repository's checkout: findings carry paths relative to pytest's rootdir, which may be a
subdirectory of it (an ini file in ``service/``). Paths are therefore made relative to
``GITHUB_WORKSPACE`` when it is set, else to the nearest directory above the rootdir that holds
``.git`` (found without running git), else left relative to the rootdir. Titles and messages
are escaped as the workflow-command rules ask: ``%``, ``\\r`` and ``\\n`` everywhere, and ``:``
and ``,`` in properties.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .._findings import Finding, Severity


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def repository_root(rootdir: Path) -> Path | None:
    """``GITHUB_WORKSPACE``, else the nearest directory at or above ``rootdir`` with ``.git``."""
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if workspace:
        return Path(workspace).resolve()
    for directory in (rootdir, *rootdir.parents):
        if (directory / ".git").exists():
            return directory
    return None


def annotation_path(file: str, rootdir: Path, repository: Path | None) -> str:
    """``file`` (relative to ``rootdir``, or absolute) relative to the repository's root,
    with forward slashes; unchanged when it lies outside the repository."""
    if repository is None:
        return file
    path = Path(file) if os.path.isabs(file) else rootdir / file
    try:
        return path.resolve().relative_to(repository).as_posix()
    except ValueError:
        return file


def workflow_commands(findings: Iterable[Finding], rootdir: Path | None = None) -> list[str]:
    """``::error file=...,line=...,title=...::message`` (``::warning`` at warn level)."""
    root = (rootdir or Path.cwd()).resolve()
    repository = repository_root(root)
    lines = []
    for finding in findings:
        command = "error" if finding.severity == Severity.ERROR.value else "warning"
        properties = []
        if finding.file:
            file = annotation_path(finding.file, root, repository)
            properties.append(f"file={_escape_property(file)}")
            if finding.line:
                properties.append(f"line={finding.line}")
        title = f"asynccheck {finding.kind}" + (f" in {finding.nodeid}" if finding.nodeid else "")
        properties.append(f"title={_escape_property(title)}")
        body = finding.message + (f" (fix: {finding.fix})" if finding.fix else "")
        lines.append(f"::{command} {','.join(properties)}::{_escape_data(body)}")
    return lines
