from __future__ import annotations

import pytest

#: Every inner run loads the plugin explicitly: autoloading is off (see ``pytester`` below).
ARGS = ("-p", "asynccheck", "--asynccheck")
ASYNCIO = ("-p", "asyncio")
ANYIO = ("-p", "anyio")


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """An inner pytest that loads only the plugins a test names, with stable output."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("COLUMNS", "100")
    for name in ("PY_COLORS", "NO_COLOR", "FORCE_COLOR", "CI", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    return pytester
