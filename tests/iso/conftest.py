"""Fixtures of the gridstatus end-to-end tests (tests/iso, run in .venv-iso)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_kit import free_port
from tests.feeds.conftest import Broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A plain Mosquitto of the test's own."""
    b = Broker(tmp_path, free_port(), "allow_anonymous true\n")
    b.start()
    yield b
    b.stop()
