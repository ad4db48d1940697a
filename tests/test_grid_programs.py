"""Grid programs replayed on the site loop: demand response, base points, 4CP windows."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from adapters.metrics import Metrics, PnlBook
from controller.app.replay.runner import ReplayError, prepare, replay
from controller.config import load_config
from controller.decision.overrides import Override
from controller.domain import Reading
from controller.status import GridStatus, SiteStatus
from tests.scenario_kit import T0, write_scenario

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_grid_programs_are_all_met() -> None:
    report = replay(
        prepare(load_config(ROOT / "deploy/scenarios/ercot-hb-south-grid-programs.toml"))
    ).report
    assert report["engine"] == "loop"  # events make decisions depend on time
    events = {e["id"]: e for e in report["grid_events"]}
    assert set(events) == {"ers-0820", "bp-1", "bp-2", "bp-3", "4cp-0820"}
    assert all(e["compliant"] for e in events.values()), events
    dr = events["ers-0820"]
    nominal = report["summary"]["nominal_mw"]
    assert dr["target_mw"] <= nominal / 2  # half the site's load
    assert dr["max_mw"] <= 1.6 + 1e-9
    for bp in ("bp-1", "bp-2", "bp-3"):
        assert abs(events[bp]["max_mw"] - events[bp]["target_mw"]) <= 0.05


def test_the_fast_path_refuses_events_and_auto_uses_the_loop() -> None:
    inputs = prepare(load_config(ROOT / "deploy/scenarios/ercot-hb-south-grid-programs.toml"))
    with pytest.raises(ReplayError, match="grid events"):
        replay(inputs, engine="fast")


def test_demand_response_is_released_under_the_ramp_limit(tmp_path: Path) -> None:
    # One price a minute so that every minute is its own interval in the report.
    prices = [(T0 + 60 * i, 20.0) for i in range(40)]
    events = """
[[scenario.events]]
type = "demand_response"
id = "dr"
start = "2024-06-01T05:05:00Z"
deadline = "2024-06-01T05:06:00Z"
end = "2024-06-01T05:15:00Z"
max_mw = 0.0
"""
    path = write_scenario(
        tmp_path,
        prices,
        [(T0 - 3600, 50.0)],
        policy="ramp_up_mw_per_min = 0.0035",
        daemon="cycle_s = 60",
    )
    path.write_text(path.read_text().replace('name = "test"', 'name = "test"\n' + events))
    result = replay(prepare(load_config(path)))
    table = result.table
    mw = table.inputs.running_mw
    t0 = table.inputs.start
    during = (t0 >= T0 + 300) & (t0 < T0 + 900)
    assert (mw[during] == 0.0).all()
    after = mw[t0 >= T0 + 900]
    steps = after[1:] - after[:-1]
    assert (steps <= 0.0035 + 1e-9).all()  # at most one S21 (3.5 kW) a minute
    assert after[0] < after[-1] <= table.inputs.nominal_mw + 1e-9  # it does come back
    assert result.report["grid_events"][0]["compliant"] is True


def test_compliance_is_measured_and_exported() -> None:
    dr = Override("dr", "demand_response", start=0.0, end=100.0, max_mw=1.0, deadline=10.0)
    assert dr.compliant(5.0, now=5.0) is None  # before the deadline: not measured
    assert dr.compliant(0.9, now=20.0) is True
    assert dr.compliant(1.1, now=20.0) is False
    bp = Override("bp", "base_point", start=0.0, end=100.0, max_mw=2.0, tolerance_mw=0.1)
    assert bp.compliant(2.05, now=1.0) is True
    assert bp.compliant(1.8, now=1.0) is False

    registry = CollectorRegistry()
    metrics = Metrics(registry, PnlBook())
    metrics.status(
        SiteStatus(
            site_id="s",
            at=1.0,
            price=Reading(20.0, 1.0, "t"),
            hashprice=Reading(50.0, 1.0, "t"),
            opportunity_cost_usd_per_mwh=20.0,
            net_hashprice_usd_per_ph_day=49.0,
            decision_reason="base_point",
            failsafe_reason=None,
            models=(),
            load_mw=1.8,
            nominal_mw=3.0,
            spread_usd_per_mwh=None,
            ramp_limited=0,
            grid=(GridStatus("base_point", "bp", 2.0, False),),
        )
    )
    text = generate_latest(registry).decode()
    assert 'hashspark_grid_target_mw{program="base_point",site="s"} 2.0' in text
    assert 'hashspark_grid_compliant{program="base_point",site="s"} 0.0' in text
