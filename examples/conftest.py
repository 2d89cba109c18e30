"""Fixtures for the tutorial's tests: the examples package on the path, and a local httpbin."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.httpbin import serve

#: The tutorial's delays are seconds; its tests run them at a fifth of that.
SCALE = 0.2


@pytest.fixture(scope="session")
def httpbin() -> Iterator[str]:
    """Base URL of a local httpbin stand-in whose delays are scaled by ``SCALE``."""
    with serve(scale=SCALE) as base_url:
        yield base_url
