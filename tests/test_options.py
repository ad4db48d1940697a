"""Options on power and on hashprice: each settlement basis against a hand computation, the
carry that makes one-interval-at-a-time settlement equal a whole replay's, and the config."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np
import pytest

from controller.accounting.instruments import ShortCall, SpotSupply
from controller.accounting.options import Basis, OpenPeriod, Option, settle_option
from controller.accounting.settlement import IntervalInputs, settle
from controller.accounting.supply_stack import HoursBlock, ShapedQuantity
from controller.domain import FloatArray

H = 3600.0
# One UTC day: eight quarter hours, then one interval to midnight.
START = np.array([0.0, 900, 1800, 2700, 3600, 4500, 5400, 6300, 7200])
END = np.append(START[1:], 24 * H)
RT = np.array([100.0, 300, 500, 100, 150, 150, 150, 150, 200])  # hour 0 mean 250, hour 1 150
DA = np.array([120.0, 120, 120, 120, 260, 260, 260, 260, 90])
HP = np.full(9, 50.0)


def _flows(option: Option, carry: OpenPeriod | None = None) -> tuple[FloatArray, FloatArray]:
    flows, _ = settle_option(option, START, END, price=RT, day_ahead=DA, hashprice=HP, carry=carry)
    return flows.premium_usd, flows.payout_usd


def _call(basis: Basis, **kw: object) -> Option:
    return Option("c", "power", "long", "call", 200.0, 2.0, basis, **kw)  # type: ignore[arg-type]


def test_interval_basis_pays_each_quarter_hour() -> None:
    # (300 - 200) and (500 - 200) for a quarter hour each, on 2 MW.
    _, payout = _flows(_call("interval"))
    np.testing.assert_allclose(payout, [0, 50, 150, 0, 0, 0, 0, 0, 0])


def test_hourly_basis_books_the_hours_mean_when_the_hour_closes() -> None:
    # Hour 0 averages 250: (250 - 200) * 2 MW * 1 h = 100, booked in the interval ending 01:00.
    _, payout = _flows(_call("hourly"))
    np.testing.assert_allclose(payout, [0, 0, 0, 100, 0, 0, 0, 0, 0])


def test_daily_basis_averages_over_the_day() -> None:
    # Day mean (250 + 150 + 22 * 200) / 24 = 200: a 210 put pays 10 * 2 MW * 24 h = 480.
    put = Option("p", "power", "long", "put", 210.0, 2.0, "daily")
    _, payout = _flows(put)
    np.testing.assert_allclose(payout, [0, 0, 0, 0, 0, 0, 0, 0, 480])


def test_day_ahead_basis_pays_on_the_hourly_day_ahead_price() -> None:
    # Hour 1's day-ahead 260: (260 - 200) * 2 MW * 0.25 h = 30 per quarter hour.
    _, payout = _flows(_call("day_ahead"))
    np.testing.assert_allclose(payout, [0, 0, 0, 0, 30, 30, 30, 30, 0])


def test_a_missing_day_ahead_price_pays_nothing_rather_than_nan() -> None:
    flows, _ = settle_option(
        _call("day_ahead"),
        START,
        END,
        price=RT,
        day_ahead=np.full(9, np.nan),
        hashprice=HP,
        carry=None,
    )
    assert flows.payout_usd.sum() == 0.0


def test_short_pays_what_long_receives_and_premiums_accrue_over_delivered_hours() -> None:
    long = _call("interval", premium_per_unit=5.0)
    short = Option("s", "power", "short", "call", 200.0, 2.0, "interval", premium_per_unit=5.0)
    lp, lo = _flows(long)
    sp, so = _flows(short)
    np.testing.assert_allclose(sp, -lp)
    np.testing.assert_allclose(so, -lo)
    assert sp.sum() == pytest.approx(5.0 * 2.0 * 24.0)  # 240 USD in over the day


def test_a_lump_sum_premium_is_booked_in_the_interval_holding_the_term_start() -> None:
    option = _call("interval", premium_lump_usd=1000.0, start=1000.0)
    premium, payout = _flows(option)
    np.testing.assert_allclose(premium, [0, -1000, 0, 0, 0, 0, 0, 0, 0])
    # The term starts at 1000 s: the first quarter hour and 100 s of the second are outside.
    assert payout[1] == pytest.approx(100.0 * 2.0 * 800.0 / H)


def test_delivery_hours_limit_the_payout_and_the_premium() -> None:
    # Delivery 01:00-02:00 only: hour 0's average pays nothing; hour 1's (150) is below 200.
    hours = ShapedQuantity((HoursBlock(tuple(range(7)), 1, 2, 1.0),), ZoneInfo("UTC"))
    premium, payout = _flows(_call("hourly", hours=hours, premium_per_unit=1.0))
    assert payout.sum() == 0.0
    assert premium.sum() == pytest.approx(-1.0 * 2.0 * 1.0)  # one delivered hour
    _, rt = _flows(_call("interval", hours=hours))
    assert rt.sum() == 0.0


def test_an_option_on_hashprice_is_per_ph_day() -> None:
    # 60 against a 50 strike on 10 PH/s for the whole day: 10 * 10 = 100 USD.
    option = Option("h", "hashprice", "long", "call", 50.0, 10.0, "daily")
    flows, _ = settle_option(
        option, START, END, price=RT, day_ahead=None, hashprice=np.full(9, 60.0), carry=None
    )
    assert flows.payout_usd.sum() == pytest.approx(100.0)


@pytest.mark.parametrize("basis", ["interval", "hourly", "daily", "day_ahead"])
def test_one_interval_at_a_time_books_what_the_whole_day_books(basis: Basis) -> None:
    option = _call(basis, premium_per_unit=1.0)
    whole_premium, whole_payout = _flows(option)
    carry: OpenPeriod | None = None
    parts = []
    for i in range(9):
        s = slice(i, i + 1)
        flows, carry = settle_option(
            option, START[s], END[s], price=RT[s], day_ahead=DA[s], hashprice=HP[s], carry=carry
        )
        parts.append((flows.premium_usd[0], flows.payout_usd[0]))
    np.testing.assert_allclose([p for p, _ in parts], whole_premium)
    np.testing.assert_allclose([o for _, o in parts], whole_payout)
    assert carry is None


def test_a_period_still_open_is_carried_not_booked() -> None:
    option = _call("daily")
    _, carry = settle_option(
        option, START[:4], END[:4], price=RT[:4], day_ahead=None, hashprice=HP[:4], carry=None
    )
    assert carry == OpenPeriod(0.0, 250.0, 1.0)


def test_a_short_call_option_settles_exactly_as_the_short_call() -> None:
    inputs = IntervalInputs(START, END, RT, HP, np.zeros(9), np.zeros(9), 1.0)
    old = settle(inputs, supply=SpotSupply(), hedges=(ShortCall("c", 2.0, 200.0, 3.5),), pool_fee=0)
    new = settle(
        inputs,
        supply=SpotSupply(),
        hedges=(Option("c", "power", "short", "call", 200.0, 2.0, premium_per_unit=3.5),),
        pool_fee=0,
    )
    for name in old.component_names():
        np.testing.assert_allclose(getattr(new, name), getattr(old, name), err_msg=name)


def test_settlement_carries_open_periods_between_calls() -> None:
    option = _call("hourly")
    first = IntervalInputs(START[:2], END[:2], RT[:2], HP[:2], np.zeros(2), np.zeros(2), 1.0)
    rest = IntervalInputs(START[2:], END[2:], RT[2:], HP[2:], np.zeros(7), np.zeros(7), 1.0)
    a = settle(first, supply=SpotSupply(), hedges=(option,), pool_fee=0)
    assert a.option_carry == (("c", OpenPeriod(0.0, 100.0, 0.5)),)
    b = settle(rest, supply=SpotSupply(), hedges=(option,), pool_fee=0, option_carry=a.option_carry)
    assert b.option_carry == ()
    assert -b.call_payout_usd.sum() == pytest.approx(100.0)  # a long call's payout comes in
    assert "option_carry" not in a.component_names()
