"""A fixed pool payout delivered on hashrate (issue 17; ECONOMICS.md, "Pool payouts").

Worked example, by hand. Fleet: 5 S21 (200 TH/s, 3,500 W) and 5 S19j Pro (104 TH/s,
3,068 W); spot supply, f = 0.02, no adders, one 15-minute interval (dt_h = 0.25). Pool:
Hc = 1.1 PH/s at HPf = 55 USD/PH/day. Merit order: the 5 S21 fill [0, 1.0] PH/s; the first
S19j spans [1.0, 1.104]: 0.1 PH/s committed, 0.004 floating; the other S19j float.

A. HP 50 (HPn 49), shortfall max(HP - HPf, 0) = 0, so HPc = 55; P = 75.
   S21 EHP at 55: 55 * 1000 / (24 * 17.5) = 130.95 >= 75: run.
   The straddler: (100 * 55 + 4 * 49) / 24000 = 0.237333 USD/h over 3,068 W = 77.36 >= 75: run.
   The other S19j: 49 * 1000 / (24 * 29.5) = 69.21 < 75: off. (Without the pool the
   straddler too would be off: 69.21 < 75.)
   Delivered 1.104 PH/s; load 0.020568 MW.
   mining 49 * 1.104 * 0.25 / 24 = 0.563500; fixed rate (55 - 49) * 1.1 * 0.25 / 24 = 0.068750;
   shortfall 0; power 75 * 0.020568 * 0.25 = 0.385650; net 0.246600 -> 0.25 USD.
B. HP 60 (HPn 58.8), charge max(60 - 55, 0) = 5, HPc = 60; P = 150.
   S21 EHP at 60: 142.86 < 150: off; the straddler (100 * 60 + 4 * 58.8) / 24000 / 0.003068
   = 84.68 < 150: off. Delivered 0, short 1.1 PH/s.
   shortfall 5 * 1.1 * 0.25 / 24 = 0.057292; net -0.057292 -> -0.06 USD.
C. HP 50, a fixed penalty of 10 USD/PH/day, HPc = 65; P = 150.
   S21 EHP at 65: 65 * 1000 / 420 = 154.76 >= 150: run; straddler (100 * 65 + 4 * 49) / 24000
   / 0.003068 = 90.94 < 150: off. Delivered 1.0, short 0.1 PH/s.
   mining 49 * 1.0 * 0.25 / 24 = 0.510417; fixed 6 * 1.0 * 0.25 / 24 = 0.062500;
   shortfall 10 * 0.1 * 0.25 / 24 = 0.010417; power 150 * 0.0175 * 0.25 = 0.656250;
   net -0.093750 -> -0.09 USD (off, the site would have paid 10 * 1.1 * 0.25 / 24 = 0.114583).
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.ledger.sqlite import SqliteLedger
from adapters.metrics.book import PnlBook
from adapters.metrics.table import METRICS
from controller.accounting.instruments import PoolPayout, SpotSupply
from controller.accounting.money import booked
from controller.accounting.pool_payout import FIXED_RATE, SHORTFALL_CHARGE, pool_of
from controller.accounting.settlement import IntervalInputs, settle
from controller.app.replay.compare import compare
from controller.app.replay.runner import prepare, replay
from controller.config import ConfigError, load_config
from controller.decision.economics import best_point
from controller.decision.policy import PolicyParams, economic_points
from controller.domain import build_fleet
from controller.fast_replay import fast_replay
from controller.records import COMPONENTS, IntervalRecord
from tests.engine_kit import assert_engines_agree
from tests.golden import independent_pool as ref
from tests.scenario_kit import write_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "deploy/scenarios/ercot-hb-south-pool-delivered.toml"

FLEET = build_fleet(
    [("Antminer S21", 5, [(200.0, 3500.0)]), ("Antminer S19j Pro", 5, [(104.0, 3068.0)])]
)


def _interval(pool: PoolPayout, price: float, hp: float) -> tuple[np.ndarray, Any]:
    """Decide and settle one 15-minute interval of the worked example."""
    params = PolicyParams(supply=SpotSupply(), pool_fee=0.02, pool=pool)
    values, _, _ = economic_points(FLEET, params, price, hp)
    point = best_point(values, FLEET.valid)
    running = point > 0
    inputs = IntervalInputs(
        start=np.array([0.0]),
        end=np.array([900.0]),
        price_usd_per_mwh=np.array([price]),
        hashprice_usd_per_ph_day=np.array([hp]),
        running_mw=np.array([float(FLEET.power_at(point).sum()) / 1e6]),
        running_ph=np.array([float(FLEET.hashrate_th[np.arange(FLEET.size), point].sum()) / 1e3]),
        nominal_mw=FLEET.nominal_mw,
    )
    s = settle(inputs, supply=SpotSupply(), hedges=(pool,), pool_fee=0.02)
    return running, s


def _flows(s: Any) -> dict[str, float]:
    return {c: float(v[0]) for _, c, v in s.by_instrument}


def test_worked_example_a_the_committed_rate_runs_the_straddler() -> None:
    running, s = _interval(PoolPayout("pool", 1.1, 55.0), 75.0, 50.0)
    assert running.tolist() == [True] * 5 + [True] + [False] * 4
    assert round(float(s.mining_revenue_usd[0]), 6) == 0.563500
    assert round(_flows(s)[FIXED_RATE], 6) == 0.068750
    assert _flows(s)[SHORTFALL_CHARGE] == 0.0
    assert round(float(s.power_cost_usd[0]), 6) == 0.385650
    assert round(float(s.net_usd[0]), 2) == 0.25
    # Without the pool the straddler curtails: the contract changed the decision.
    values, _, _ = economic_points(FLEET, PolicyParams(SpotSupply(), pool_fee=0.02), 75.0, 50.0)
    assert (best_point(values, FLEET.valid) > 0).tolist() == [True] * 5 + [False] * 5


def test_worked_example_b_shortfall_at_the_index_gap() -> None:
    running, s = _interval(PoolPayout("pool", 1.1, 55.0), 150.0, 60.0)
    assert not running.any()
    assert round(_flows(s)[SHORTFALL_CHARGE], 6) == 0.057292
    assert round(float(s.net_usd[0]), 2) == -0.06


def test_worked_example_c_a_fixed_penalty_keeps_the_s21_mining() -> None:
    running, s = _interval(PoolPayout("pool", 1.1, 55.0, 10.0), 150.0, 50.0)
    assert running.tolist() == [True] * 5 + [False] * 5
    assert round(float(s.mining_revenue_usd[0]), 6) == 0.510417
    assert round(_flows(s)[FIXED_RATE], 6) == 0.062500
    assert round(_flows(s)[SHORTFALL_CHARGE], 6) == 0.010417
    assert round(float(s.power_cost_usd[0]), 6) == 0.656250
    assert round(float(s.net_usd[0]), 2) == -0.09
    assert float(s.forward_settlement_usd[0]) == pytest.approx(0.0625 - 0.0104166667)


def test_the_independent_code_reproduces_the_worked_example() -> None:
    fleet = [(5, 200.0, 3500.0), (5, 104.0, 3068.0)]
    kw: dict[str, Any] = {"fleet": fleet, "pool_fee": 0.02, "Hc_ph": 1.1, "HPf": 55.0}
    a = ref.settle(75.0, 50.0, 0.25, penalty=None, **kw)
    b = ref.settle(150.0, 60.0, 0.25, penalty=None, **kw)
    c = ref.settle(150.0, 50.0, 0.25, penalty=10.0, **kw)
    assert (a["running"], round(a["net_usd"], 2)) == (6.0, 0.25)
    assert (b["running"], round(b["net_usd"], 2)) == (0.0, -0.06)
    assert (c["running"], round(c["net_usd"], 2)) == (5.0, -0.09)


def test_outside_its_term_the_pool_neither_decides_nor_settles() -> None:
    pool = PoolPayout("pool", 1.1, 55.0, start=3600.0)
    running, s = _interval(pool, 75.0, 50.0)
    assert running.tolist() == [True] * 5 + [False] * 5
    assert _flows(s) == {FIXED_RATE: 0.0, SHORTFALL_CHARGE: 0.0}


def _independent_args() -> tuple[list[tuple[int, float, float]], dict[str, Any]]:
    raw = tomllib.loads(SCENARIO.read_text())
    site = raw["sites"][0]
    fleet = sorted(
        (
            (g["count"], g["curve"][0]["hashrate_th"], g["curve"][0]["power_w"])
            for g in site["miners"]
        ),
        key=lambda x: x[2] / x[1],
    )
    (pool,) = site["hedges"]
    base = SCENARIO.parent
    return fleet, {
        "price_csv": str((base / site["price_feed"]["path"]).resolve()),
        "hashprice_csv": str((base / site["hashprice_feed"]["path"]).resolve()),
        "fleet": fleet,
        "pool_fee": site["pool_fee"],
        "Hc_ph": pool["hashrate_ph"],
        "HPf": pool["price_usd_per_ph_day"],
        "penalty": pool.get("shortfall_penalty_usd_per_ph_day"),
        "start": datetime.fromisoformat(raw["scenario"]["start"]),
        "end": datetime.fromisoformat(raw["scenario"]["end"]),
    }


def test_the_scenario_matches_the_independent_computation_interval_by_interval() -> None:
    fleet, args = _independent_args()
    inputs = prepare(load_config(SCENARIO))
    table = replay(inputs, engine="fast").table
    rows = ref.per_interval(**args)
    assert len(rows) == table.inputs.start.size
    m = inputs.model.fleet
    watts = [w for _, _, w in fleet]
    for i, (start, expected, _) in enumerate(rows):
        assert table.inputs.start[i] == start.timestamp()
        got = [0] * len(fleet)
        for k in range(len(m.model_names)):
            w = float(m.nominal_power_w[m.model_index == k][0])
            got[watts.index(w)] = round(float(table.model_running_mw[i, k]) * 1e6 / w)
        assert got == expected, start.isoformat()
    flows = {c: v for _, c, v in table.settlement.by_instrument}
    for key, mine in (
        ("mined_mwh", table.settlement.mined_mwh),
        ("mining_revenue_usd", table.settlement.mining_revenue_usd),
        ("power_cost_usd", table.settlement.power_cost_usd),
        ("pool_fixed_rate_usd", flows[FIXED_RATE]),
        ("pool_shortfall_charge_usd", flows[SHORTFALL_CHARGE]),
        ("net_usd", table.settlement.net_usd),
    ):
        expected_total = sum(r[2][key] for r in rows)
        assert round(float(mine.sum()), 2) == round(expected_total, 2), key
    # The contract mattered: some intervals were short, and it paid over the window.
    assert float(flows[SHORTFALL_CHARGE].sum()) > 0.0
    assert float(flows[FIXED_RATE].sum()) > 0.0


def test_loop_and_fast_engines_agree_on_the_pool_over_the_scarcity_days() -> None:
    inputs = prepare(
        load_config(SCENARIO),
        start=datetime(2024, 8, 19, tzinfo=UTC),
        end=datetime(2024, 8, 23, tzinfo=UTC),
    )
    fast = replay(inputs, engine="fast").table
    loop = replay(inputs, engine="loop").table
    assert_engines_agree(fast, loop)
    fl = {c: v for _, c, v in fast.settlement.by_instrument}
    lo = {c: v for _, c, v in loop.settlement.by_instrument}
    for c in (FIXED_RATE, SHORTFALL_CHARGE):
        np.testing.assert_allclose(fl[c], lo[c], rtol=0, atol=1e-6, err_msg=c)
    # The scarcity evenings were short of the commitment (HP < HPf then: charged 0).
    assert (fast.inputs.running_ph < 100.0).any()
    assert float(fl[FIXED_RATE].sum()) > 0.0


def test_the_config_makes_the_pool_the_decisions() -> None:
    model = prepare(load_config(SCENARIO)).model
    assert model.params.pool == pool_of(model.hedges) == PoolPayout("pool-100ph", 100.0, 52.0)


def _scenario_with(tmp_path: Path, hedges: str) -> Path:
    return write_scenario(tmp_path, [(0.0, 30.0)], [(0.0, 50.0)], hedges=hedges)


POOL = (
    '[[sites.hedges]]\ntype = "pool_payout"\nid = "{id}"\nhashrate_ph = 1\n'
    "price_usd_per_ph_day = 50\n{extra}\n"
)


def test_two_pool_payouts_stop_at_start(tmp_path: Path) -> None:
    path = _scenario_with(tmp_path, POOL.format(id="a", extra="") + POOL.format(id="b", extra=""))
    with pytest.raises(ConfigError, match="at most one pool_payout per book"):
        load_config(path)


def test_a_negative_penalty_stops_at_start_with_its_key_path(tmp_path: Path) -> None:
    extra = "shortfall_penalty_usd_per_ph_day = -1"
    path = _scenario_with(tmp_path, POOL.format(id="a", extra=extra))
    with pytest.raises(ConfigError, match="shortfall_penalty_usd_per_ph_day"):
        load_config(path)


def test_metrics_book_the_shortfall_as_money_out() -> None:
    record = IntervalRecord(
        site_id="s",
        start=0.0,
        end=900.0,
        price_usd_per_mwh=30.0,
        price_source="p",
        hashprice_usd_per_ph_day=50.0,
        hashprice_source="h",
        running_mw=0.0,
        running_ph=0.0,
        nominal_mw=1.0,
        model_running_mw=(0.0,),
        model_running_ph=(0.0,),
        failsafe=None,
        components=tuple(0.0 for _ in COMPONENTS),
        instruments=(("pool", SHORTFALL_CHARGE, 0.5), ("pool", FIXED_RATE, -0.2)),
    )
    book = PnlBook()
    book.add(record)
    assert book.instrument[(f"hashspark_instrument_{SHORTFALL_CHARGE}", "s", "pool", "out")] == 0.5
    assert book.instrument[(f"hashspark_instrument_{FIXED_RATE}", "s", "pool", "out")] == 0.2
    assert f"hashspark_instrument_{SHORTFALL_CHARGE}" in {m.name for m in METRICS}


def test_deciding_with_the_pool_never_nets_less_in_any_interval() -> None:
    """The decision values the commitment exactly, so no interval of the recording nets less
    than the same contract settled on the dispatch that ignores it. Whole recording: 349.66
    USD more, 47.82 MWh more mined; both figures from the independent reference too."""
    inputs = prepare(load_config(SCENARIO))
    m = inputs.model
    nets = []
    for params in (m.params, replace(m.params, pool=None)):
        table = fast_replay(
            fleet=m.fleet,
            params=params,
            supply=m.supply,
            hedges=m.hedges,
            price=inputs.price,
            hashprice=inputs.hashprice,
            start=inputs.start,
            end=inputs.end,
        )
        nets.append((table.settlement.net_usd, float(table.settlement.mined_mwh.sum())))
    (with_pool, mwh_with), (without, mwh_without) = nets
    assert (with_pool >= without - 1e-9).all()
    _, args = _independent_args()
    ref_with = ref.per_interval(**args)
    ref_without = ref.per_interval(**args, decide_with_pool=False)
    ref_gain = sum(r[2]["net_usd"] for r in ref_with) - sum(r[2]["net_usd"] for r in ref_without)
    ref_mwh = sum(r[2]["mined_mwh"] for r in ref_with) - sum(r[2]["mined_mwh"] for r in ref_without)
    gain = float(with_pool.sum() - without.sum())
    assert round(gain, 2) == round(ref_gain, 2) == 349.66
    assert round(mwh_with - mwh_without, 2) == round(ref_mwh, 2) == 47.82


def test_the_ledger_keeps_the_pool_flows_of_worked_example_c(tmp_path: Path) -> None:
    """Worked example C's flows through the SQLite ledger's ``instrument_flows``."""
    _, s = _interval(PoolPayout("pool", 1.1, 55.0, 10.0), 150.0, 50.0)
    record = IntervalRecord(
        site_id="s",
        start=0.0,
        end=900.0,
        price_usd_per_mwh=150.0,
        price_source="p",
        hashprice_usd_per_ph_day=50.0,
        hashprice_source="h",
        running_mw=0.0175,
        running_ph=1.0,
        nominal_mw=FLEET.nominal_mw,
        model_running_mw=(0.0175, 0.0),
        model_running_ph=(1.0, 0.0),
        failsafe=None,
        components=tuple(float(getattr(s, c)[0]) for c in COMPONENTS),
        instruments=tuple((i, c, float(v[0])) for i, c, v in s.by_instrument),
    )
    ledger = SqliteLedger.open(tmp_path / "l.sqlite3", run_id="r", config_version="v", started_at=0)
    ledger.append(record)
    flows = ledger.instrument_totals("s")
    assert round(flows["pool", FIXED_RATE], 6) == 0.062500
    assert round(flows["pool", SHORTFALL_CHARGE], 6) == 0.010417
    assert round(ledger.totals("s")["net_usd"], 2) == -0.09
    assert list(ledger.records()) == [booked(record)]  # money to the micro-dollar
    ledger.close()


def test_compare_decides_each_book_with_its_own_pool_payout() -> None:
    """The delivered book dispatches as the scenario does (its net is the one the independent
    reference checks above); the cash-settled forward's book dispatches as spot does."""
    inputs = prepare(load_config(SCENARIO))
    books = {r.strategy.name: r for r in compare(inputs).results}
    scenario = replay(inputs, engine="fast").table
    delivered = books["spot+pool-delivered"].table
    np.testing.assert_array_equal(delivered.model_running_mw, scenario.model_running_mw)
    assert float(delivered.settlement.net_usd.sum()) == float(scenario.settlement.net_usd.sum())
    np.testing.assert_array_equal(
        books["spot+forward-cash"].table.model_running_mw, books["spot"].table.model_running_mw
    )
    assert (delivered.settlement.mined_mwh.sum()) > books["spot"].table.settlement.mined_mwh.sum()
