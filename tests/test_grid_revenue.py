"""Grid revenue: capacity awards, deployments and 4CP credits, settled against hand sums,
booked in the ledger and the metrics, reported, and the same on both replay engines."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from adapters.control.apply import to_override
from adapters.control.commands import _COMMAND
from adapters.control.persist import from_json, to_json
from adapters.ledger.memory import MemoryLedger
from adapters.ledger.sqlite import SqliteLedger
from adapters.metrics.book import PnlBook
from adapters.miners.simulated import InProcessFleet
from controller.accounting.accrual import IntervalAccumulator
from controller.accounting.grid_revenue import CapacityAward, FourCpCredit, settle_grid
from controller.accounting.instruments import SpotSupply
from controller.accounting.settlement import IntervalInputs, settle
from controller.app.assemble import assemble
from controller.app.replay.runner import prepare, replay
from controller.app.replay.summary import format_summary
from controller.catalog import SLEEP_POWER_W
from controller.config import load_config
from controller.config.grid import CapacityAwardConfig
from controller.config.load import HashsparkConfig
from controller.config.plausibility import contract_warnings
from controller.decision.overrides import Override
from controller.decision.policy import PolicyParams
from controller.domain import EpochS, FleetSpec, Reading, build_fleet
from controller.runtime.clocks.simulated import SimulatedClock
from controller.runtime.config_base import ConfigError
from controller.site_model import SiteModel
from tests.metrics_kit import metrics_text

ROOT = Path(__file__).resolve().parents[1]
ERS = ROOT / "deploy/scenarios/ercot-hb-south-ers.toml"
FIVE_BY_16 = ROOT / "deploy/scenarios/ercot-hb-south-5x16.toml"
Q = 900.0  # a quarter hour (s)


def _inputs(running_mw: list[float], nominal_mw: float = 3.0) -> IntervalInputs:
    n = len(running_mw)
    start = np.arange(n, dtype=np.float64) * Q
    return IntervalInputs(
        start=start,
        end=np.asarray(start + Q, dtype=np.float64),
        price_usd_per_mwh=np.full(n, 50.0),
        hashprice_usd_per_ph_day=np.full(n, 50.0),
        running_mw=np.array(running_mw),
        running_ph=np.zeros(n),
        nominal_mw=nominal_mw,
    )


def _flows(result: tuple[tuple[str, str, np.ndarray], ...]) -> dict[tuple[str, str], list[float]]:
    return {(i, c): [round(float(x), 9) for x in v] for i, c, v in result}


def test_a_capacity_award_and_its_deployment_settle_as_by_hand() -> None:
    award = CapacityAward(
        "ers", "ERS", 1.5, 12.0, deployment_price_usd_per_mwh=100.0, penalty_usd_per_mwh=50.0
    )
    # Deployed from interval 1 (called at 900 s, measured from the 1800 s deadline) to the end:
    # interval 1 is not measured yet, interval 2 complies (0.9 <= 1.0), interval 3 does not.
    dr = Override("dr", "demand_response", Q, 4 * Q, 1.0, deadline=2 * Q, award="ers")
    inputs = _inputs([2.5, 1.8, 0.9, 1.2])
    got = _flows(
        settle_grid(
            (award,),
            (dr,),
            start=inputs.start,
            end=inputs.end,
            running_mw=inputs.running_mw,
            nominal_mw=3.0,
        )
    )
    hour = 1.5 * 0.25 * 12.0  # 1.5 MW for a quarter hour at 12 USD/MW-h: 4.5
    assert got[("ers", "capacity_payment_usd")] == [hour, hour, hour, 0.0]  # forfeited
    assert got[("ers", "deployment_energy_usd")] == [0.0, 0.0, 1.5 * 0.25 * 100.0, 0.0]
    assert got[("ers", "nonperformance_penalty_usd")] == [0.0, 0.0, 0.0, 50.0 * 0.2 * 0.25]

    # In the net: revenue in, the penalty out; the other components untouched.
    plain = settle(inputs, supply=SpotSupply(), hedges=(), pool_fee=0.0)
    with_grid = settle(
        inputs, supply=SpotSupply(), hedges=(), pool_fee=0.0, grid=(award,), events=(dr,)
    )
    np.testing.assert_allclose(
        with_grid.net_usd - plain.net_usd, [4.5, 4.5, 4.5 + 37.5, -2.5], rtol=0, atol=1e-12
    )
    np.testing.assert_array_equal(with_grid.power_cost_usd, plain.power_cost_usd)


def test_only_the_overrides_that_name_the_award_deploy_it() -> None:
    award = CapacityAward("ers", "ERS", 1.0, 10.0, penalty_usd_per_mwh=50.0)
    inputs = _inputs([2.0])
    for other in (
        Override("dr", "demand_response", 0.0, Q, 1.0),  # no award
        Override("dr", "demand_response", 0.0, Q, 1.0, award="rrs"),  # another award
    ):
        got = _flows(
            settle_grid(
                (award,),
                (other,),
                start=inputs.start,
                end=inputs.end,
                running_mw=inputs.running_mw,
                nominal_mw=3.0,
            )
        )
        assert got[("ers", "capacity_payment_usd")] == [2.5]
        assert got[("ers", "nonperformance_penalty_usd")] == [0.0]


def test_an_award_pays_only_in_its_term() -> None:
    award = CapacityAward("rrs", "RRS", 2.0, 8.0, start=Q / 2, end=3 * Q)
    inputs = _inputs([0.0, 0.0, 0.0, 0.0])
    (flow, *_) = settle_grid(
        (award,), (), start=inputs.start, end=inputs.end, running_mw=inputs.running_mw, nominal_mw=3
    )
    assert [round(float(x), 9) for x in flow[2]] == [2.0, 4.0, 4.0, 0.0]  # 2 MW x 8 x 0.25 h


def test_a_4cp_window_books_a_quarter_of_the_annual_rate_on_the_reduction() -> None:
    credit = FourCpCredit("4cp", 60_000.0)
    # A two-hour window over intervals 1..8 (2 h); the site draws 0.2 MW of its 3.0 MW.
    window = Override("pk", "peak_window", Q, 9 * Q, 0.2)
    inputs = _inputs([3.0] + [0.2] * 8 + [3.0])
    (flow,) = settle_grid(
        (credit,),
        (window,),
        start=inputs.start,
        end=inputs.end,
        running_mw=inputs.running_mw,
        nominal_mw=3.0,
    )
    # 60,000 / 4 per MW reduced, averaged over the window: 15,000 x 2.8 MW = 42,000.
    assert flow[1] == "avoided_transmission_usd"
    assert float(flow[2].sum()) == pytest.approx(42_000.0, abs=1e-9)
    assert flow[2][0] == 0.0
    assert flow[2][-1] == 0.0
    halved = settle_grid(
        (FourCpCredit("4cp", 60_000.0, windows_per_peak=2),),
        (window,),
        start=inputs.start,
        end=inputs.end,
        running_mw=inputs.running_mw,
        nominal_mw=3.0,
    )
    assert float(halved[0][2].sum()) == pytest.approx(21_000.0, abs=1e-9)


def _site() -> SiteModel:
    fleet = FleetSpec(
        np.array([[0.0, 200.0]] * 2),
        np.array([[0.0, 3500.0]] * 2),
        np.ones((2, 2), bool),
        np.zeros(2, dtype=np.int64),
        ("S21",),
    )
    return SiteModel(
        "s",
        fleet,
        PolicyParams(supply=SpotSupply()),
        SpotSupply(),
        (),
        grid=(CapacityAward("ers", "ERS", 0.005, 12.0, penalty_usd_per_mwh=50.0),),
    )


def test_grid_flows_reach_the_ledger_and_the_metrics(tmp_path: Path) -> None:
    acc = IntervalAccumulator(_site())
    # One hour at 0.007 MW under a 0.0035 MW deployment: not complied with.
    dr = Override("dr", "demand_response", 0.0, 3600.0, 0.0035, award="ers")
    acc.set_load(np.array([0.007]), np.array([0.4]), 0.0)
    acc.open(
        0.0,
        (0.0, 0.0, False, False, ("dr",), ()),
        Reading(80.0, 0.0, "t"),
        Reading(50.0, 0.0, "t"),
        failsafe=None,
        opportunity_cost=80.0,
        running=2,
        curtailed=0,
        overrides=(dr,),
    )
    record = acc.close(3600.0)
    assert record is not None
    flows = {(i, c): usd for i, c, usd in record.instruments}
    assert flows == {
        ("ers", "capacity_payment_usd"): 0.0,
        ("ers", "deployment_energy_usd"): 0.0,
        ("ers", "nonperformance_penalty_usd"): pytest.approx(50.0 * 0.0035),
    }
    ledger = SqliteLedger.open(
        tmp_path / "ledger.sqlite3", run_id="r", config_version="v", started_at=0.0
    )
    ledger.append(record)
    (back,) = ledger.records("s")
    assert {(i, c): u for i, c, u in back.instruments} == {  # money to the micro-dollar
        k: round(v, 6) for k, v in flows.items()
    }
    ledger.close()

    book = PnlBook()
    book.add(back)
    text = metrics_text(book)
    assert (
        'hashspark_instrument_nonperformance_penalty_usd_total{direction="out",instrument="ers",'
        'site="s"} 0.175' in text
    )


def test_the_ers_scenario_books_the_award_the_deployment_and_the_4cp_estimate() -> None:
    inputs = prepare(load_config(ERS))
    result = replay(inputs, engine="auto")
    assert result.engine == "loop"  # grid events need the site loop
    rows = {(r["id"], r["component"]): r["usd"] for r in result.report["per_instrument"]}
    # 1.5 MW x 12 USD/MW-h over the 12 weekday hours 08-20 Central (13:00Z-01:00Z) in the
    # window; the deployment was met, so nothing is forfeited.
    assert rows[("ers-aug", "capacity_payment_usd")] == pytest.approx(1.5 * 12 * 12, abs=1e-9)
    assert rows[("ers-aug", "nonperformance_penalty_usd")] == 0.0
    # 4CP: 60,000 / 4 on the MW reduced from nominal, averaged over the two-hour window.
    table = result.table
    t0, t1 = table.inputs.start, table.inputs.end
    w0 = datetime(2024, 8, 20, 20, tzinfo=UTC).timestamp()
    w1 = datetime(2024, 8, 20, 22, tzinfo=UTC).timestamp()
    overlap_h = np.clip(np.minimum(t1, w1) - np.maximum(t0, w0), 0, None) / 3600
    reduced = table.inputs.nominal_mw - table.inputs.running_mw
    expected = 15_000.0 * float((reduced * overlap_h).sum()) / 2.0
    assert rows[("4cp", "avoided_transmission_usd")] == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(15_000.0 * (3.2408 - 0.2), abs=1.0)  # held ~0.2 MW
    # The net carries the grid revenue beside the other components.
    t = result.report["totals"]
    others = (
        t["mining_revenue_usd"]
        + t["resale_revenue_usd"]
        + t["call_premium_usd"]
        - t["call_payout_usd"]
        + t["forward_settlement_usd"]
        - t["power_cost_usd"]
    )
    grid = rows[("ers-aug", "capacity_payment_usd")] + rows[("4cp", "avoided_transmission_usd")]
    assert t["net_usd"] == pytest.approx(others + grid, abs=1e-6)
    text = format_summary(result, None)
    assert "grid revenue" in text
    assert "ers-aug.capacity_payment_usd" in text


def test_both_engines_book_a_capacity_award_alike() -> None:
    loaded = load_config(FIVE_BY_16)
    award = CapacityAwardConfig.model_validate(
        {
            "type": "capacity_award",
            "id": "ecrs",
            "program": "ECRS",
            "price_usd_per_mw_h": 9.5,
            "shape": {
                "timezone": "America/Chicago",
                "blocks": [{"days": ["tue", "wed"], "hours": [7, 19], "quantity_mw": 0.8}],
            },
        }
    )
    site = loaded.config.sites[0].model_copy(update={"grid_programs": (award,)})
    config = loaded.config.model_copy(update={"sites": (site,)})
    inputs = prepare(
        dataclasses.replace(loaded, config=config),
        start=datetime(2024, 8, 19, tzinfo=UTC),
        end=datetime(2024, 8, 22, tzinfo=UTC),
    )
    fast = replay(inputs, engine="fast").table
    loop = replay(inputs, engine="loop").table
    np.testing.assert_array_equal(fast.inputs.start, loop.inputs.start)
    flows = {}
    for name, table in (("fast", fast), ("loop", loop)):
        (pay,) = [v for i, c, v in table.settlement.by_instrument if c == "capacity_payment_usd"]
        flows[name] = pay
    np.testing.assert_allclose(flows["fast"], flows["loop"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.settlement.net_usd, loop.settlement.net_usd, atol=1e-6)
    # Tuesday and Wednesday, 12 hours each: 2 x 12 x 0.8 MW x 9.5 USD/MW-h.
    assert float(flows["fast"].sum()) == pytest.approx(2 * 12 * 0.8 * 9.5, abs=1e-9)
    # An award obliges availability; it does not change what the site runs.
    without = replay(
        prepare(
            loaded,
            start=datetime(2024, 8, 19, tzinfo=UTC),
            end=datetime(2024, 8, 22, tzinfo=UTC),
        ),
        engine="fast",
    ).table
    np.testing.assert_array_equal(without.model_running_mw, fast.model_running_mw)
    np.testing.assert_allclose(
        fast.settlement.net_usd - without.settlement.net_usd, flows["fast"], rtol=0, atol=1e-9
    )


def test_a_grid_event_naming_no_award_stops_at_start(tmp_path: Path) -> None:
    text = ERS.read_text().replace('award = "ers-aug"', 'award = "ers-sept"')
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("../../simulators", str(ROOT / "simulators")))
    with pytest.raises(ConfigError, match=r"scenario.events\[0\].award 'ers-sept'"):
        load_config(path)


def test_a_grid_program_may_not_share_a_hedge_id() -> None:
    doc = load_config(ERS).config.model_dump(mode="json")
    doc["sites"][0]["grid_programs"][1]["id"] = "call-200"
    with pytest.raises(ValueError, match="hedge and grid program ids must be unique: call-200"):
        HashsparkConfig.model_validate(doc)


def test_a_demand_response_command_names_the_award_it_deploys() -> None:
    cmd = _COMMAND.validate_json(
        b'{"command": "demand_response", "id": "dr-1", "issued_by": "qse", "max_mw": 1.0,'
        b' "deadline": "2024-08-20T14:10:00Z", "end": "2024-08-20T16:00:00Z",'
        b' "award": "ers-aug"}'
    )
    override = to_override(cmd, 0.0)
    assert override is not None
    assert override.award == "ers-aug"
    assert from_json(to_json(override)) == override  # restored after a restart


def test_an_award_larger_than_the_fleet_is_warned_about() -> None:
    doc = load_config(ERS).config.model_dump(mode="json")
    assert contract_warnings(HashsparkConfig.model_validate(doc)) == []
    doc["sites"][0]["grid_programs"][0]["shape"]["blocks"][0]["quantity_mw"] = 15.0
    (line,) = contract_warnings(HashsparkConfig.model_validate(doc))
    assert line == (
        "sites[0].grid_programs[0] (ers-aug): a capacity award of 15 MW, larger than the "
        "fleet's 3.24 MW nominal"
    )


class _Fixed:
    """One observation, made at ``at``, that holds (the site loop's intervals then split
    only where something else changes)."""

    def __init__(self, value: float, at: EpochS) -> None:
        self.name = "fixed"
        self._value = value
        self._at = at

    def latest(self, now: EpochS) -> Reading | None:
        return Reading(self._value, self._at, "fixed")

    def next_change_after(self, now: EpochS) -> EpochS | None:
        return None


async def _deployed_hour(
    sleep_w: float | None, award_id: str | None = "ers", deadline_s: float | None = None
) -> tuple[dict[tuple[str, str], float], list[float]]:
    """Three S19j Pro under a cap with room for two and 10 W, deploying an award, for one
    hour on the site loop: the award's flows as the ledger holds them, and the intervals'
    ends (s after the start)."""
    t0 = 1_750_000_000.0
    fleet = build_fleet([("Antminer S19j Pro", 3, [(104.0, 3068.0)])])
    clock = SimulatedClock(t0)
    ledger = MemoryLedger()
    award = CapacityAward("ers", "ERS", 0.003, 10.0, penalty_usd_per_mwh=100.0)
    sleep = None if sleep_w is None else np.full(3, sleep_w)
    loop = assemble(
        SiteModel(
            "s",
            fleet,
            PolicyParams(supply=SpotSupply(), price_max_age_s=7200, hashprice_max_age_s=7200),
            SpotSupply(),
            (),
            sleep_w=sleep,
            grid=(award,),
        ),
        clock=clock,
        price_feed=_Fixed(20.0, t0),
        hashprice_feed=_Fixed(55.0, t0),
        driver=InProcessFleet(fleet, clock),
        ledger=ledger,
        cycle_s=60,
    )
    cap_mw = (2 * 3068.0 + 10.0) / 1e6
    deadline = None if deadline_s is None else t0 + deadline_s
    loop.overrides.add(
        Override("dr", "demand_response", t0, t0 + 3600, cap_mw, deadline=deadline, award=award_id)
    )
    await loop.run(until=t0 + 3600)
    flows: dict[tuple[str, str], float] = {}
    for record in ledger.records:
        for i, c, usd in record.instruments:
            flows[i, c] = flows.get((i, c), 0.0) + usd
    return flows, [r.end - t0 for r in ledger.records]


async def test_the_books_measure_a_deployment_on_the_meter_as_the_live_gauge_does() -> None:
    # Without a sleep figure the two running miners comply: an hour of 0.003 MW at 10.
    met, _ = await _deployed_hour(None)
    assert met[("ers", "capacity_payment_usd")] == pytest.approx(0.03, abs=1e-12)
    assert met[("ers", "nonperformance_penalty_usd")] == 0.0
    # The sleeping miner's 22 W puts the meter 12 W over the cap: the payment is forfeited
    # and 12 W for an hour is charged at 100 USD/MWh.
    missed, _ = await _deployed_hour(SLEEP_POWER_W["Antminer S19j Pro"])
    assert missed[("ers", "capacity_payment_usd")] == 0.0
    assert missed[("ers", "nonperformance_penalty_usd")] == pytest.approx(100.0 * 12e-6, abs=1e-12)


def test_a_base_point_deployment_complies_within_its_band() -> None:
    award = CapacityAward("clr", "ECRS", 1.0, 10.0, penalty_usd_per_mwh=100.0)
    # Target 1.0 MW within 0.05: 0.97 complies, 0.90 is 0.05 MW short, 1.10 0.05 MW over.
    bp = Override("bp", "base_point", 0.0, 3 * Q, 1.0, tolerance_mw=0.05, award="clr")
    inputs = _inputs([0.97, 0.90, 1.10])
    got = _flows(
        settle_grid(
            (award,),
            (bp,),
            start=inputs.start,
            end=inputs.end,
            running_mw=inputs.running_mw,
            nominal_mw=3.0,
        )
    )
    assert got[("clr", "capacity_payment_usd")] == [2.5, 0.0, 0.0]
    assert got[("clr", "nonperformance_penalty_usd")] == [0.0, 1.25, 1.25]  # 0.05 x 0.25 x 100


async def test_a_deployment_closes_the_interval_at_its_deadline() -> None:
    # Measured from the deadline on: the interval before it is not judged on the load the
    # site was still shedding. Without an award nothing is measured, and nothing splits.
    sleep = SLEEP_POWER_W["Antminer S19j Pro"]
    flows, ends = await _deployed_hour(sleep, deadline_s=600.0)
    assert ends == [600.0, 3600.0]
    # Before the deadline the 0.003 MW award is paid (600 s); after it, forfeited.
    assert flows[("ers", "capacity_payment_usd")] == pytest.approx(0.03 / 6, abs=1e-12)
    assert flows[("ers", "nonperformance_penalty_usd")] == pytest.approx(
        100.0 * 12e-6 * 3000 / 3600, abs=1e-12
    )
    _, plain_ends = await _deployed_hour(sleep, award_id=None, deadline_s=600.0)
    assert plain_ends == [3600.0]
