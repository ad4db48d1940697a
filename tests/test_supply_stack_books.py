"""A supply stack's settlement in the books: ledger flows per tranche, metrics, report lines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from adapters.ledger.sqlite import SqliteLedger
from adapters.metrics.book import PnlBook
from controller.accounting.accrual import IntervalAccumulator
from controller.accounting.instruments import VirtualPpa
from controller.accounting.supply_stack import SupplyStack, Tranche
from controller.app.replay.runner import prepare, replay
from controller.app.replay.summary import format_summary
from controller.config import load_config
from controller.decision.explain import explain
from controller.decision.policy import PolicyParams, PolicyState, Snapshot
from controller.domain import FleetSpec, Reading
from controller.site_model import SiteModel
from tests.metrics_kit import metrics_text

ROOT = Path(__file__).resolve().parents[1]
FIVE_BY_16 = ROOT / "deploy/scenarios/ercot-hb-south-5x16.toml"


def _site() -> SiteModel:
    h = np.array([[0.0, 200.0]] * 4)
    w = np.array([[0.0, 3500.0]] * 4)
    fleet = FleetSpec(h, w, np.ones((4, 2), bool), np.zeros(4, dtype=np.int64), ("S21",))
    stack = SupplyStack((Tranche("ppa", 0.007, 45.0, 100.0),))
    return SiteModel(
        "s", fleet, PolicyParams(supply=stack), stack, (VirtualPpa("vppa", 0.002, 50.0),)
    )


def test_tranche_flows_reach_the_ledger_and_the_metrics(tmp_path: Path) -> None:
    site = _site()
    acc = IntervalAccumulator(site)
    # Three miners (0.0105 MW) for one hour at P = 300: 0.007 MW on the PPA, 0.0035 at spot.
    acc.set_load(np.array([0.0105]), np.array([0.6]), 0.0)
    acc.open(
        0.0,
        (0.0, 0.0, False, False, (), (0.007,)),
        Reading(300.0, 0.0, "t"),
        Reading(50.0, 0.0, "t"),
        failsafe=None,
        opportunity_cost=300.0,
        running=3,
        curtailed=1,
    )
    record = acc.close(3600.0)
    assert record is not None
    flows = {(i, c): usd for i, c, usd in record.instruments}
    assert flows == {
        ("ppa", "contract_energy_usd"): 45.0 * 0.007,
        ("ppa", "resale_revenue_usd"): 0.0,
        ("spot", "spot_energy_usd"): 300.0 * 0.0035,
        ("vppa", "swap_settlement_usd"): (300.0 - 50.0) * 0.002,
    }
    assert record.component("power_cost_usd") == 45.0 * 0.007 - 250.0 * 0.002
    assert record.component("resale_revenue_usd") == -300.0 * 0.0035

    ledger = SqliteLedger.open(
        tmp_path / "ledger.sqlite3", run_id="r", config_version="v", started_at=0.0
    )
    ledger.append(record)
    assert ledger.instrument_totals("s") == flows
    (back,) = ledger.records("s")
    assert {(i, c): u for i, c, u in back.instruments} == flows
    ledger.close()

    book = PnlBook()
    book.add(back)
    text = metrics_text(book)
    assert (
        'hashspark_instrument_spot_energy_usd_total{direction="out",instrument="spot",site="s"}'
        " 1.05" in text
    )
    assert 'hashspark_instrument_contract_energy_usd_total{direction="out",instrument="ppa"' in text
    assert 'hashspark_instrument_swap_settlement_usd_total{direction="in",instrument="vppa"' in text


def test_the_replay_report_has_a_line_per_tranche_on_both_engines() -> None:
    inputs = prepare(
        load_config(FIVE_BY_16),
        start=datetime(2024, 8, 20, tzinfo=UTC),
        end=datetime(2024, 8, 21, tzinfo=UTC),
    )
    fast, loop = replay(inputs, engine="fast"), replay(inputs, engine="loop")
    rows = {(r["id"], r["component"]): r["usd"] for r in fast.report["per_instrument"]}
    assert set(rows) == {
        ("ppa-5x16", "contract_energy_usd"),
        ("ppa-5x16", "resale_revenue_usd"),
        ("ppa-7x24", "contract_energy_usd"),
        ("ppa-7x24", "resale_revenue_usd"),
        ("spot", "spot_energy_usd"),
    }
    # A Tuesday: 16 on-peak hours of 2.0 MW at 52, 24 hours of 1.0 MW at 40.
    assert rows[("ppa-5x16", "contract_energy_usd")] == 16 * 2.0 * 52
    assert rows[("ppa-7x24", "contract_energy_usd")] == 24 * 1.0 * 40
    for lp in loop.report["per_instrument"]:
        assert abs(lp["usd"] - rows[(lp["id"], lp["component"])]) < 1e-6
    # The flows add up to the P&L's power cost and resale.
    t = fast.report["totals"]
    contract = sum(v for (i, c), v in rows.items() if c == "contract_energy_usd")
    assert abs(contract - t["power_cost_usd"]) < 1e-6
    resale = sum(v for (i, c), v in rows.items() if c == "resale_revenue_usd")
    assert abs(resale - rows[("spot", "spot_energy_usd")] - t["resale_revenue_usd"]) < 1e-6
    text = format_summary(fast, None)
    assert "ppa-5x16.contract_energy_usd" in text
    assert "spot.spot_energy_usd" in text


def test_explain_names_what_each_span_of_the_load_costs() -> None:
    site = _site()
    snap = Snapshot(
        now=0.0,
        price=Reading(300.0, 0.0, "t"),
        hashprice=Reading(50.0, 0.0, "t"),
        observed_point=site.fleet.top_point.copy(),
        reachable=np.ones(site.fleet.size, dtype=bool),
    )
    result = explain(site.fleet, site.params, snap, PolicyState.initial(site.fleet.size))
    assert result.reason.rule == "economics"
    assert result.reason.detail.endswith(
        "with contract tranches each miner pays those its load falls in: "
        "ppa from 0 MW at 100.00, spot from 0.007 MW at 300.00"
    )
    assert int((result.plan.point > 0).sum()) == 2  # 0.007 MW: two S21 on the PPA
