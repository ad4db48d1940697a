"""Settlement components beyond the worked interval: excess bought at spot, caps, terms."""

from __future__ import annotations

import numpy as np
import pytest

from controller.accounting.instruments import FixedPpa, HashrateForward, ShortCall, SpotSupply
from controller.accounting.settlement import IntervalInputs, settle, settle_down


def _inputs(
    price: list[float], q: list[float], hp: float = 50.0, nominal: float = 4.0
) -> IntervalInputs:
    n = len(price)
    return IntervalInputs(
        start=np.arange(n, dtype=np.float64) * 3600.0,
        end=np.arange(1, n + 1, dtype=np.float64) * 3600.0,
        price_usd_per_mwh=np.array(price),
        hashprice_usd_per_ph_day=np.full(n, hp),
        running_mw=np.array(q),
        running_ph=np.array(q) * 50.0,
        nominal_mw=nominal,
    )


def test_spot_supply_pays_spot_for_what_it_burns() -> None:
    got = settle(_inputs([30.0, -10.0], [2.0, 4.0]), supply=SpotSupply(), hedges=(), pool_fee=0.0)
    assert got.power_cost_usd.tolist() == [60.0, -40.0]
    assert got.resale_revenue_usd.tolist() == [0.0, 0.0]
    assert got.curtailed_mwh.tolist() == [2.0, 0.0]


def test_ppa_excess_is_bought_at_spot() -> None:
    got = settle(_inputs([100.0], [4.0]), supply=FixedPpa(3.0, 45.0), hedges=(), pool_fee=0.0)
    assert got.power_cost_usd[0] == pytest.approx(135.0)
    assert got.resale_revenue_usd[0] == pytest.approx(-100.0)  # (3 - 4) * 100


def test_capped_ppa_resells_spare_at_the_cap_but_buys_excess_at_spot() -> None:
    supply = FixedPpa(3.0, 45.0, resale_cap_usd_per_mwh=100.0)
    spare = settle(_inputs([900.0], [1.0]), supply=supply, hedges=(), pool_fee=0.0)
    assert spare.resale_revenue_usd[0] == pytest.approx(2.0 * 100.0)
    excess = settle(_inputs([900.0], [4.0]), supply=supply, hedges=(), pool_fee=0.0)
    assert excess.resale_revenue_usd[0] == pytest.approx(-900.0)


def test_forward_settles_on_the_index_before_pool_fee() -> None:
    fwd = HashrateForward("f", 70.0, 52.0)
    got = settle(_inputs([30.0], [0.0], hp=40.0), supply=SpotSupply(), hedges=(fwd,), pool_fee=0.02)
    assert got.forward_settlement_usd[0] == pytest.approx((52.0 - 40.0) * 70.0 / 24.0)


def test_hedges_count_only_inside_their_term() -> None:
    call = ShortCall("c", 1.0, 200.0, 4.0, start=1800.0, end=5400.0)
    got = settle(
        _inputs([300.0, 300.0, 300.0], [0.0, 0.0, 0.0]),
        supply=SpotSupply(),
        hedges=(call,),
        pool_fee=0.0,
    )
    assert got.call_premium_usd.tolist() == pytest.approx([2.0, 2.0, 0.0])
    assert got.call_payout_usd.tolist() == pytest.approx([50.0, 50.0, 0.0])


def test_several_instruments_of_a_kind_add_up() -> None:
    calls = (ShortCall("a", 1.0, 200.0, 1.0), ShortCall("b", 2.0, 250.0, 2.0))
    got = settle(_inputs([300.0], [0.0]), supply=SpotSupply(), hedges=calls, pool_fee=0.0)
    assert got.call_premium_usd[0] == pytest.approx(1.0 + 4.0)
    assert got.call_payout_usd[0] == pytest.approx(100.0 + 100.0)


def test_net_is_the_documented_sum() -> None:
    hedges = (ShortCall("c", 1.0, 50.0, 3.0), HashrateForward("f", 10.0, 60.0))
    got = settle(
        _inputs([80.0, 20.0], [1.0, 3.0]), supply=FixedPpa(2.0, 45.0), hedges=hedges, pool_fee=0.02
    )
    expected = (
        got.mining_revenue_usd
        + got.resale_revenue_usd
        + got.call_premium_usd
        - got.call_payout_usd
        + got.forward_settlement_usd
        - got.power_cost_usd
    )
    np.testing.assert_allclose(got.net_usd, expected)


def test_a_down_interval_books_the_fixed_ppa_and_the_premium_by_hand() -> None:
    # 2 h 30 min down (9,000 s) under ECONOMICS.md's worked contracts: a PPA of 0.0035 MW at
    # 45 USD/MWh and a short call of 0.0035 MW at 3.5 USD/MWh premium, strike 200.
    # PPA: 45 * 0.0035 * 2.5 = 0.39375; premium: 3.5 * 0.0035 * 2.5 = 0.030625.
    call = ShortCall("call-200", 0.0035, 200.0, 3.5)
    fwd = HashrateForward("fwd", 0.2, 52.0)
    got = settle_down(
        np.array([0.0]), np.array([9000.0]), supply=FixedPpa(0.0035, 45.0), hedges=(call, fwd)
    )
    assert got.power_cost_usd[0] == pytest.approx(0.39375)
    assert got.call_premium_usd[0] == pytest.approx(0.030625)
    assert got.net_usd[0] == pytest.approx(0.030625 - 0.39375)
    # What the miners did, and what prices nobody observed would settle, is not booked.
    for name in (
        "mined_mwh",
        "curtailed_mwh",
        "mining_revenue_usd",
        "resale_revenue_usd",
        "call_payout_usd",
        "forward_settlement_usd",
    ):
        assert getattr(got, name)[0] == 0.0, name
    [(inst, comp, usd)] = got.by_instrument
    assert (inst, comp) == ("call-200", "call_premium_usd")
    assert usd.tolist() == pytest.approx([0.030625])


def test_a_down_interval_books_premiums_inside_their_term_only_and_no_spot_cost() -> None:
    # Down from 0 to 2 h; the call runs from 1 h 30 min: half an hour of premium,
    # 1.0 MW * 4 USD/MWh * 0.5 h = 2.0. Spot power drawn while down is unknown: 0 booked.
    call = ShortCall("c", 1.0, 200.0, 4.0, start=5400.0)
    got = settle_down(
        np.array([0.0, 7200.0]), np.array([7200.0, 9000.0]), supply=SpotSupply(), hedges=(call,)
    )
    assert got.call_premium_usd.tolist() == pytest.approx([2.0, 2.0])
    assert got.power_cost_usd.tolist() == [0.0, 0.0]
    assert got.net_usd.tolist() == pytest.approx([2.0, 2.0])
