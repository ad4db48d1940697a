"""Bitcoin-side hedges, financially settled on a named reference (docs/economics.md,
"Bitcoin instruments").

Each instrument settles on a **daily reference**: the time-weighted mean, over a UTC day's
intervals, of the reading that held in each (with daily recordings, the day's value). The
references are the BTC/USD price (``btc_usd``), the hashprice index (``hashprice``) and the
network difficulty in units of 1e12 (``difficulty``).

- ``BtcForward``: a short BTC future of ``quantity_btc`` at ``price_usd_per_btc``, marked
  daily: each day's close books ``(previous mark - day's reference) * quantity`` (the first
  mark is the forward price), so the term sums to ``(F - last reference) * quantity``.
- ``BtcOptionStrip``: a long put, a short call or a collar (both) on ``quantity_btc_per_day``,
  settled per period (day, ISO week, month or the whole term) on the period's mean
  reference: ``max(K - ref, 0)`` to the site for the put, ``max(ref - K, 0)`` from it for
  the call, times the BTC delivered in the period (``quantity * days``). Premiums accrue per
  BTC of notional over delivered time: paid for the put, received for the call.
- ``DifficultySwap``: ``notional_usd_per_day * (D / K - 1) * days`` per period to a long
  (a miner's hedge: paid when difficulty rises above the strike), the reverse to a short.
- ``VolatilitySwap``: on the daily hashprice reference's realised volatility over its term,
  ``sigma = 100 * sqrt(365 / n * sum(ln(HP_d / HP_d-1) ** 2))`` (annualised, in points,
  zero-mean): at the term's end a long receives ``notional * (sigma - K)`` (volatility
  strike) or ``notional * (sigma ** 2 - K ** 2)`` (variance strike).

Flows are cash to the site. A period is booked in the interval whose end reaches the
period's end (periods are clipped to the term); a period still open when the data ends is
not booked. The state carried between calls (``BitcoinCarry``) makes settling a replay at
once and one interval at a time book the same figures. None of these changes dispatch.

Over 300 lines: the four instruments share the period and daily-reference bookkeeping
(accumulation, clipping to the term, gaps), which is most of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import numpy as np

from controller.domain import EpochS, FloatArray

Reference = Literal["btc_usd", "hashprice", "difficulty"]
Period = Literal["daily", "weekly", "monthly", "term"]
#: Days a year of realised volatility: bitcoin trades and mines every day.
DAYS_PER_YEAR = 365.0

#: Component names in the ledger's ``instrument_flows``, the metrics and the report.
BTC_FORWARD = "btc_forward_settlement_usd"
BTC_OPTION_PREMIUM = "btc_option_premium_usd"
BTC_PUT_PAYOUT = "btc_put_payout_usd"
BTC_CALL_PAYOUT = "btc_call_payout_usd"
DIFFICULTY_SWAP = "difficulty_swap_usd"
VOLATILITY_SWAP = "volatility_swap_usd"
BITCOIN_COMPONENTS = (
    BTC_FORWARD,
    BTC_OPTION_PREMIUM,
    BTC_PUT_PAYOUT,
    BTC_CALL_PAYOUT,
    DIFFICULTY_SWAP,
    VOLATILITY_SWAP,
)


@dataclass(frozen=True, slots=True)
class BtcForward:
    """A short BTC future, cash-settled and marked daily on the BTC reference."""

    id: str
    quantity_btc: float
    price_usd_per_btc: float
    start: EpochS | None = None
    end: EpochS | None = None
    reference: Reference = "btc_usd"


@dataclass(frozen=True, slots=True)
class BtcOptionStrip:
    """A long put (``put_strike``), a short call (``call_strike``) or both (a collar)."""

    id: str
    quantity_btc_per_day: float
    put_strike_usd_per_btc: float | None
    call_strike_usd_per_btc: float | None
    put_premium_usd_per_btc: float = 0.0
    call_premium_usd_per_btc: float = 0.0
    settlement: Period = "monthly"
    start: EpochS | None = None
    end: EpochS | None = None
    reference: Reference = "btc_usd"


@dataclass(frozen=True, slots=True)
class DifficultySwap:
    """Difficulty against a fixed strike (units of 1e12), on a USD notional per day."""

    id: str
    side: Literal["long", "short"]
    strike_difficulty_t: float
    notional_usd_per_day: float
    settlement: Period = "monthly"
    start: EpochS | None = None
    end: EpochS | None = None
    reference: Reference = "difficulty"


@dataclass(frozen=True, slots=True)
class VolatilitySwap:
    """Realised volatility of the hashprice index over ``[start, end)`` against a strike."""

    id: str
    side: Literal["long", "short"]
    strike_kind: Literal["volatility", "variance"]
    strike_pct: float
    notional_usd_per_point: float
    start: EpochS
    end: EpochS
    reference: Reference = "hashprice"


BitcoinHedge = BtcForward | BtcOptionStrip | DifficultySwap | VolatilitySwap


@dataclass(frozen=True, slots=True)
class Accumulator:
    """A time-weighted mean in progress over ``[start, end)``."""

    start: EpochS
    end: EpochS
    value_h: float = 0.0
    hours: float = 0.0

    def add(self, value: float, hours: float) -> Accumulator:
        """With ``hours`` more at ``value``."""
        return Accumulator(self.start, self.end, self.value_h + value * hours, self.hours + hours)

    @property
    def mean(self) -> float:
        """The mean so far (NaN with no hours)."""
        return self.value_h / self.hours if self.hours > 0 else math.nan


@dataclass(frozen=True, slots=True)
class BitcoinCarry:
    """One instrument's state between settlement calls."""

    day: Accumulator | None = None
    period: Accumulator | None = None
    mark: float | None = None  # the forward's last mark; the swap's last daily reference
    sum_sq: float = 0.0  # the volatility swap's sum of squared daily log returns
    returns: int = 0
    done: bool = False  # the term has been settled


