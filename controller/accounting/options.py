"""Options on power and on hashprice, settled financially (ECONOMICS.md, "Options: settlement
basis").

An option is long or short, a call or a put, on power (USD/MWh, quantity MW) or on hashprice
(USD/PH/day, quantity PH/s), over a term and delivery hours, and settles on a basis: each
interval's price (``interval``), the day-ahead hourly price (``day_ahead``), or the average
of the interval prices over each local hour (``hourly``) or local day (``daily``). None of
them changes the dispatch cost ``c``.

Flows are signed as cash to the site: a long option pays its premium (negative) and receives
its payout (positive); a short one the reverse. A premium per unit accrues over delivered
time; a lump-sum premium is booked in the interval that contains the term's start.

An averaging basis books a period's payout in the interval whose end reaches the period's
end (the period "closes"), averaging the prices over the delivered time observed in it,
each interval counted in the period its start falls in. A settlement over consecutive
arrays carries the open periods (``OptionCarry``), so settling a whole replay at once
(the fast engine) and one interval at a time (the site loop) book the same figures.
A period still open when the data ends is not booked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

import numpy as np

from controller.accounting.supply_stack import ShapedQuantity, mean_quantity_mw
from controller.domain import EpochS, FloatArray

Underlying = Literal["power", "hashprice"]
Side = Literal["long", "short"]
Kind = Literal["call", "put"]
Basis = Literal["interval", "hourly", "daily", "day_ahead"]


@dataclass(frozen=True, slots=True)
class Option:
    """A financially settled option; ``hours`` (a 0/1 shape) limits delivery, None = 7x24.

    ``quantity`` is MW on power, PH/s on hashprice; ``strike`` and ``premium_per_unit`` are in
    the underlying's unit (USD/MWh or USD/PH/day); ``tz`` sets the local hour and day of the
    averaging bases.
    """

    id: str
    underlying: Underlying
    side: Side
    kind: Kind
    strike: float
    quantity: float
    basis: Basis = "interval"
    premium_per_unit: float = 0.0
    premium_lump_usd: float = 0.0
    hours: ShapedQuantity | None = None
    tz: tzinfo = UTC
    start: EpochS | None = None
    end: EpochS | None = None


@dataclass(frozen=True, slots=True)
class OpenPeriod:
    """An averaging period not yet closed: its start, and the delivered-time-weighted sums."""

    period_start: EpochS
    price_hours: float
    hours: float


#: Open averaging periods by option id.
OptionCarry = tuple[tuple[str, OpenPeriod], ...]


@dataclass(frozen=True, slots=True)
class OptionFlows:
    """One option's cash to the site per interval (USD)."""

    premium_usd: FloatArray
    payout_usd: FloatArray


def intrinsic(kind: Kind, price: FloatArray | float, strike: float) -> FloatArray:
    """A call's ``max(x - K, 0)`` or a put's ``max(K - x, 0)``."""
    x = np.asarray(price, dtype=np.float64)
    value = x - strike if kind == "call" else strike - x
    return np.asarray(np.maximum(value, 0.0), dtype=np.float64)


def delivered_h(option: Option, start: FloatArray, end: FloatArray) -> FloatArray:
    """Hours of each interval inside the option's term and delivery hours."""
    lo = start if option.start is None else np.maximum(start, option.start)
    hi = end if option.end is None else np.minimum(end, option.end)
    in_term_h = np.clip(hi - lo, 0.0, None) / 3600.0
    if option.hours is None:
        return np.asarray(in_term_h, dtype=np.float64)
    share = mean_quantity_mw(option.hours, start, end)
    return np.asarray(in_term_h * share, dtype=np.float64)


def _unit_h(option: Option) -> float:
    """Hours per unit-hour of quantity: a MWh per MW-hour; a PH/s-day per 24 PH/s-hours."""
    return 1.0 if option.underlying == "power" else 1.0 / 24.0


