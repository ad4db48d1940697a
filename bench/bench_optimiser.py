"""Benchmark: the fleet optimiser for 100,000 miners with 5-point curves, per tick.

Beside it, on/off dispatch of the same fleet (nameplate only), and the optimiser with a
binding site power cap (the Lagrangian allocation). Also prints the net gain of power
targets over on/off on the hedged recording with 3-point curves (fast replay).

    .venv/bin/python bench/bench_optimiser.py [--miners N] [--ticks T]
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
from bench_decide import time_ticks  # same measurement as the decide() benchmark

from controller.accounting.instruments import SpotSupply
from controller.app.replay.runner import prepare, replay
from controller.config import load_config
from controller.decision.optimiser import onoff_fleet
from controller.decision.policy import PolicyParams
from controller.domain import FleetSpec, build_fleet
from controller.runtime import logs

ROOT = Path(__file__).resolve().parents[1]
# Five power targets per model (TH/s, W): efficiency improves as power drops, to a floor.
CURVES = {
    "Antminer S19j Pro": [
        (60.0, 1500.0),
        (75.0, 1950.0),
        (90.0, 2430.0),
        (98.0, 2750.0),
        (104.0, 3068.0),
    ],
    "Antminer S19 XP": [
        (90.0, 1700.0),
        (110.0, 2150.0),
        (125.0, 2550.0),
        (133.0, 2780.0),
        (140.0, 3010.0),
    ],
    "Antminer S21": [
        (120.0, 1800.0),
        (150.0, 2350.0),
        (175.0, 2850.0),
        (188.0, 3150.0),
        (200.0, 3500.0),
    ],
    "Whatsminer M30S++": [
        (70.0, 1850.0),
        (85.0, 2350.0),
        (100.0, 2900.0),
        (106.0, 3180.0),
        (112.0, 3472.0),
    ],
}


def fleet_of(n: int) -> FleetSpec:
    """n miners over four models."""
    per = n // len(CURVES)
    return build_fleet([(m, per, pts) for m, pts in CURVES.items()])


def main() -> None:
    """Run and print."""
    logs.configure("warning")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--miners", type=int, default=100_000)
    ap.add_argument("--ticks", type=int, default=100)
    args = ap.parse_args()
    fleet = fleet_of(args.miners)
    prices = np.random.default_rng(3).choice(
        [25.0, 60.0, 75.0, 90.0, 110.0, 300.0], size=args.ticks
    )
    pure = PolicyParams(supply=SpotSupply(), pool_fee=0.02)
    capped = replace(pure, site_cap_mw=fleet.nominal_mw * 0.5)
    print(f"optimiser: {fleet.size:,} miners, 5-point curves, {args.ticks} ticks (median, p95)")
    for name, f, params in (
        ("on/off dispatch", onoff_fleet(fleet), pure),
        ("optimiser (5 points)", fleet, pure),
        ("optimiser, cap at 50%", fleet, capped),
    ):
        t = time_ticks(f, params, prices)
        med, p95 = statistics.median(t) * 1e3, float(np.percentile(t, 95)) * 1e3
        print(f"  {name:<24} {med:7.2f} ms   {p95:7.2f} ms")
    report = replay(
        prepare(load_config(ROOT / "deploy/scenarios/ercot-hb-south-hedged-curves.toml"))
    ).report
    s = report["summary"]
    print(
        f"hedged recording, 3-point curves: net {report['totals']['net_usd']:,.2f} USD vs on/off "
        f"{s['onoff_net_usd']:,.2f} USD: gain {s['optimiser_gain_usd']:,.2f} USD"
    )


if __name__ == "__main__":
    main()
