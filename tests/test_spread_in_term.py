"""The hashspark spread counts only forwards in their term, with the share it covers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from adapters.metrics.book import PnlBook
from adapters.metrics.collector import Metrics
from controller.accounting.instruments import FixedPpa, HashrateForward
from controller.app.replay.runner import prepare, replay
from controller.app.replay.summary import format_summary
from controller.config import load_config
from controller.decision.policy import PolicyParams
from controller.domain import FleetSpec, Reading
from controller.site_model import SiteModel
from controller.status import SiteStatus

ROOT = Path(__file__).resolve().parents[1]
HEDGED = ROOT / "deploy/scenarios/ercot-hb-south-hedged.toml"
DAY = 86_400.0
T = 1_720_000_000.0  # 2024-07-03: instants are real epoch seconds


def _site(*forwards: HashrateForward) -> SiteModel:
    h = np.array([[0.0, 200.0]] * 10)  # 2 PH/s nominal
    w = np.array([[0.0, 3500.0]] * 10)
    fleet = FleetSpec(h, w, np.ones((10, 2), bool), np.zeros(10, dtype=np.int64), ("S21",))
    ppa = FixedPpa(0.035, 45.0)
    return SiteModel("s", fleet, PolicyParams(supply=ppa, pool_fee=0.02), ppa, forwards)


def test_a_forward_counts_only_in_its_term() -> None:
    site = _site(HashrateForward("f", 1.0, 50.0, start=T, end=T + 10 * DAY))
    inside = site.spread(T + 5 * DAY)
    assert inside is not None  # at an instant of a real epoch (1e-9 s is lost there)
    ehp = 50 * 0.98 * 1000 / (24 * 17.5)  # 116.67
    assert inside.usd_per_mwh == pytest.approx(ehp - 45.0)
    assert inside.hedged_share == pytest.approx(0.5)
    assert inside.margin_floor_usd_per_mwh == pytest.approx(0.5 * ehp - 45.0)
    assert site.spread(T + 10 * DAY) is None  # the term is over: nothing is locked in
    # Over a window half in term: the same price, half the share.
    half = site.spread(T + 5 * DAY, T + 15 * DAY)
    assert half is not None
    assert half.hedged_share == pytest.approx(0.25)
    # Two forwards, one expired: only the live one's price counts.
    two = _site(
        HashrateForward("old", 1.0, 80.0, start=T, end=T + DAY),
        HashrateForward("new", 0.5, 40.0, start=T + DAY),
    )
    now = two.spread(T + 2 * DAY)
    assert now is not None
    assert now.usd_per_mwh == pytest.approx(40 * 0.98 * 1000 / (24 * 17.5) - 45.0)
    assert now.hedged_share == pytest.approx(0.25)


def test_the_gauges_show_the_share_and_the_floor() -> None:
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
            decision_reason="economics",
            failsafe_reason=None,
            models=(),
            load_mw=1.8,
            nominal_mw=3.0,
            spread_usd_per_mwh=48.3,
            ramp_limited=0,
            hedged_share=0.49,
            margin_floor_usd_per_mwh=0.86,
        )
    )
    text = generate_latest(registry).decode()
    assert 'hashspark_hedged_share{site="s"} 0.49' in text
    assert 'hashspark_margin_floor_usd_per_mwh{site="s"} 0.86' in text


def test_the_replay_says_what_the_spread_covers_and_drops_an_expired_forward() -> None:
    inputs = prepare(load_config(HEDGED))
    result = replay(inputs, engine="fast")
    s = result.typed_report.summary
    assert s.hashspark_spread_usd_per_mwh == pytest.approx(48.30, abs=0.005)
    assert s.hedged_share == pytest.approx(70 / 142.4)
    assert s.margin_floor_usd_per_mwh == pytest.approx(0.86, abs=0.005)
    assert "on the 49% of the fleet's hashrate sold forward" in format_summary(result, None)
    # The forward's term ends before the window: the spread is not claimed.
    ended = datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    hedges = tuple(
        replace(h, end=ended) if isinstance(h, HashrateForward) else h for h in inputs.model.hedges
    )
    expired = replace(inputs, model=replace(inputs.model, hedges=hedges))
    summary = replay(expired, engine="fast").typed_report.summary
    assert summary.hashspark_spread_usd_per_mwh is None
    assert summary.hedged_share is None
