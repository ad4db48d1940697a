"""The supply stack: each miner's cost from the tranche its load falls in (ECONOMICS.md,
"Several tranches"), shared by the decision and the settlement, on both engines."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.accounting.instruments import FixedPpa, SpotSupply, VirtualPpa
from controller.accounting.settlement import IntervalInputs, settle, settle_down
from controller.accounting.supply_stack import (
    HoursBlock,
    ScheduledQuantity,
    ScheduleEntry,
    ShapedQuantity,
    SupplyStack,
    Tranche,
    mean_quantity_mw,
    quantity_mw,
    tranche_costs,
)
from controller.decision.economics import best_point, point_value_usd_per_h
from controller.decision.policy import PolicyParams, economic_points
from controller.decision.stack import merit_blocks, stack_groups
from controller.domain import FleetSpec, Recording
from controller.fast_replay import fast_replay

ROOT = Path(__file__).resolve().parents[1]
CAPPED_SMALL = ROOT / "deploy/scenarios/ercot-hb-south-capped-small.toml"
FIVE_BY_16 = ROOT / "deploy/scenarios/ercot-hb-south-5x16.toml"


def _fleet(groups: list[tuple[int, list[tuple[float, float]]]]) -> FleetSpec:
    """Groups of (count, curve [(TH/s, W), ...]); one model per group."""
    width = 1 + max(len(c) for _, c in groups)
    n = sum(k for k, _ in groups)
    h, w, valid = np.zeros((n, width)), np.zeros((n, width)), np.zeros((n, width), bool)
    model = np.zeros(n, dtype=np.int64)
    row = 0
    for g, (count, curve) in enumerate(groups):
        sl = slice(row, row + count)
        valid[sl, 0] = True
        for j, (th, watts) in enumerate(curve, start=1):
            h[sl, j], w[sl, j], valid[sl, j] = th, watts, True
        model[sl] = g
        row += count
    return FleetSpec(h, w, valid, model, tuple(f"m{g}" for g in range(len(groups))))


WORKED = [(600, [(104.0, 3068.0)]), (400, [(200.0, 3500.0)])]  # S19j Pro, S21


# --- ECONOMICS.md's worked check, to the cent -----------------------------------------


def test_worked_check_of_several_tranches() -> None:
    fleet = _fleet(WORKED)
    stack = SupplyStack((Tranche("ppa", 1.0, 45.0, 100.0),))
    params = PolicyParams(supply=stack, pool_fee=0.02)
    values, c, _ = economic_points(fleet, params, 300.0, 50.0)
    point = best_point(values, fleet.valid)
    s21 = point[600:] > 0
    assert int(s21.sum()) == 285  # the first 285 S21 (0.9975 MW) run on the PPA
    assert not (point[:600] > 0).any()  # every S19j Pro curtails at 300
    assert float(fleet.power_at(point).sum()) / 1e6 == pytest.approx(0.9975, abs=1e-12)
    assert c == 100.0  # the next watt is still the PPA's
    # The 286th S21 straddles 1.0 MW: 0.0025 MW at 100 and 0.001 MW at 300.
    blend = (0.0025 * 100 + 0.001 * 300) / 0.0035
    assert round(blend, 2) == 157.14
    ehp = 50 * 0.98 * 1000 / (24 * 17.5)
    assert round(ehp, 2) == 116.67
    assert blend > ehp

    # Settled for one 15-minute interval: the PPA's 0.0025 MW spare resells at 100.
    inputs = IntervalInputs(
        start=np.array([0.0]),
        end=np.array([900.0]),
        price_usd_per_mwh=np.array([300.0]),
        hashprice_usd_per_ph_day=np.array([50.0]),
        running_mw=np.array([0.9975]),
        running_ph=np.array([57.0]),
        nominal_mw=fleet.nominal_mw,
    )
    r = settle(inputs, supply=stack, hedges=(), pool_fee=0.02)
    assert round(float(r.mining_revenue_usd[0]), 2) == 29.09  # 49 * 57 * 0.25 / 24
    assert round(float(r.power_cost_usd[0]), 2) == 11.25  # 45 * 1.0 * 0.25
    assert round(float(r.resale_revenue_usd[0]), 4) == 0.0625  # 0.0025 * 100 * 0.25
    assert round(float(r.net_usd[0]), 2) == 17.91
    flows = {(i, k): float(v[0]) for i, k, v in r.by_instrument}
    assert flows == {
        ("ppa", "contract_energy_usd"): pytest.approx(11.25),
        ("ppa", "resale_revenue_usd"): pytest.approx(0.0625),
        ("spot", "spot_energy_usd"): 0.0,
    }


def test_load_above_the_tranches_is_bought_at_spot_and_booked_so() -> None:
    stack = SupplyStack((Tranche("a", 1.0, 40.0), Tranche("b", 0.5, 50.0, 80.0)))
    inputs = IntervalInputs(
        start=np.array([0.0]),
        end=np.array([3600.0]),
        price_usd_per_mwh=np.array([200.0]),
        hashprice_usd_per_ph_day=np.array([50.0]),
        running_mw=np.array([2.0]),
        running_ph=np.array([0.0]),
        nominal_mw=3.0,
    )
    r = settle(inputs, supply=stack, hedges=(), pool_fee=0.0)
    flows = {(i, k): float(v[0]) for i, k, v in r.by_instrument}
    # b (cost min(200, 80) = 80) fills first, then a (200), then 0.5 MW at spot.
    assert flows[("a", "contract_energy_usd")] == 40.0
    assert flows[("b", "contract_energy_usd")] == 25.0
    assert flows[("a", "resale_revenue_usd")] == 0.0
    assert flows[("b", "resale_revenue_usd")] == 0.0
    assert flows[("spot", "spot_energy_usd")] == 100.0  # 0.5 MW * 200 * 1 h
    assert float(r.power_cost_usd[0]) == 65.0
    assert float(r.resale_revenue_usd[0]) == -100.0  # ECONOMICS.md: the excess subtracts
    # A load inside the stack: the cheaper-to-resell tranche is used, the other resold.
    half = replace(inputs, running_mw=np.array([0.5]))
    flows = {
        (i, k): float(v[0])
        for i, k, v in settle(half, supply=stack, hedges=(), pool_fee=0.0).by_instrument
    }
    assert flows[("b", "resale_revenue_usd")] == 0.0
    assert flows[("a", "resale_revenue_usd")] == 200.0  # 1.0 MW * 200
    assert flows[("spot", "spot_energy_usd")] == 0.0


def test_a_one_tranche_stack_settles_as_the_fixed_ppa_of_the_table() -> None:
    rng = np.random.default_rng(7)
    n = 200
    start = np.arange(n, dtype=np.float64) * 900.0
    inputs = IntervalInputs(
        start=start,
        end=start + 900.0,
        price_usd_per_mwh=rng.uniform(-50, 500, n),
        hashprice_usd_per_ph_day=rng.uniform(30, 80, n),
        running_mw=rng.uniform(0, 4, n),
        running_ph=rng.uniform(0, 200, n),
        nominal_mw=4.0,
    )
    for cap in (None, 100.0):
        ppa = settle(inputs, supply=FixedPpa(2.0, 45.0, cap), hedges=(), pool_fee=0.02)
        one = settle(
            inputs, supply=SupplyStack((Tranche("ppa", 2.0, 45.0, cap),)), hedges=(), pool_fee=0.02
        )
        for name in ppa.component_names():
            np.testing.assert_allclose(getattr(one, name), getattr(ppa, name), rtol=0, atol=1e-9)
        # The table's formula: (Q - q) * price, min(P, S) on spare power when capped.
        spare = 2.0 - inputs.running_mw
        p = inputs.price_usd_per_mwh
        rp = p if cap is None else np.where(spare > 0, np.minimum(p, cap), p)
        np.testing.assert_allclose(ppa.resale_revenue_usd, spare * rp * 0.25, atol=1e-9)


# --- the decision: groups against a miner-by-miner walk -------------------------------


curves = st.lists(st.tuples(st.floats(50, 300), st.floats(1000, 4000)), min_size=1, max_size=3).map(
    lambda pts: sorted(pts, key=lambda x: x[1])
)


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(st.tuples(st.integers(1, 30), curves), min_size=1, max_size=4),
    tranches=st.lists(
        st.tuples(st.floats(0, 0.08), st.one_of(st.none(), st.floats(0, 300))),
        min_size=0,
        max_size=3,
    ),
    price=st.floats(-50, 600),
    hashprice=st.floats(20, 90),
)
def test_each_miner_pays_the_tranches_its_span_falls_in(
    groups: list[tuple[int, list[tuple[float, float]]]],
    tranches: list[tuple[float, float | None]],
    price: float,
    hashprice: float,
) -> None:
    fleet = _fleet(groups)
    stack = SupplyStack(
        tuple(Tranche(f"t{i}", q, 40.0, cap) for i, (q, cap) in enumerate(tranches))
    )
    params = PolicyParams(supply=stack)
    values, _, hpn = economic_points(fleet, params, price, hashprice)
    state = tranche_costs(stack, np.array([0.0]), np.array([price]))
    # Miner by miner: merit order by top-point J/TH, span from the top power before it.
    eff = fleet.nominal_power_w / fleet.nominal_hashrate_th
    order = np.lexsort((np.arange(fleet.size), fleet.model_index, fleet.class_of, eff))
    a = 0.0
    upper = state.upper_w[0]
    lower = np.concatenate([[0.0], upper[:-1]])
    cost = state.cost_usd_per_mwh[0]
    for m in order:
        for j in range(1, fleet.power_w.shape[1]):
            if not fleet.valid[m, j]:
                continue
            b = a + fleet.power_w[m, j]
            overlap = np.clip(np.minimum(b, upper) - np.maximum(a, lower), 0, None)
            expected = fleet.hashrate_th[m, j] * hpn / 24000 - float((overlap * cost).sum()) / 1e6
            assert values[m, j] == pytest.approx(expected, rel=1e-9, abs=1e-9)
        a += fleet.nominal_power_w[m]
    # The groups of every block partition it.
    blocks = merit_blocks(fleet)
    g = stack_groups(blocks, fleet.power_w[blocks.row], state)
    assert ((g.hi - g.lo).sum(axis=2) == blocks.count[None]).all()


@settings(max_examples=40, deadline=None)
@given(
    groups=st.lists(st.tuples(st.integers(1, 20), curves), min_size=1, max_size=3),
    price=st.floats(-50, 600),
    hashprice=st.floats(20, 90),
    cap=st.one_of(st.none(), st.floats(0, 300)),
)
def test_a_ppa_that_covers_the_fleet_decides_as_one_cost(
    groups: list[tuple[int, list[tuple[float, float]]]],
    price: float,
    hashprice: float,
    cap: float | None,
) -> None:
    fleet = _fleet(groups)
    ppa = FixedPpa(fleet.nominal_mw + 1.0, 45.0, cap)
    values, c, hpn = economic_points(fleet, PolicyParams(supply=ppa), price, hashprice)
    uniform = point_value_usd_per_h(fleet.hashrate_th, fleet.power_w, hpn, c)
    assert c == (price if cap is None else min(price, cap))
    np.testing.assert_array_equal(values, uniform)  # bit for bit: the old rule
    spot_values, spot_c, _ = economic_points(
        fleet, PolicyParams(supply=SpotSupply()), price, hashprice
    )
    assert spot_c == price
    np.testing.assert_array_equal(
        best_point(spot_values, fleet.valid),
        best_point(
            point_value_usd_per_h(fleet.hashrate_th, fleet.power_w, hpn, price), fleet.valid
        ),
    )


# --- shapes and schedules -------------------------------------------------------------


def test_a_5x16_shape_follows_central_time_across_daylight_saving() -> None:
    chicago = ZoneInfo("America/Chicago")
    shape = ShapedQuantity((HoursBlock((0, 1, 2, 3, 4), 6, 22, 2.0),), chicago)

    def at(y: int, mo: int, d: int, h: int, mi: int) -> float:
        t = datetime(y, mo, d, h, mi, tzinfo=chicago).timestamp()
        return float(quantity_mw(shape, np.array([t]))[0])

    assert at(2024, 7, 1, 6, 0) == 2.0  # Monday 06:00 CDT (11:00Z)
    assert at(2024, 7, 1, 5, 45) == 0.0
    assert at(2024, 7, 1, 21, 45) == 2.0
    assert at(2024, 7, 1, 22, 0) == 0.0
    assert at(2024, 7, 6, 12, 0) == 0.0  # Saturday
    assert at(2024, 12, 2, 6, 0) == 2.0  # Monday 06:00 CST (12:00Z)
    utc = datetime(2024, 12, 2, 11, 0, tzinfo=UTC).timestamp()  # 05:00 CST: off-peak
    assert float(quantity_mw(shape, np.array([utc]))[0]) == 0.0


def test_a_schedule_holds_each_entry_and_nothing_outside() -> None:
    sched = ScheduledQuantity((ScheduleEntry(100.0, 200.0, 1.5), ScheduleEntry(200.0, 300.0, 0.5)))
    got = quantity_mw(sched, np.array([0.0, 100.0, 199.0, 200.0, 299.0, 300.0]))
    assert got.tolist() == [0.0, 1.5, 1.5, 0.5, 0.5, 0.0]


def test_a_virtual_ppa_settles_in_cash_and_never_changes_dispatch() -> None:
    fleet = _fleet(WORKED)
    swap = VirtualPpa("vppa", 2.0, 50.0)
    p = np.array([20.0, 80, 150, 300, -10, 60, 900, 40])
    prices = Recording("p", Path("p.csv"), "price", np.arange(8, dtype=np.float64) * 900.0, p)
    hp = Recording("hp", Path("hp.csv"), "hashprice", np.array([0.0]), np.array([50.0]))
    params = PolicyParams(supply=SpotSupply(), pool_fee=0.02, price_max_age_s=1e9)
    plain, hedged = (
        fast_replay(
            fleet=fleet,
            params=params,
            supply=SpotSupply(),
            hedges=hedges,
            price=prices,
            hashprice=hp,
            start=0.0,
            end=7200.0,
        )
        for hedges in ((), (swap,))
    )
    np.testing.assert_array_equal(plain.inputs.running_mw, hedged.inputs.running_mw)
    swap_usd = (p - 50.0) * 2.0 * 0.25  # (P - K) * Q * dt_h, received
    np.testing.assert_allclose(
        plain.settlement.power_cost_usd - hedged.settlement.power_cost_usd, swap_usd
    )
    np.testing.assert_allclose(hedged.settlement.net_usd - plain.settlement.net_usd, swap_usd)
    (flow,) = hedged.settlement.by_instrument
    assert flow[:2] == ("vppa", "swap_settlement_usd")
    np.testing.assert_allclose(flow[2], swap_usd)


def test_a_down_span_books_each_tranche_on_its_mean_quantity() -> None:
    chicago = ZoneInfo("America/Chicago")
    on_peak = ShapedQuantity((HoursBlock((0, 1, 2, 3, 4), 6, 22, 2.0),), chicago)
    monthly = ScheduledQuantity(
        (ScheduleEntry(0.0, 3600.0 * 100, 1.0), ScheduleEntry(3600.0 * 100, 3600.0 * 400, 3.0))
    )
    week = datetime(2024, 7, 1, tzinfo=chicago).timestamp()  # a Monday, 00:00 CDT
    start, end = np.array([week + 600.0]), np.array([week + 7 * 86_400.0 + 600.0])
    assert float(mean_quantity_mw(on_peak, start, end)[0]) == pytest.approx(2.0 * 80 / 168)
    span = np.array([3600.0 * 50]), np.array([3600.0 * 150])
    assert float(mean_quantity_mw(monthly, *span)[0]) == pytest.approx(2.0)
    stack = SupplyStack((Tranche("peak", on_peak, 52.0), Tranche("m", 1.0, 40.0)))
    down = settle_down(start, end, supply=stack, hedges=())
    flows = {(i, c): float(v[0]) for i, c, v in down.by_instrument}
    assert flows[("peak", "contract_energy_usd")] == pytest.approx(52.0 * 2.0 * 80)
    assert flows[("m", "contract_energy_usd")] == pytest.approx(40.0 * 168)
    assert float(down.power_cost_usd[0]) == pytest.approx(52.0 * 2.0 * 80 + 40.0 * 168)
    assert float(down.mined_mwh[0]) == 0.0


def test_an_interval_across_a_shape_change_pays_for_what_was_delivered() -> None:
    chicago = ZoneInfo("America/Chicago")
    on_peak = ShapedQuantity((HoursBlock((0, 1, 2, 3, 4), 6, 22, 2.0),), chicago)
    t0 = datetime(2024, 7, 1, 5, 45, tzinfo=chicago).timestamp()  # Monday, 15 min before 06:00
    inputs = IntervalInputs(
        start=np.array([t0]),
        end=np.array([t0 + 1800.0]),
        price_usd_per_mwh=np.array([30.0]),
        hashprice_usd_per_ph_day=np.array([50.0]),
        running_mw=np.array([0.0]),
        running_ph=np.array([0.0]),
        nominal_mw=1.0,
    )
    stack = SupplyStack((Tranche("peak", on_peak, 52.0),))
    r = settle(inputs, supply=stack, hedges=(VirtualPpa("v", on_peak, 40.0),), pool_fee=0.0)
    flows = {(i, c): float(v[0]) for i, c, v in r.by_instrument}
    # 15 minutes off-peak, 15 minutes at 2.0 MW: a mean of 1.0 MW over half an hour.
    assert flows[("peak", "contract_energy_usd")] == pytest.approx(52.0 * 1.0 * 0.5)
    assert flows[("peak", "resale_revenue_usd")] == pytest.approx(30.0 * 1.0 * 0.5)
    assert flows[("v", "swap_settlement_usd")] == pytest.approx((30.0 - 40.0) * 1.0 * 0.5)
