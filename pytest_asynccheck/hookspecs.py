"""Hooks other plugins and conftest files implement to extend pytest-asynccheck."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._events import Detector
    from ._options import Settings


@pytest.hookspec
def pytest_asynccheck_detectors(config: pytest.Config, settings: Settings) -> list[Detector]:
    """Return extra detectors to run in the check session (called once, at configure time)."""
    raise NotImplementedError
