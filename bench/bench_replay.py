"""Benchmark: fast replay of the hedged scenario (28,796 intervals, 1,000 miners).

Prints load (config + both recordings), the core (decide and settle every interval),
and the report, as the median of several runs; and, once, the site loop on the
simulated clock over the same scenario for comparison.

    .venv/bin/python bench/bench_replay.py [--runs N] [--no-loop]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from controller.accounting.report import build_report
from controller.app.replay.runner import prepare, run_fast, run_loop
from controller.config import load_config
from controller.runtime import logs

SCENARIO = Path(__file__).resolve().parents[1] / "deploy/scenarios/ercot-hb-south-hedged.toml"


def main() -> None:
    """Run and print."""
    logs.configure("warning")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--no-loop", action="store_true", help="skip the site-loop comparison")
    args = ap.parse_args()

    load_s, core_s, report_s, total_s = [], [], [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        inputs = prepare(load_config(SCENARIO))
        t1 = time.perf_counter()
        table = run_fast(inputs)
        t2 = time.perf_counter()
        build_report(
            table,
            inputs.model.fleet,
            pool_fee=0.02,
            ppa_price_usd_per_mwh=45.0,
            forward_usd_per_ph_day=52.0,
        )
        t3 = time.perf_counter()
        load_s.append(t1 - t0)
        core_s.append(t2 - t1)
        report_s.append(t3 - t2)
        total_s.append(t3 - t0)
    n = int(table.inputs.start.size)
    miners = inputs.model.fleet.size
    print(
        f"fast replay: {SCENARIO.name}, {n:,} intervals, {miners:,} miners, "
        f"median of {args.runs} runs"
    )
    print(f"  load config + recordings  {statistics.median(load_s) * 1e3:8.1f} ms")
    print(
        f"  decide + settle (core)    {statistics.median(core_s) * 1e3:8.1f} ms"
        f"   ({n * miners / statistics.median(core_s) / 1e6:,.0f} M miner-intervals/s)"
    )
    print(f"  report                    {statistics.median(report_s) * 1e3:8.1f} ms")
    print(
        f"  total                     {statistics.median(total_s) * 1e3:8.1f} ms   (goal: 2,000 ms)"
    )
    if not args.no_loop:
        t0 = time.perf_counter()
        loop_table = asyncio.run(run_loop(inputs))
        loop_s = time.perf_counter() - t0
        ratio = loop_s / statistics.median(total_s)
        print(
            f"  site loop on the simulated clock (cycle {inputs.cycle_s:.0f} s): {loop_s:6.2f} s"
            f"   ({loop_table.inputs.start.size:,} intervals; fast path {ratio:,.0f}x faster)"
        )


if __name__ == "__main__":
    main()
