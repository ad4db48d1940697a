"""The fleet optimiser under a power cap: feasible, near-optimal, efficient first."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.app.replay.runner import prepare, replay
from controller.config import load_config
from controller.decision.economics import (
    best_point,
    energy_hashprice_usd_per_mwh,
    point_value_usd_per_h,
)
from controller.decision.optimiser import allocate_under_cap, onoff_fleet
from controller.domain import FleetSpec, IntArray, build_fleet

S19_CURVE = [(70.0, 1750.0), (90.0, 2430.0), (104.0, 3068.0)]
S21_CURVE = [(140.0, 2150.0), (175.0, 2850.0), (200.0, 3500.0)]


def _value(fleet: FleetSpec, points: IntArray, hpn: float, c: float) -> float:
    rows = np.arange(fleet.size)
    return float(
        point_value_usd_per_h(
            fleet.hashrate_th[rows, points], fleet.power_w[rows, points], hpn, c
        ).sum()
    )


@settings(max_examples=60, deadline=None)
@given(
    n_s19=st.integers(0, 3),
    n_s21=st.integers(1, 3),
    cap_kw=st.floats(0.0, 20.0),
    price=st.floats(0.0, 150.0),
    hpn=st.floats(30.0, 80.0),
)
def test_feasible_and_within_one_miner_of_the_brute_force_optimum(
    n_s19: int, n_s21: int, cap_kw: float, price: float, hpn: float
) -> None:
    groups = [("S21", n_s21, S21_CURVE)] + ([("S19j Pro", n_s19, S19_CURVE)] if n_s19 else [])
    fleet = build_fleet(groups)
    # What decide() hands over: every miner's economic best, before the cap.
    wanted = best_point(
        point_value_usd_per_h(fleet.hashrate_th, fleet.power_w, hpn, price), fleet.valid
    )
    movable = np.ones(fleet.size, dtype=bool)
    got = allocate_under_cap(
        fleet,
        wanted,
        movable,
        cap_kw / 1000,
        net_hashprice_usd_per_ph_day=hpn,
        opportunity_cost_usd_per_mwh=price,
    )
    assert float(fleet.power_at(got).sum()) <= cap_kw * 1000 + 1e-6
    best = -np.inf
    for combo in itertools.product(range(4), repeat=fleet.size):
        pts = np.array(combo)
        if float(fleet.power_at(pts).sum()) <= cap_kw * 1000 + 1e-6:
            best = max(best, _value(fleet, pts, hpn, price))
    one_miner = max(0.0, float(point_value_usd_per_h(200.0, 3500.0, hpn, 0.0)))
    assert _value(fleet, got, hpn, price) >= best - one_miner - 1e-9


def test_a_cap_that_fits_changes_nothing() -> None:
    fleet = build_fleet([("S21", 4, S21_CURVE)])
    wanted = np.array([3, 0, 2, 1])
    got = allocate_under_cap(
        fleet,
        wanted,
        np.ones(4, dtype=bool),
        1.0,
        net_hashprice_usd_per_ph_day=50.0,
        opportunity_cost_usd_per_mwh=40.0,
    )
    assert got.tolist() == wanted.tolist()


def test_under_a_tight_cap_miners_underclock_rather_than_switch_off() -> None:
    # Four S21s want 14 kW; the cap allows 9 kW. Underclocked points earn more per watt, so
    # the optimum runs all four low (8.6 kW) instead of two at full power (7 kW).
    fleet = build_fleet([("S21", 4, S21_CURVE)])
    got = allocate_under_cap(
        fleet,
        fleet.top_point.copy(),
        np.ones(4, dtype=bool),
        0.009,
        net_hashprice_usd_per_ph_day=50.0,
        opportunity_cost_usd_per_mwh=40.0,
    )
    assert got.tolist() == [1, 1, 1, 1]


def test_force_run_fills_the_cap_even_when_mining_loses_money() -> None:
    fleet = build_fleet([("S21", 2, S21_CURVE), ("S19j Pro", 2, S19_CURVE)])
    got = allocate_under_cap(
        fleet,
        fleet.top_point.copy(),
        np.ones(4, dtype=bool),
        0.010,
        net_hashprice_usd_per_ph_day=50.0,
        opportunity_cost_usd_per_mwh=5000.0,
        force_run=True,
    )
    load_w = float(fleet.power_at(got).sum())
    assert 9_000 <= load_w <= 10_000  # filled close to the cap
    assert (got[:2] > 0).all()  # the efficient S21s run


def test_unreachable_miners_keep_their_power_inside_the_cap() -> None:
    fleet = build_fleet([("S21", 3, S21_CURVE)])
    movable = np.array([False, True, True])
    got = allocate_under_cap(
        fleet,
        fleet.top_point.copy(),
        movable,
        0.005,
        net_hashprice_usd_per_ph_day=50.0,
        opportunity_cost_usd_per_mwh=40.0,
    )
    assert got[0] == 3  # untouched
    assert float(fleet.power_at(got).sum()) <= 5000.0 + 1e-6


def test_a_price_band_where_underclocking_beats_full_power_and_off() -> None:
    fleet = build_fleet([("S19j Pro", 1, S19_CURVE)])
    hpn = 49.0
    ehp_top = float(energy_hashprice_usd_per_mwh(hpn, 3068 / 104))
    ehp_low = float(energy_hashprice_usd_per_mwh(hpn, 1750 / 70))
    assert ehp_low > ehp_top
    for price in np.linspace(ehp_top + 1.0, ehp_low - 1.0, 7):
        values = point_value_usd_per_h(fleet.hashrate_th[0], fleet.power_w[0], hpn, float(price))
        chosen = int(np.argmax(values))
        assert chosen in (1, 2), price  # a power target, neither off (0) nor full power (3)
        assert values[chosen] > max(values[0], values[3])


def test_onoff_fleet_keeps_only_the_top_point() -> None:
    fleet = build_fleet([("S19j Pro", 2, S19_CURVE)])
    onoff = onoff_fleet(fleet)
    assert onoff.hashrate_th.shape == (2, 2)
    assert onoff.power_w[:, 1].tolist() == [3068.0, 3068.0]


def test_power_targets_beat_on_off_dispatch_on_the_hedged_recording() -> None:
    root = Path(__file__).resolve().parents[1]
    report = replay(
        prepare(load_config(root / "deploy/scenarios/ercot-hb-south-hedged-curves.toml"))
    ).report
    s = report["summary"]
    assert report["engine"] == "fast"
    assert s["optimiser_gain_usd"] == report["totals"]["net_usd"] - s["onoff_net_usd"]
    assert s["optimiser_gain_usd"] > 0
    # The on/off baseline of the curves fleet is exactly the one-point hedged scenario.
    one_point = replay(
        prepare(load_config(root / "deploy/scenarios/ercot-hb-south-hedged.toml"))
    ).report
    assert abs(s["onoff_net_usd"] - one_point["totals"]["net_usd"]) < 1e-6
