"""The package's version, in a module of its own so the reports can name it without importing
the package's public face."""

from __future__ import annotations

__version__ = "0.1.0"
