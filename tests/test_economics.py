"""ECONOMICS.md's worked examples, to the cent, and the rules they rest on."""

from __future__ import annotations

import numpy as np
import pytest

from controller.accounting.instruments import (
    FixedPpa,
    ShortCall,
    SpotSupply,
    opportunity_cost_usd_per_mwh,
)
from controller.accounting.settlement import IntervalInputs, settle
from controller.decision.economics import (
    best_point,
    energy_hashprice_usd_per_mwh,
    hashprice_usd_per_ph_day,
    hashspark_spread_usd_per_mwh,
    net_hashprice,
    point_value_usd_per_h,
)


def test_hashprice_from_chain_data_matches_the_check() -> None:
    hp = hashprice_usd_per_ph_day(108.52e12, 3.125, 0.0931, 93_450.0)
    assert round(hp, 2) == 55.75


def test_hashprice_is_vectorised() -> None:
    hp = hashprice_usd_per_ph_day(
        np.array([108.52e12, 2 * 108.52e12]),
        np.array([3.125, 3.125]),
        np.array([0.0931, 0.0931]),
        np.array([93_450.0, 93_450.0]),
    )
    assert hp[0] == pytest.approx(2 * hp[1])


@pytest.mark.parametrize(
    ("efficiency_j_per_th", "expected"),
    [(17.5, 131.45), (29.5, 77.98)],
    ids=["S21", "S19j Pro"],
)
def test_energy_hashprice_examples(efficiency_j_per_th: float, expected: float) -> None:
    ehp = energy_hashprice_usd_per_mwh(net_hashprice(55.21, 0.0), efficiency_j_per_th)
    assert round(ehp, 2) == expected


def test_worked_interval_energy_hashprice() -> None:
    assert round(energy_hashprice_usd_per_mwh(net_hashprice(50.0, 0.02), 17.5), 2) == 116.67


def _worked_interval(price: float, running: bool) -> dict[str, float]:
    """One S21 under a 3.5 kW PPA at 45 with a short call at 200, premium 3.5, 15 minutes."""
    q = 0.0035 if running else 0.0
    h = 0.2 if running else 0.0
    inputs = IntervalInputs(
        start=np.array([0.0]),
        end=np.array([900.0]),
        price_usd_per_mwh=np.array([price]),
        hashprice_usd_per_ph_day=np.array([50.0]),
        running_mw=np.array([q]),
        running_ph=np.array([h]),
        nominal_mw=0.0035,
    )
    result = settle(
        inputs,
        supply=FixedPpa(0.0035, 45.0),
        hedges=(ShortCall("c", 0.0035, 200.0, 3.5),),
        pool_fee=0.02,
    )
    return {name: round(float(getattr(result, name)[0]), 4) for name in result.component_names()}


def _runs(price: float) -> bool:
    """The pure rule for the worked interval's S21 under a PPA resold at spot."""
    c = float(opportunity_cost_usd_per_mwh(FixedPpa(0.0035, 45.0), price))
    values = point_value_usd_per_h(np.array([0.0, 200.0]), np.array([0.0, 3500.0]), 49.0, c)
    return bool(best_point(values, np.array([True, True])) == 1)


def test_worked_interval_p80_runs() -> None:
    assert _runs(80.0)
    got = _worked_interval(80.0, running=True)
    assert got["mining_revenue_usd"] == 0.1021
    assert got["power_cost_usd"] == 0.0394
    assert got["resale_revenue_usd"] == 0.0
    assert got["call_premium_usd"] == 0.0031
    assert got["call_payout_usd"] == 0.0
    assert got["net_usd"] == 0.0658


def test_worked_interval_p900_curtails() -> None:
    assert not _runs(900.0)
    got = _worked_interval(900.0, running=False)
    assert got["mining_revenue_usd"] == 0.0
    assert got["power_cost_usd"] == 0.0394
    assert got["resale_revenue_usd"] == 0.7875
    assert got["call_premium_usd"] == 0.0031
    assert got["call_payout_usd"] == 0.6125
    assert got["net_usd"] == 0.1387


def test_spread_example_from_the_field() -> None:
    # Revenue locked at 130 USD/MWh against power at 60 is a 70 USD/MWh spread: pick HPf so
    # that HPf * 1000 / (24 * E) = 130 at E = 20 J/TH and no pool fee.
    hpf = 130.0 * 24 * 20 / 1000
    assert hashspark_spread_usd_per_mwh(hpf, 0.0, 20.0, 60.0) == pytest.approx(70.0)


@pytest.mark.parametrize(
    ("supply", "price", "adders", "expected"),
    [
        (SpotSupply(), 80.0, 0.0, 80.0),
        (SpotSupply(), -20.0, 0.0, -20.0),
        (SpotSupply(), 80.0, 5.0, 85.0),
        (FixedPpa(3.3, 45.0), 900.0, 0.0, 900.0),  # the contract price is sunk
        (FixedPpa(3.3, 45.0, resale_cap_usd_per_mwh=100.0), 900.0, 0.0, 100.0),
        (FixedPpa(3.3, 45.0, resale_cap_usd_per_mwh=100.0), 60.0, 0.0, 60.0),
    ],
)
def test_opportunity_cost_table(
    supply: SpotSupply | FixedPpa, price: float, adders: float, expected: float
) -> None:
    assert float(opportunity_cost_usd_per_mwh(supply, price, adders)) == expected


def test_single_point_runs_iff_energy_hashprice_at_least_cost() -> None:
    ehp = energy_hashprice_usd_per_mwh(49.0, 17.5)
    h, w = np.array([0.0, 200.0]), np.array([0.0, 3500.0])
    valid = np.array([True, True])
    assert best_point(point_value_usd_per_h(h, w, 49.0, ehp - 0.01), valid) == 1
    assert best_point(point_value_usd_per_h(h, w, 49.0, ehp + 0.01), valid) == 0


def test_curve_picks_the_most_profitable_power_target() -> None:
    # An S19j Pro curve: underclocked it is more efficient, so it pays where full clock does not.
    h = np.array([0.0, 70.0, 90.0, 104.0])
    w = np.array([0.0, 1750.0, 2430.0, 3068.0])
    valid = np.ones(4, dtype=bool)
    hpn = 49.0
    ehp = [float(energy_hashprice_usd_per_mwh(hpn, w[i] / h[i])) for i in (1, 2, 3)]
    assert ehp[0] > ehp[1] > ehp[2]
    assert best_point(point_value_usd_per_h(h, w, hpn, 10.0), valid) == 3
    assert best_point(point_value_usd_per_h(h, w, hpn, ehp[0] + 1), valid) == 0
    mid = (ehp[2] + ehp[0]) / 2
    chosen = int(best_point(point_value_usd_per_h(h, w, hpn, mid), valid))
    assert chosen in (1, 2)
    values = point_value_usd_per_h(h, w, hpn, mid)
    assert values[chosen] == values.max()


def test_invalid_points_never_win() -> None:
    values = np.array([0.0, 5.0, 9.0])
    assert best_point(values, np.array([True, True, False])) == 1
