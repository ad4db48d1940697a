"""The capacity plan: workers, cores and broker load for large sites, from measured figures.

``bench/suite.py`` renders it into docs/performance.md from what
``bench_sharded_dispatch.py --json`` measured in the same run; nothing in it is typed in
by hand except the assumptions, which are named (and printed) as such.

    .venv/bin/python bench/capacity.py FIGURES.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

SITES = (30_000, 200_000)
WINDOW_S = 60.0  #: every miner curtailed and confirmed within this
UTILISATION = 0.7  #: plan worker cores at most this busy (headroom for retries, GC, noise)
HARDWARE_LATENCY_S = 5.0  #: command to confirming read on real firmware (a 3 s stop + reads)
CYCLE_S = 15.0  #: the daemon's default cycle: two observe sweeps per cycle in steady state
MESSAGES_PER_SHARD_CYCLE = 6  #: observe, apply and observe: a plan and a report each


def plan(figures: dict[str, Any]) -> list[str]:
    """Markdown lines of the capacity plan."""
    runs = figures["runs"]
    one = next(r for r in runs if r["workers"] == 1)
    n = one["miners"]
    if not one["confirmed"] or not one["worker_cpu_s"]:
        return ["No capacity plan: the single-worker run confirmed no miner."]
    apply_cpu = one["worker_cpu_s"] / one["confirmed"]  # CPU-s per miner curtailed+confirmed
    observe_cpu = one["observe_cpu_s"] / n  # CPU-s per miner read
    per_miner = apply_cpu + observe_cpu  # one sweep to decide on, then the curtail
    per_core = 1.0 / per_miner
    apply_b = one["apply_bytes"] / n
    observe_b = one["observe_bytes"] / n
    lines = [
        f"From the single-worker run above ({n:,} LuxOS miners, one worker process):"
        f" {apply_cpu * 1e3:.2f} ms of worker CPU per miner curtailed and confirmed, and"
        f" {observe_cpu * 1e3:.2f} ms per miner read in an observe sweep, so one core"
        f" curtails and confirms **{per_core:,.0f} miners/s** (a sweep to decide on, then the"
        " commands), with the planner's and the broker's work on the other core.",
        "",
        f"Assumptions (not measured here): worker cores at most {UTILISATION:.0%} busy;"
        f" {HARDWARE_LATENCY_S:g} s from command to confirming read on real firmware (the"
        " simulator runs at 100x, so the run above measures CPU, not the miners' physics);"
        f" one worker process per core (asyncio: one core each); the daemon's {CYCLE_S:g} s"
        " cycle. Bytes are what the planner sent and received (each message crosses the"
        " broker once in and once out per subscriber).",
        "",
        "| | " + " | ".join(f"{s:,} miners" for s in SITES) + " |",
        "|---|" + "---|" * len(SITES),
    ]
    rows: dict[str, list[str]] = {
        "miners/s needed to curtail all within 60 s": [],
        "worker cores (= worker processes)": [],
        "miners per worker": [],
        "pyasic calls in flight per worker (concurrency)": [],
        "planner": [],
        "broker, curtail event: messages / bytes per cycle": [],
        "broker, curtail event: average over the 60 s": [],
        "broker, steady state (2 sweeps per cycle)": [],
        "largest message (one shard's report)": [],
    }
    for size in SITES:
        rate = size / WINDOW_S
        cores = max(1, math.ceil(rate / (per_core * UTILISATION)))
        per_worker = math.ceil(size / cores)
        in_flight = math.ceil(rate / cores * HARDWARE_LATENCY_S)
        event_b = size * (2 * observe_b + apply_b)
        messages = MESSAGES_PER_SHARD_CYCLE * cores
        steady = size * 2 * observe_b / CYCLE_S
        rows["miners/s needed to curtail all within 60 s"].append(f"{rate:,.0f}")
        rows["worker cores (= worker processes)"].append(f"{cores:,}")
        rows["miners per worker"].append(f"{per_worker:,}")
        rows["pyasic calls in flight per worker (concurrency)"].append(f"{in_flight:,}")
        rows["planner"].append("1 core (decide for 100,000 miners: see above)")
        rows["broker, curtail event: messages / bytes per cycle"].append(
            f"{messages:,} (+ {messages:,} PUBACKs) / {_size(event_b)}"
        )
        rows["broker, curtail event: average over the 60 s"].append(
            f"{messages / WINDOW_S:.1f} msg/s, {_size(event_b / WINDOW_S)}/s"
        )
        rows["broker, steady state (2 sweeps per cycle)"].append(
            f"{4 * cores / CYCLE_S:.1f} msg/s, {_size(steady)}/s"
        )
        rows["largest message (one shard's report)"].append(
            _size(per_worker * max(observe_b, apply_b))
        )
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    two = next((r for r in runs if r["workers"] == 2), None)
    if two is not None and two["confirmed"]:
        r1 = one["confirmed"] / one["curtail_s"]
        r2 = two["confirmed"] / two["curtail_s"]
        lines += [
            "",
            f"Measured scaling on this machine: 1 worker {r1:,.0f} miners/s, 2 workers"
            f" {r2:,.0f} miners/s ({r2 / r1:.2f}x). Here {figures.get('cores', '?')} cores are"
            " shared by the simulator, the broker, the planner and the workers, so this ratio"
            " is bounded by the host, not by the design: the plan scales the per-core figure.",
        ]
    return lines


def _size(n: float) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:,.1f} {unit}"
    return f"{n:,.0f} B"


def main() -> int:
    """Print the plan for a figures file."""
    print("\n".join(plan(json.loads(Path(sys.argv[1]).read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
