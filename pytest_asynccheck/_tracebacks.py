"""The plugin's frames taken out of an exception group's traceback before pytest renders it.

pytest renders an exception group natively, from the raw traceback, and pytest before 9 (which
filters each sub-exception by ``__tracebackhide__``) shows every frame from the first one it
keeps on: a group failing a fixture's setup is shown from pytest's own runner down, with the
plugin's hook wrappers (each with the pluggy frame that threw into it), its fixture wrappers and
its patched blocking calls among the user's frames. ``TracebackTrim``, registered only on those
pytest versions, unlinks them from the group's traceback, its sub-exceptions' and their causes'
when a phase fails with a group, so the failure reads as it does without the plugin.

Limits: only groups are trimmed (pytest honours ``__tracebackhide__`` for every other
exception); the first frame of a traceback is always kept (it is pytest's, never the plugin's).
"""

from __future__ import annotations

import builtins
import importlib
import types
from collections.abc import Generator
from pathlib import Path

import pluggy
import pytest
from _pytest._code import code as pytest_code

from ._hookholder import HookHolder

#: The exception group type: the built-in one, or on Python 3.10 the backport pytest depends on.
GROUP: type[BaseException] = (
    getattr(builtins, "BaseExceptionGroup", None)
    or importlib.import_module("exceptiongroup").BaseExceptionGroup
)

PACKAGE_DIR = str(Path(__file__).parent)
PLUGGY_DIR = str(Path(pluggy.__file__).parent)

#: Whether pytest filters the frames of each sub-exception by ``__tracebackhide__`` itself.
FILTERS_GROUPS = hasattr(pytest_code, "_filter_tracebackexception")


def _is_ours(tb: types.TracebackType) -> bool:
    return tb.tb_frame.f_code.co_filename.startswith(PACKAGE_DIR)


def _throws_into_ours(tb: types.TracebackType) -> bool:
    """pluggy's frame that threw the exception into one of the plugin's hook wrappers."""
    code = tb.tb_frame.f_code
    following = tb.tb_next
    return (
        code.co_name == "_multicall"
        and code.co_filename.startswith(PLUGGY_DIR)
        and following is not None
        and _is_ours(following)
    )


def trim(tb: types.TracebackType | None) -> None:
    """Unlink the plugin's frames (and pluggy's throws into them) from ``tb``, in place."""
    kept = tb
    while kept is not None:
        following = kept.tb_next
        while following is not None and (_is_ours(following) or _throws_into_ours(following)):
            following = following.tb_next
        kept.tb_next = following
        kept = following


def trim_group(exc: BaseException, seen: set[int]) -> None:
    """Trim ``exc``'s traceback, its sub-exceptions' and their causes' and contexts'."""
    if id(exc) in seen:
        return
    seen.add(id(exc))
    trim(exc.__traceback__)
    related = [exc.__cause__, exc.__context__]
    if isinstance(exc, GROUP):
        related.extend(getattr(exc, "exceptions", ()))
    for each in related:
        if each is not None:
            trim_group(each, seen)


class TracebackTrim(HookHolder):
    """Trims a phase's exception group before its report is made (pytest before 9)."""

    name = "asynccheck-traceback-trim"

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        excinfo = call.excinfo
        if excinfo is not None and isinstance(excinfo.value, GROUP):
            trim_group(excinfo.value, set())
        return (yield)
