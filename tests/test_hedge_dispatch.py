"""Hedge-aware dispatch: a capped PPA resells at min(P, S), so S21s mine through spikes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from controller.accounting.instruments import FixedPpa
from controller.app.replay.runner import ReplayInputs, prepare
from controller.config import load_config
from controller.decision.economics import energy_hashprice_usd_per_mwh, net_hashprice
from controller.fast_replay import fast_replay
from controller.records import IntervalTable

ROOT = Path(__file__).resolve().parents[1]


def _run(ignore_cap: bool) -> tuple[IntervalTable, ReplayInputs]:
    inputs = prepare(load_config(ROOT / "deploy/scenarios/ercot-hb-south-capped.toml"))
    m = inputs.model
    assert isinstance(m.supply, FixedPpa)
    assert m.supply.resale_cap_usd_per_mwh == 100.0
    # The naive dispatch decides as if resale earned spot; settlement still applies the cap.
    decide_with = (
        replace(m.params, supply=FixedPpa(m.supply.quantity_mw, m.supply.price_usd_per_mwh))
        if ignore_cap
        else m.params
    )
    table = fast_replay(
        fleet=m.fleet,
        params=decide_with,
        supply=m.supply,
        hedges=m.hedges,
        price=inputs.price,
        hashprice=inputs.hashprice,
        start=inputs.start,
        end=inputs.end,
    )
    return table, inputs


def test_s21s_keep_mining_above_the_cap_where_their_energy_hashprice_exceeds_it() -> None:
    table, inputs = _run(ignore_cap=False)
    t = table.inputs
    s21 = inputs.model.fleet.model_names.index("Antminer S21")
    s19 = inputs.model.fleet.model_names.index("Antminer S19j Pro")
    ehp_s21 = energy_hashprice_usd_per_mwh(net_hashprice(t.hashprice_usd_per_ph_day, 0.02), 17.5)
    above_cap = (t.price_usd_per_mwh > 100.0) & (ehp_s21 > 100.0)
    assert above_cap.sum() > 50  # the recording has many such intervals
    s21_nominal = 400 * 3500 / 1e6
    np.testing.assert_allclose(table.model_running_mw[above_cap, s21], s21_nominal)
    # S19j Pros (EHP about 70) are off whenever resale is worth more than they earn.
    ehp_s19 = energy_hashprice_usd_per_mwh(
        net_hashprice(t.hashprice_usd_per_ph_day, 0.02), 3068 / 104
    )
    off = np.minimum(t.price_usd_per_mwh, 100.0) > ehp_s19
    assert np.all(table.model_running_mw[off, s19] == 0.0)


def test_cap_aware_dispatch_beats_one_that_ignores_the_cap() -> None:
    aware, _ = _run(ignore_cap=False)
    naive, _ = _run(ignore_cap=True)
    aware_net = float(aware.settlement.net_usd.sum())
    naive_net = float(naive.settlement.net_usd.sum())
    assert aware_net > naive_net
    # Interval by interval it is never worse: it maximises each interval's margin.
    assert np.all(aware.settlement.net_usd >= naive.settlement.net_usd - 1e-9)
    # The naive one curtailed S21s above the cap, reselling at 100 what mined at > 100.
    assert naive.inputs.running_mw.sum() < aware.inputs.running_mw.sum()
