"""The capacity plan's arithmetic, on figures chosen so the answer is known."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import capacity  # bench/ is not a package: found through the path above


def _figures(**one: Any) -> dict[str, Any]:
    run = {
        "workers": 1,
        "miners": 1000,
        "confirmed": 1000,
        "curtail_s": 10.0,
        "worker_cpu_s": 3.0,  # 3 ms per miner curtailed ...
        "observe_cpu_s": 2.0,  # ... + 2 ms per miner read: 200 miners/s per core
        "apply_bytes": 50_000,  # 50 B per miner
        "observe_bytes": 10_000,  # 10 B per miner
    }
    return {"runs": [run | one], "cores": 2}


def _row(lines: list[str], name: str) -> list[str]:
    row = next(line for line in lines if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in row.strip("|").split("|")[1:]]


def test_cores_follow_the_measured_cpu_per_miner() -> None:
    lines = capacity.plan(_figures())
    assert "**200 miners/s**" in lines[0]
    # 30,000 in 60 s = 500/s over 200 * 0.7 = 140 per core: 4 cores; 200,000: 3,334/140 = 24.
    assert _row(lines, "worker cores (= worker processes)") == ["4", "24"]
    assert _row(lines, "miners per worker") == ["7,500", "8,334"]
    # Per cycle: 30,000 x (2 x 10 + 50) B = 2.1 MB, 6 messages per shard.
    assert _row(lines, "broker, curtail event: messages / bytes per cycle")[0] == (
        "24 (+ 24 PUBACKs) / 2.1 MB"
    )


def test_twice_the_cpu_per_miner_needs_twice_the_cores() -> None:
    lines = capacity.plan(_figures(worker_cpu_s=8.0))  # 8 + 2 ms: 100 miners/s per core
    assert _row(lines, "worker cores (= worker processes)") == ["8", "48"]


def test_no_plan_without_confirmed_miners() -> None:
    assert "No capacity plan" in capacity.plan(_figures(confirmed=0))[0]
