"""Benchmark: decide() for a 100,000-miner fleet with 3-point curves, per tick.

Prints the median and p95 per tick for the pure rule, with every policy feature on
(hysteresis, delays, dwell, ramp) and under a supply stack (two tranches, spot above),
beside a straightforward per-miner Python loop doing
the pure rule, and checks that both choose the same points.

    .venv/bin/python bench/bench_decide.py [--miners N] [--ticks T]
"""

from __future__ import annotations

import argparse
import statistics
import time
from zoneinfo import ZoneInfo

import numpy as np

from controller.accounting.instruments import SpotSupply
from controller.accounting.supply_stack import HoursBlock, ShapedQuantity, SupplyStack, Tranche
from controller.decision.policy import PolicyParams, PolicyState, Snapshot, decide
from controller.domain import FleetSpec, Reading, build_fleet
from controller.runtime import logs

# Three power targets per model (hashrate TH/s, power W), efficiency improving as power drops.
CURVES = {
    "Antminer S19j Pro": [(70.0, 1750.0), (90.0, 2430.0), (104.0, 3068.0)],
    "Antminer S19 XP": [(100.0, 1900.0), (125.0, 2550.0), (140.0, 3010.0)],
    "Antminer S21": [(140.0, 2150.0), (175.0, 2850.0), (200.0, 3500.0)],
    "Whatsminer M30S++": [(80.0, 2150.0), (100.0, 2900.0), (112.0, 3472.0)],
}


def make_fleet(n: int) -> FleetSpec:
    """n miners spread over four models."""
    per = n // len(CURVES)
    groups = [
        (m, per + (1 if i < n % len(CURVES) else 0), pts)
        for i, (m, pts) in enumerate(CURVES.items())
    ]
    return build_fleet(groups)


def naive_decide(fleet: FleetSpec, price: float, hashprice: float, pool_fee: float) -> list[int]:
    """The pure rule, one miner and one point at a time, the way one would first write it."""
    hpn = hashprice * (1 - pool_fee)
    hr = fleet.hashrate_th.tolist()
    pw = fleet.power_w.tolist()
    ok = fleet.valid.tolist()
    out = []
    for i in range(fleet.size):
        best, best_v = 0, 0.0
        for j in range(1, len(hr[i])):
            if not ok[i][j]:
                continue
            v = hr[i][j] * hpn / 24000.0 - pw[i][j] / 1e6 * price
            if v >= best_v:
                best, best_v = j, v
        out.append(best)
    return out


def time_ticks(fleet: FleetSpec, params: PolicyParams, prices: np.ndarray) -> list[float]:
    """Seconds per decide() over a price path, the fleet obeying each plan."""
    state = PolicyState.initial(fleet.size)
    point = fleet.top_point.copy()
    reachable = np.ones(fleet.size, dtype=bool)
    times = []
    for i, price in enumerate(prices):
        now = 1_700_000_000.0 + 15.0 * i
        snap = Snapshot(
            now, Reading(float(price), now, "bench"), Reading(50.0, now, "bench"), point, reachable
        )
        began = time.perf_counter()
        plan, state = decide(fleet, params, snap, state)
        times.append(time.perf_counter() - began)
        point = plan.point
    return times


def main() -> None:
    """Run and print."""
    logs.configure("warning")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--miners", type=int, default=100_000)
    ap.add_argument("--ticks", type=int, default=200)
    args = ap.parse_args()

    fleet = make_fleet(args.miners)
    rng = np.random.default_rng(7)
    prices = rng.choice([20.0, 45.0, 60.0, 75.0, 90.0, 120.0, 400.0], size=args.ticks)
    pure = PolicyParams(supply=SpotSupply(), pool_fee=0.02)
    full = PolicyParams(
        supply=SpotSupply(),
        pool_fee=0.02,
        hysteresis_usd_per_mwh=3.0,
        curtail_delay_s=30.0,
        resume_delay_s=60.0,
        min_run_s=300.0,
        min_off_s=120.0,
        ramp_up_mw_per_min=5.0,
    )
    print(
        f"decide(): {fleet.size:,} miners, 3-point curves "
        f"({fleet.hashrate_th.shape[1]} columns with off), {args.ticks} ticks"
    )
    # A supply stack: a capped 7x24 PPA and a 5x16 PPA under the fleet's load, spot above.
    nominal = fleet.nominal_mw
    stack = SupplyStack(
        (
            Tranche("7x24", nominal / 3, 40.0, 100.0),
            Tranche(
                "5x16",
                ShapedQuantity(
                    (HoursBlock((0, 1, 2, 3, 4), 6, 22, nominal / 3),), ZoneInfo("America/Chicago")
                ),
                52.0,
            ),
        )
    )
    stacked = PolicyParams(supply=stack, pool_fee=0.02)
    for name, params in (
        ("pure rule", pure),
        ("all policy features", full),
        ("supply stack (2+spot)", stacked),
    ):
        t = time_ticks(fleet, params, prices)
        print(
            f"  {name:<22} median {statistics.median(t) * 1e3:7.2f} ms   "
            f"p95 {np.percentile(t, 95) * 1e3:7.2f} ms   max {max(t) * 1e3:7.2f} ms"
        )

    # Correctness and the comparison: the naive loop on the same fleet and price.
    price = 75.0
    began = time.perf_counter()
    naive = naive_decide(fleet, price, 50.0, 0.02)
    naive_s = time.perf_counter() - began
    t_pure = time_ticks(fleet, pure, np.full(20, price))
    vec_s = statistics.median(t_pure)
    now = 1_700_000_000.0
    snap = Snapshot(
        now,
        Reading(price, now, "b"),
        Reading(50.0, now, "b"),
        fleet.top_point.copy(),
        np.ones(fleet.size, dtype=bool),
    )
    plan, _ = decide(fleet, pure, snap, PolicyState.initial(fleet.size))
    same = plan.point.tolist() == naive
    print(
        f"  per-miner Python loop  {naive_s * 1e3:7.1f} ms   vectorised {vec_s * 1e3:.2f} ms   "
        f"ratio {naive_s / vec_s:,.0f}x   same points: {same}"
    )
    if not same:
        raise SystemExit("vectorised and naive decisions differ")


if __name__ == "__main__":
    main()
