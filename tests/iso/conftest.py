"""Fixtures of the gridstatus end-to-end tests (tests/iso, run in .venv-iso)."""

from __future__ import annotations

# A plain Mosquitto of the test's own: the same fixture as tests/feeds.
from tests.feeds.conftest import broker

__all__ = ["broker"]
