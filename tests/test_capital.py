"""The capital arithmetic, the bootstrap and the stresses against hand computations."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from controller.accounting.capital import (
    CapitalAssumptions,
    DailySeries,
    annuity_factor,
    capital_figures,
    debt_capacity_usd,
    max_drawdown,
)
from controller.accounting.payoff import CallTerms, ppa_payoff
from controller.accounting.resample import bootstrap, draw_months
from controller.accounting.stress import Spike, Stress, stress_hashprice, stress_price
from controller.domain import Recording

DAY = 86_400.0
A = CapitalAssumptions(
    coverage_ratio=1.35,
    debt_rate=0.10,
    tenor_months=36,
    cfar_percentile=10.0,
    capital_employed_usd=2_136_000.0,
    asset_life_years=3.0,
    discount_rate=0.15,
)


def _days(first: str, net: list[float], hours: list[float] | None = None) -> DailySeries:
    start = np.datetime64(first, "D").astype(np.int64) * DAY + np.arange(len(net)) * DAY
    h = np.asarray(hours if hours is not None else [24.0] * len(net))
    end = float(start[-1] + h[-1] * 3600.0)
    return DailySeries(start.astype(float), np.asarray(net, dtype=float), h, float(start[0]), end)


def test_debt_capacity_worked_example() -> None:
    # docs/economics.md, "Capital": CFaR 90,000 USD a month at coverage 1.35 -> 66,666.67 a
    # month; 36 monthly instalments at 10%/12 are worth 30.99124 of them.
    factor = sum(1 / (1 + 0.10 / 12) ** k for k in range(1, 37))
    payment, principal = debt_capacity_usd(90_000.0, 1.35, 0.10, 36)
    assert payment == pytest.approx(66_666.6667, abs=1e-3)
    assert factor == pytest.approx(30.99124, abs=1e-5)
    assert principal == pytest.approx(payment * factor, rel=1e-12)
    assert principal == pytest.approx(2_066_083, abs=1)
    assert debt_capacity_usd(-5.0, 1.35, 0.10, 36) == (0.0, 0.0)  # nothing to lend on
    assert annuity_factor(0.0, 12) == 12.0


def test_drawdown_from_the_running_peak() -> None:
    # Cumulative 5, 3, 8, 2, 4: the peak 8 (index 2) falls to 2 (index 3).
    assert max_drawdown(np.cumsum([5.0, -2.0, 5.0, -6.0, 2.0])) == (6.0, 2, 3)
    # A first day's loss falls from the starting zero: no peak day.
    assert max_drawdown(np.cumsum([-4.0, 1.0])) == (4.0, None, 0)
    assert max_drawdown(np.cumsum([1.0, 2.0])) == (0.0, None, None)


def test_whole_weeks_and_months_only() -> None:
    # 2024-06-30 (a Sunday, partial) .. 2024-08-04: July whole, June and August not; ISO
    # weeks Monday 07-01 .. Sunday 08-04 whole (5 of them).
    n = 36
    net = [100.0 + i for i in range(n)]
    s = _days("2024-06-30", net, [20.0] + [24.0] * (n - 1))
    f = capital_figures(s, A)
    assert [(m.label, m.whole) for m in f.months] == [
        ("2024-06", False),
        ("2024-07", True),
        ("2024-08", False),
    ]
    july = sum(net[1:32])
    assert f.months[1].net_usd == pytest.approx(july)
    assert f.monthly.periods == 1
    assert f.monthly.std_usd is None
    assert f.monthly.cv is None
    assert f.cfar_usd == pytest.approx(july)
    assert f.weekly.periods == 5
    weeks = [sum(net[1 + 7 * k : 8 + 7 * k]) for k in range(5)]
    assert f.weekly.mean_usd == pytest.approx(np.mean(weeks))
    assert f.weekly.std_usd == pytest.approx(np.std(weeks))
    assert f.daily.periods == n - 1  # the partial first day is left out


def test_cv_needs_a_positive_mean_and_roce_and_pv_by_hand() -> None:
    s = _days("2024-07-01", [-10.0, 10.0, -30.0] + [0.0] * 28)
    f = capital_figures(s, A)
    assert f.monthly.cv is None
    assert f.daily.cv is None
    assert f.max_drawdown_usd == 30.0
    assert f.drawdown_trough_day == "2024-07-03"
    assert f.drawdown_peak_day == "2024-07-02"
    hours = 31 * 24
    assert f.annualised_net_usd == pytest.approx(-30.0 / hours * 8766)
    assert f.roce == pytest.approx((-30.0 / hours * 8766 - 2_136_000 / 3) / 2_136_000)
    pv = -10 / 1.15 ** (1 / 365.25) + 10 / 1.15 ** (2 / 365.25) - 30 / 1.15 ** (3 / 365.25)
    assert f.pv_usd == pytest.approx(pv, rel=1e-12)
    assert f.debt_capacity_usd == 0.0


def test_bootstrap_is_reproducible_from_its_seed() -> None:
    rng = np.random.default_rng(7)
    s = _days("2024-01-01", list(rng.normal(3_000, 900, 366)))
    books = [("a", s, A), ("b", replace(s, net_usd=s.net_usd * 0.5 + 800), A)]
    one = bootstrap(books, draws=200, months_per_draw=12, seed=42)
    two = bootstrap(books, draws=200, months_per_draw=12, seed=42)
    other = bootstrap(books, draws=200, months_per_draw=12, seed=43)
    for x, y, z in zip(one, two, other, strict=True):
        for name in x.figures:
            cents_x = np.round(x.figures[name] * 100)
            assert np.array_equal(cents_x, np.round(y.figures[name] * 100), equal_nan=True)
        assert not np.array_equal(x.figures["net_usd"], z.figures["net_usd"])
    picks = draw_months(12, 200, 12, 42)
    # Draw 0 is 12 months of the series: its net is those months' days summed.
    month = np.asarray(s.day_start_s // DAY, dtype=np.int64).astype("datetime64[D]")
    month = month.astype("datetime64[M]")
    expected = sum(s.net_usd[month == np.unique(month)[i]].sum() for i in picks[0])
    assert one[0].figures["net_usd"][0] == pytest.approx(expected)


def _rec(times: list[float], values: list[float]) -> Recording:
    return Recording("test", Path("x.csv"), "v", np.asarray(times), np.asarray(values))


def test_stresses_bend_the_inputs_as_documented() -> None:
    hp = _rec([0.0, DAY], [60.0, 50.0])
    sub = _rec([0.0, DAY], [55.0, 48.0])
    fees_off = stress_hashprice(hp, Stress(fee_scale=0.0), sub)
    assert fees_off.values.tolist() == [55.0, 48.0]
    double = stress_hashprice(
        hp, Stress(fee_scale=2.0, hashprice_scale=0.5, hashprice_shift_usd_per_ph_day=-1), sub
    )
    assert double.values.tolist() == pytest.approx([(55 + 10) * 0.5 - 1, (48 + 4) * 0.5 - 1])
    assert stress_hashprice(
        hp, Stress(hashprice_shift_usd_per_ph_day=-70), None
    ).values.tolist() == [0, 0]
    with pytest.raises(ValueError, match="subsidy"):
        stress_hashprice(hp, Stress(fee_scale=0.5), None)
    price = _rec([0.0, 900.0, 1800.0], [20.0, 30.0, 40.0])
    spiked = stress_price(
        price,
        Stress(power_scale=2.0, power_shift_usd_per_mwh=5, spikes=(Spike(450.0, 1000.0, 5000.0),)),
    )
    assert spiked.times.tolist() == [0.0, 450.0, 900.0, 1000.0, 1800.0]
    assert spiked.values.tolist() == [45.0, 5000.0, 5000.0, 65.0, 85.0]


def test_payoff_of_a_ppa_and_a_short_call() -> None:
    # ECONOMICS.md's worked interval per hour: one S21, HP 50, f 0.02 (EHP 116.67), PPA
    # 0.0035 MW at 45, call 0.0035 MW strike 200 premium 3.5. At 80 it runs; at 900 it
    # curtails and the resale above 200 goes to the call's buyer.
    from controller.domain import FleetSpec  # noqa: PLC0415

    fleet = FleetSpec(
        hashrate_th=np.asarray([[0.0, 200.0]]),
        power_w=np.asarray([[0.0, 3500.0]]),
        valid=np.asarray([[True, True]]),
        model_index=np.asarray([0]),
        model_names=("Antminer S21",),
    )
    c = ppa_payoff(
        fleet,
        np.asarray([80.0, 900.0]),
        hashprice_usd_per_ph_day=50.0,
        pool_fee=0.02,
        quantity_mw=0.0035,
        ppa_price_usd_per_mwh=45.0,
        call=CallTerms(0.0035, 200.0, 3.5),
    )
    assert c.load_mw.tolist() == [0.0035, 0.0]
    assert c.mining_usd_per_h.tolist() == pytest.approx([0.1021 * 4, 0.0], abs=1e-4)
    assert c.net_usd_per_h.tolist() == pytest.approx([0.0658 * 4, 0.1387 * 4], abs=2e-4)