@dataclass(frozen=True, slots=True)
class References:
    """The per-interval values of each reference (None where the site has no such feed)."""

    btc_usd: FloatArray | None
    hashprice: FloatArray
    difficulty: FloatArray | None

    def of(self, name: Reference, instrument_id: str) -> FloatArray:
        """The series ``name``; a ValueError naming the instrument when it is missing."""
        series = getattr(self, name)
        if series is None:
            raise ValueError(f"{instrument_id} settles on {name}: the site has no such feed")
        return np.asarray(series, dtype=np.float64)


@dataclass(slots=True)
class Flows:
    """One instrument's flows per interval, by component name."""

    by_component: dict[str, FloatArray] = field(default_factory=dict)


def utc_bounds(period: Period, t: EpochS) -> tuple[EpochS, EpochS]:
    """The UTC day, ISO week or month containing ``t`` (``term`` is handled by the caller)."""
    day = datetime.fromtimestamp(t, UTC).date()
    if period == "weekly":
        day = day - timedelta(days=day.weekday())
        nxt = day + timedelta(days=7)
    elif period == "monthly":
        day = day.replace(day=1)
        nxt = (day + timedelta(days=32)).replace(day=1)
    else:
        nxt = day + timedelta(days=1)
    return _epoch(day), _epoch(nxt)


def _epoch(day: date) -> EpochS:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _bounds(
    period: Period, t: EpochS, start: EpochS | None, end: EpochS | None
) -> tuple[EpochS, EpochS]:
    """The period containing ``t``, clipped to the term ``[start, end)``."""
    if period == "term":
        assert start is not None
        assert end is not None
        return start, end
    lo, hi = utc_bounds(period, t)
    return (lo if start is None else max(lo, start)), (hi if end is None else min(hi, end))


def _in_term(start: EpochS | None, end: EpochS | None, t0: EpochS, t1: EpochS) -> float:
    """Hours of ``[t0, t1)`` inside the term."""
    lo = t0 if start is None else max(t0, start)
    hi = t1 if end is None else min(t1, end)
    return max(hi - lo, 0.0) / 3600.0


def settle_bitcoin(
    hedge: BitcoinHedge,
    start: FloatArray,
    end: FloatArray,
    refs: References,
    carry: BitcoinCarry | None,
) -> tuple[dict[str, FloatArray], BitcoinCarry]:
    """One instrument's flows (cash to the site) per interval, and its carried state."""
    values = refs.of(hedge.reference, hedge.id)
    n = start.shape[0]
    out = {name: np.zeros(n) for name in _components(hedge)}
    state = carry or BitcoinCarry()
    for i in range(n):
        t0, t1 = float(start[i]), float(end[i])
        hours = _in_term(hedge.start, hedge.end, t0, t1)
        value = float(values[i])
        if state.done or hours <= 0.0:
            continue
        if isinstance(hedge, BtcOptionStrip):  # the premium accrues over the term regardless
            net_usd_per_btc = hedge.call_premium_usd_per_btc - hedge.put_premium_usd_per_btc
            out[BTC_OPTION_PREMIUM][i] += (
                hedge.quantity_btc_per_day * hours / 24.0 * net_usd_per_btc
            )
        if not math.isfinite(value):
            continue  # no reading yet (a live feed not yet heard): the interval counts nothing
        match hedge:
            case BtcOptionStrip():
                state = _strip_step(hedge, state, t0, t1, value, hours, out, i)
            case DifficultySwap():
                state = _swap_step(hedge, state, t0, t1, value, hours, out, i)
            case BtcForward() | VolatilitySwap():
                state = _daily_step(hedge, state, t0, t1, value, hours, out, i)
    return out, state