def period_bounds(basis: Basis, tz: tzinfo, t: float) -> tuple[EpochS, EpochS]:
    """The local hour or day containing ``t``: ``[start, end)`` in epoch seconds."""
    local = datetime.fromtimestamp(t, tz)
    if basis == "hourly":
        first = local.replace(minute=0, second=0, microsecond=0)
        return first.timestamp(), first.timestamp() + 3600.0
    day = local.date()
    first = datetime(day.year, day.month, day.day, tzinfo=tz)
    nxt = day + timedelta(days=1)
    return first.timestamp(), datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()


def settle_option(
    option: Option,
    start: FloatArray,
    end: FloatArray,
    *,
    price: FloatArray,
    day_ahead: FloatArray | None,
    hashprice: FloatArray,
    carry: OpenPeriod | None,
) -> tuple[OptionFlows, OpenPeriod | None]:
    """One option's flows over consecutive intervals, and the period left open."""
    sign = 1.0 if option.side == "short" else -1.0
    d_h = delivered_h(option, start, end)
    units = option.quantity * d_h * _unit_h(option)
    premium = _premium(option, start, end, units)
    underlying = price if option.underlying == "power" else hashprice
    payout = np.zeros_like(d_h)
    match option.basis:
        case "interval":
            payout = intrinsic(option.kind, underlying, option.strike) * units
        case "day_ahead":
            if day_ahead is None:
                raise ValueError(f"option {option.id} settles on day-ahead prices: none given")
            # An interval with no day-ahead reading (a live feed not yet heard) pays nothing.
            payout = np.nan_to_num(intrinsic(option.kind, day_ahead, option.strike)) * units
        case "hourly" | "daily":
            carry = _average(option, start, end, underlying, d_h, payout, carry)
    return OptionFlows(
        np.asarray(premium, dtype=np.float64), np.asarray(-sign * payout, dtype=np.float64)
    ), carry


def _average(  # noqa: PLR0917 - the arrays of one settlement, private
    option: Option,
    start: FloatArray,
    end: FloatArray,
    underlying: FloatArray,
    d_h: FloatArray,
    payout: FloatArray,
    carry: OpenPeriod | None,
) -> OpenPeriod | None:
    """Accumulate each period's average; write each closed period's payout into ``payout``."""
    scale = option.quantity * _unit_h(option)
    bounds: tuple[EpochS, EpochS] | None = None
    for i in range(start.shape[0]):
        t0 = float(start[i])
        if bounds is None or not bounds[0] <= t0 < bounds[1]:
            bounds = period_bounds(option.basis, option.tz, t0)
        if carry is not None and carry.period_start != bounds[0]:
            # The period closed without an interval reaching its end (a gap): book it now.
            payout[i] += _close(option, carry, scale)
            carry = None
        if carry is None:
            carry = OpenPeriod(bounds[0], 0.0, 0.0)
        carry = OpenPeriod(
            carry.period_start,
            carry.price_hours + float(underlying[i]) * float(d_h[i]),
            carry.hours + float(d_h[i]),
        )
        if float(end[i]) >= bounds[1]:
            payout[i] += _close(option, carry, scale)
            carry = None
    return carry


def _close(option: Option, period: OpenPeriod, scale: float) -> float:
    if period.hours <= 0.0:
        return 0.0
    mean = period.price_hours / period.hours
    return float(intrinsic(option.kind, mean, option.strike)) * scale * period.hours


def _premium(option: Option, start: FloatArray, end: FloatArray, units: FloatArray) -> FloatArray:
    sign = 1.0 if option.side == "short" else -1.0
    premium = sign * option.premium_per_unit * units
    if option.premium_lump_usd and option.start is not None:
        at = (start <= option.start) & (option.start < end)
        premium = premium + np.where(at, sign * option.premium_lump_usd, 0.0)
    return np.asarray(premium, dtype=np.float64)


def option_premium(option: Option, start: FloatArray, end: FloatArray) -> FloatArray:
    """The premium alone (what accrues whether or not prices were observed)."""
    units = option.quantity * delivered_h(option, start, end) * _unit_h(option)
    return _premium(option, start, end, units)
