"""Breakeven is exported per operating point: dispatch uses every point, not the nameplate."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from adapters.metrics.book import PnlBook
from adapters.metrics.collector import Metrics
from controller.decision.explain import group_states
from controller.domain import FleetSpec, Reading
from controller.status import SiteStatus


def test_each_point_of_a_curve_has_its_breakeven_gauge() -> None:
    # An S19j Pro with three power targets; adders 5 USD/MWh.
    curve = [(70.0, 1750.0), (90.0, 2430.0), (104.0, 3068.0)]
    h = np.array([[0.0] + [p[0] for p in curve]] * 3)
    w = np.array([[0.0] + [p[1] for p in curve]] * 3)
    fleet = FleetSpec(h, w, np.ones((3, 4), bool), np.zeros(3, dtype=np.int64), ("S19j Pro",))
    groups = group_states(
        fleet,
        np.array([3, 1, 0]),
        np.ones(3, dtype=bool),
        net_hashprice_usd_per_ph_day=49.0,
        opportunity_cost_usd_per_mwh=60.0,
        adders_usd_per_mwh=5.0,
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry, PnlBook())
    metrics.status(
        SiteStatus(
            site_id="s",
            at=1.0,
            price=Reading(60.0, 1.0, "t"),
            hashprice=Reading(50.0, 1.0, "t"),
            opportunity_cost_usd_per_mwh=60.0,
            net_hashprice_usd_per_ph_day=49.0,
            decision_reason="economics",
            failsafe_reason=None,
            models=(),
            load_mw=0.0048,
            nominal_mw=0.0092,
            spread_usd_per_mwh=None,
            ramp_limited=0,
            groups=groups,
        )
    )
    text = generate_latest(registry).decode()
    for th, watts in curve:
        expected = 49.0 * 1000 / (24 * watts / th) - 5.0  # EHP at the point, less adders
        line = (
            f'hashspark_point_breakeven_usd_per_mwh{{group="S19j Pro",power_w="{watts:g}",'
            f'site="s"}} '
        )
        (value,) = [ln[len(line) :] for ln in text.splitlines() if ln.startswith(line)]
        assert float(value) == pytest.approx(expected)
    # 70 TH/s at 1,750 W breaks even higher than the nameplate: it is the point to run at.
    assert 49.0 * 1000 / (24 * 1750 / 70) > 49.0 * 1000 / (24 * 3068 / 104)