def _components(hedge: BitcoinHedge) -> tuple[str, ...]:
    match hedge:
        case BtcForward():
            return (BTC_FORWARD,)
        case BtcOptionStrip(put_strike_usd_per_btc=put, call_strike_usd_per_btc=call):
            legs = ((BTC_PUT_PAYOUT,) if put is not None else ()) + (
                (BTC_CALL_PAYOUT,) if call is not None else ()
            )
            return (BTC_OPTION_PREMIUM, *legs)
        case DifficultySwap():
            return (DIFFICULTY_SWAP,)
        case VolatilitySwap():
            return (VOLATILITY_SWAP,)


def _roll(  # noqa: PLR0917 - one accumulation step, private
    acc: Accumulator | None,
    period: Period,
    hedge: BitcoinHedge,
    t0: EpochS,
    t1: EpochS,
    value: float,
    hours: float,
) -> tuple[Accumulator | None, list[Accumulator]]:
    """Add one interval to the open period; the periods it closed, in order.

    A period left without an interval reaching its end (a gap in the data) closes when
    an interval of a later period arrives.
    """
    closed: list[Accumulator] = []
    lo, hi = _bounds(period, max(t0, hedge.start or t0), hedge.start, hedge.end)
    if acc is not None and acc.start != lo:
        closed.append(acc)
        acc = None
    acc = (acc or Accumulator(lo, hi)).add(value, hours)
    if t1 >= hi:
        closed.append(acc)
        acc = None
    return acc, closed


def _strip_step(  # noqa: PLR0917 - one settlement step, private
    hedge: BtcOptionStrip,
    state: BitcoinCarry,
    t0: EpochS,
    t1: EpochS,
    value: float,
    hours: float,
    out: dict[str, FloatArray],
    i: int,
) -> BitcoinCarry:
    period, closed = _roll(state.period, hedge.settlement, hedge, t0, t1, value, hours)
    for acc in closed:
        btc = hedge.quantity_btc_per_day * acc.hours / 24.0
        if hedge.put_strike_usd_per_btc is not None:
            out[BTC_PUT_PAYOUT][i] += max(hedge.put_strike_usd_per_btc - acc.mean, 0.0) * btc
        if hedge.call_strike_usd_per_btc is not None:
            out[BTC_CALL_PAYOUT][i] -= max(acc.mean - hedge.call_strike_usd_per_btc, 0.0) * btc
    return BitcoinCarry(period=period)


def _swap_step(  # noqa: PLR0917 - one settlement step, private
    hedge: DifficultySwap,
    state: BitcoinCarry,
    t0: EpochS,
    t1: EpochS,
    value: float,
    hours: float,
    out: dict[str, FloatArray],
    i: int,
) -> BitcoinCarry:
    sign = 1.0 if hedge.side == "long" else -1.0
    period, closed = _roll(state.period, hedge.settlement, hedge, t0, t1, value, hours)
    for acc in closed:
        days = acc.hours / 24.0
        rel = acc.mean / hedge.strike_difficulty_t - 1.0
        out[DIFFICULTY_SWAP][i] += sign * hedge.notional_usd_per_day * rel * days
    return BitcoinCarry(period=period)


def _daily_step(  # noqa: PLR0917 - one settlement step, private
    hedge: BtcForward | VolatilitySwap,
    state: BitcoinCarry,
    t0: EpochS,
    t1: EpochS,
    value: float,
    hours: float,
    out: dict[str, FloatArray],
    i: int,
) -> BitcoinCarry:
    """The forward's daily mark and the volatility swap's daily returns."""
    day, closed = _roll(state.day, "daily", hedge, t0, t1, value, hours)
    mark, sum_sq, returns = state.mark, state.sum_sq, state.returns
    for acc in closed:
        ref = acc.mean
        if isinstance(hedge, BtcForward):
            previous = hedge.price_usd_per_btc if mark is None else mark
            out[BTC_FORWARD][i] += (previous - ref) * hedge.quantity_btc
        elif mark is not None and mark > 0 and ref > 0:
            sum_sq += math.log(ref / mark) ** 2
            returns += 1
        mark = ref
    done = False
    if isinstance(hedge, VolatilitySwap) and t1 >= hedge.end:
        out[VOLATILITY_SWAP][i] += volatility_swap_payoff(hedge, sum_sq, returns)
        done = True
    return BitcoinCarry(day=day, mark=mark, sum_sq=sum_sq, returns=returns, done=done)


def realised_volatility_pct(sum_sq: float, returns: int) -> float:
    """Annualised realised volatility (points) from ``returns`` squared daily log returns."""
    if returns <= 0:
        return 0.0
    return 100.0 * math.sqrt(DAYS_PER_YEAR / returns * sum_sq)


def volatility_swap_payoff(hedge: VolatilitySwap, sum_sq: float, returns: int) -> float:
    """Cash to the site at the term's end."""
    sign = 1.0 if hedge.side == "long" else -1.0
    sigma = realised_volatility_pct(sum_sq, returns)
    if hedge.strike_kind == "variance":
        return sign * hedge.notional_usd_per_point * (sigma**2 - hedge.strike_pct**2)
    return sign * hedge.notional_usd_per_point * (sigma - hedge.strike_pct)
