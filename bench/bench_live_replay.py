"""Benchmark: the live-path replay's speed, in simulated seconds per wall second.

Replays the hedged scenario's ``scarcity-2024-08-20`` window (36 h, 144 price intervals,
the fleet curtailed and resumed several times) with N simulated LuxOS miners commanded
through pyasic, and prints the wall time, the speed and the cost of a cycle.

    .venv/bin/python bench/bench_live_replay.py [--miners 1000] [--window NAME] [--speed 10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

from controller.app.replay.live import DEFAULT_SPEED, LiveOptions, replay_live
from controller.app.replay.runner import prepare, with_fleet_size
from controller.config import load_config
from controller.domain import EpochS
from controller.runtime import logs

SCENARIO = Path(__file__).resolve().parents[1] / "deploy/scenarios/ercot-hb-south-hedged.toml"
IP_START = "127.51.16.1"  # the live path's share of loopback is 127.50/16 and 127.51/16


def main() -> None:
    """Run and print."""
    logs.configure("warning")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--miners", type=int, default=1000)
    ap.add_argument("--window", default="scarcity-2024-08-20")
    ap.add_argument("--speed", type=float, default=DEFAULT_SPEED)
    ap.add_argument("--family", default="luxos")
    args = ap.parse_args()

    inputs = with_fleet_size(prepare(load_config(SCENARIO), window=args.window), args.miners)
    stamps: list[float] = []
    began = time.perf_counter()

    def progress(now: EpochS, net_usd: float) -> None:
        del net_usd
        stamps.append(time.perf_counter())
        if len(stamps) % 20 == 0:  # stderr: the suite copies only stdout into the page
            done = (now - inputs.start) / (inputs.end - inputs.start)
            print(f"  {100 * done:5.1f}% after {stamps[-1] - began:,.0f} s", file=sys.stderr)

    load_before = os.getloadavg()[0]
    result = asyncio.run(
        replay_live(
            inputs,
            LiveOptions(speed=args.speed, family=args.family, ip_start=IP_START),
            progress,
        )
    )
    wall = time.perf_counter() - began
    live = result.report["live_path"]
    span = inputs.end - inputs.start
    cycles = [b - a for a, b in itertools.pairwise(stamps)]
    print(
        f"live-path replay: {SCENARIO.name} window {args.window} "
        f"({span / 3600:,.2f} h, {result.report['totals']['intervals']} intervals), "
        f"{live['miners']:,} simulated {live['family']} miners through pyasic, "
        f"clock {args.speed:g}x while running"
    )
    print(f"  start, discovery, first cycle  {stamps[0] - began:8.1f} s")
    print(f"  whole replay (wall)            {wall:8.1f} s")
    print(f"  speed                          {span / wall:8,.0f} simulated s per wall s")
    print(
        f"  cycles                         {live['cycles']:8,}   "
        f"median {statistics.median(cycles):.2f} s, max {max(cycles):.2f} s wall"
    )
    c = live["commands"]
    print(f"  commands sent / applied        {c['sent']:8,} / {c['applied']:,}")
    print(f"  readings published late        {live['late_readings']:8,}")
    print(f"  load average (1 min) before    {load_before:8.2f}   after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
