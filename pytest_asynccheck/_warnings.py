"""How the plugin's warnings are issued: warn-level findings, a bad marker in warn mode, and the
notes of a check it cannot make as asked.

They are issued so that only a warning filter naming one of the plugin's classes turns them into
errors: a blanket ``error`` filter shows them as warnings, as warn level must never fail a test.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import pytest

from ._findings import WARNING_FOR_KIND, AsynccheckWarning, Finding


def emit_warnings(findings: Iterable[Finding]) -> None:
    """Warn-level findings become warnings of the plugin's own classes, at the user's line."""
    for finding in findings:
        category = WARNING_FOR_KIND[finding.kind_enum]
        warn_explicit(category(finding.render()), finding.file or "<asynccheck>", finding.line)


def warn_about_marker(item: pytest.Item, message: str) -> None:
    """A bad marker in warn mode: a warning at the test, which then runs without it."""
    warn_at_item(item, f"{message} (warn mode: the test runs without this marker)")


def warn_at_item(item: pytest.Item, message: str) -> None:
    """A warning of the plugin's own about ``item``, at its definition."""
    path, line, _ = item.location
    warn_explicit(AsynccheckWarning(message), path, (line or 0) + 1)


def warn_explicit(warning: AsynccheckWarning, filename: str, lineno: int) -> None:
    """Issue one of the plugin's warnings, which only a filter naming one of the plugin's
    warning classes may turn into an error.

    A blanket ``error`` filter (``-W error``, ``filterwarnings = error``, or one naming
    ``UserWarning`` or ``pytest.PytestWarning``) is there for the project's own warnings; it
    must not make a finding at warn level, which fails nothing, fail the test. Under such a
    filter the warning is shown as a plain warning instead."""
    category = type(warning)
    action, names_own_class = _first_matching_filter(category, str(warning), lineno)
    with warnings.catch_warnings():
        if action == "error" and not names_own_class:
            warnings.filterwarnings("always", category=category)
        warnings.warn_explicit(
            warning, category=category, filename=filename, lineno=lineno, module=WARNING_MODULE
        )


#: The module the plugin's warnings are issued from, as ``-W action:message:category:module``
#: sees it.
WARNING_MODULE = "pytest_asynccheck"


def _first_matching_filter(category: type[Warning], text: str, lineno: int) -> tuple[str, bool]:
    """The action of the first entry of ``warnings.filters`` that applies to a warning of
    ``category`` with ``text``, issued from ``WARNING_MODULE`` at ``lineno``, as
    ``warnings.warn_explicit`` chooses it, and whether that entry names one of the plugin's
    warning classes."""
    for action, message, wanted, module, line in warnings.filters:
        if (
            (message is None or message.match(text))
            and issubclass(category, wanted)
            and (module is None or module.match(WARNING_MODULE))
            and (line == 0 or line == lineno)
        ):
            names_own_class = isinstance(wanted, type) and issubclass(wanted, AsynccheckWarning)
            return action, names_own_class
    return "default", False  # no filter applies: ``warnings.defaultaction``
