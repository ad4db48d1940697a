"""Shared fixtures: where the repository is, and a valid scenario to derive bad ones from."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

_REPO_ROOT = Path(__file__).resolve().parent.parent
_BASELINE = _REPO_ROOT / "deploy" / "scenarios" / "ercot-hb-south-hedged.toml"


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Every test starts from structlog's defaults: a CLI run in-process configures a level
    filter (``logs.configure("warning")``) that would hide later tests' captured logs."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root, found from this file rather than hard-coded."""
    return _REPO_ROOT


@pytest.fixture(scope="session")
def recordings_dir(repo_root: Path) -> Path:
    """The directory of the shipped recordings."""
    return repo_root / "simulators" / "recordings"


@pytest.fixture(scope="session")
def baseline_toml(recordings_dir: Path) -> str:
    """The hedged scenario with its two recording paths made absolute, so it loads anywhere."""
    text = _BASELINE.read_text(encoding="utf-8")
    relative = '"../../simulators/recordings/'
    assert text.count(relative) == 2, "the baseline scenario no longer names two recordings"
    return text.replace(relative, f'"{recordings_dir.as_posix()}/')


Edit = tuple[str, str]
MakeScenario = Callable[..., Path]


@pytest.fixture
def make_scenario(baseline_toml: str, tmp_path: Path) -> MakeScenario:
    """Write the baseline with ``(old, new)`` edits applied to a file under ``tmp_path``.

    Each ``old`` must occur exactly once, so a drifted baseline fails loudly instead of
    silently producing a valid file that every "bad config" test would then accept.
    """

    def make(*edits: Edit, name: str = "scenario.toml", append: str = "") -> Path:
        text = baseline_toml
        for old, new in edits:
            assert text.count(old) == 1, f"expected exactly one {old!r} in the baseline"
            text = text.replace(old, new)
        path = tmp_path / name
        path.write_text(text + append, encoding="utf-8")
        return path

    return make
