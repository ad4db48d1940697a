"""The fleet files shown in the docs and shipped in deploy/ stay loadable."""

from __future__ import annotations

import re
from pathlib import Path

from simulators.miners.fleet_file import load_fleet_file

ROOT = Path(__file__).resolve().parents[2]


def test_docs_fleet_file_example_loads(tmp_path: Path) -> None:
    text = (ROOT / "docs/simulators.md").read_text()
    example = re.search(r"```toml\n(.*?)```", text, re.S)
    assert example is not None
    path = tmp_path / "fleet.toml"
    path.write_text(example.group(1))
    config = load_fleet_file(path)
    assert len(config.specs()) == 8
    assert config.fault[0].fault().latency_s == 1.5


def test_shipped_example_fleet_loads() -> None:
    config = load_fleet_file(ROOT / "deploy/fleets/mixed-small.toml")
    assert [s.family.value for s in config.specs()].count("braiins") == 4
