"""The Bitcoin instruments' configs: settled on the BTC price, difficulty or hashprice.

The instruments are financially settled: none of them changes dispatch (docs/economics.md,
"Bitcoin instruments"). Their terms are checked here, so a collar whose put strike is not
below its call strike, or a swap without a term, stops at start with its key path.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from controller.accounting.bitcoin import (
    BitcoinHedge,
    BtcForward,
    BtcOptionStrip,
    DifficultySwap,
    VolatilitySwap,
)
from controller.config.terms import Id, Term
from controller.runtime.config_bounds import MAX_LUMP_USD, MAX_READING_ABS

#: BTC/USD: a strike, forward price or premium (a million dollars a coin bounds them).
MAX_USD_PER_BTC = MAX_READING_ABS
#: BTC per day of a strip, BTC of a forward (the whole network mines 450 a day).
MAX_BTC = 100_000.0
#: Difficulty in units of 1e12 (about 120 in 2025).
MAX_DIFFICULTY_T = MAX_READING_ABS
#: Annualised volatility, points.
MAX_VOLATILITY_PCT = 1_000.0
Settlement = Literal["daily", "weekly", "monthly", "term"]


class _Swap(Term):
    """A term both ends of which are given: a swap settles on what happens in it."""

    @model_validator(mode="after")
    def _has_term(self) -> _Swap:
        if self.start is None or self.end is None:
            raise ValueError("give the term: start and end")
        return self


def _need_term(settlement: str, term: Term) -> None:
    if settlement == "term" and (term.start is None or term.end is None):
        raise ValueError("settlement 'term' needs the term: start and end")


class BtcForwardConfig(_Swap):
    """A short BTC future: sold ``quantity_btc`` at ``price_usd_per_btc``, cash-settled on
    the daily BTC reference and marked daily over its term."""

    type: Literal["btc_forward"]
    id: Id
    quantity_btc: float = Field(gt=0, le=MAX_BTC)
    price_usd_per_btc: float = Field(gt=0, le=MAX_USD_PER_BTC)


class BtcPutConfig(Term):
    """A long put strip on the BTC reference: ``quantity_btc_per_day``, settled per period."""

    type: Literal["btc_put"]
    id: Id
    quantity_btc_per_day: float = Field(gt=0, le=MAX_BTC)
    strike_usd_per_btc: float = Field(gt=0, le=MAX_USD_PER_BTC)
    premium_usd_per_btc: float = Field(default=0.0, ge=0, le=MAX_USD_PER_BTC)
    settlement: Settlement = "monthly"

    @model_validator(mode="after")
    def _term(self) -> BtcPutConfig:
        _need_term(self.settlement, self)
        return self


class BtcCallConfig(BtcPutConfig):
    """A short call strip on the BTC reference (a covered call: upside above the strike
    sold for its premium)."""

    type: Literal["btc_call"]  # type: ignore[assignment]


class BtcCollarConfig(Term):
    """A collar: a long put financed by a short call, both on ``quantity_btc_per_day``."""

    type: Literal["btc_collar"]
    id: Id
    quantity_btc_per_day: float = Field(gt=0, le=MAX_BTC)
    put_strike_usd_per_btc: float = Field(gt=0, le=MAX_USD_PER_BTC)
    call_strike_usd_per_btc: float = Field(gt=0, le=MAX_USD_PER_BTC)
    put_premium_usd_per_btc: float = Field(default=0.0, ge=0, le=MAX_USD_PER_BTC)
    call_premium_usd_per_btc: float = Field(default=0.0, ge=0, le=MAX_USD_PER_BTC)
    settlement: Settlement = "monthly"

    @model_validator(mode="after")
    def _strikes(self) -> BtcCollarConfig:
        if self.put_strike_usd_per_btc >= self.call_strike_usd_per_btc:
            raise ValueError(
                f"put_strike_usd_per_btc {self.put_strike_usd_per_btc:g} must be below "
                f"call_strike_usd_per_btc {self.call_strike_usd_per_btc:g}"
            )
        _need_term(self.settlement, self)
        return self


class DifficultySwapConfig(_Swap):
    """Difficulty (units of 1e12) against ``strike_difficulty_t``: a long receives
    ``notional_usd_per_day * (D / K - 1) * days`` per period, a short pays it."""

    type: Literal["difficulty_swap"]
    id: Id
    side: Literal["long", "short"] = "long"
    strike_difficulty_t: float = Field(gt=0, le=MAX_DIFFICULTY_T)
    notional_usd_per_day: float = Field(gt=0, le=MAX_LUMP_USD)
    settlement: Settlement = "monthly"


class VolatilitySwapConfig(_Swap):
    """Realised volatility of the daily hashprice index over the term against a strike: a
    long receives ``notional * (sigma - K)`` (``strike_kind = "volatility"``) or
    ``notional * (sigma**2 - K**2)`` (``"variance"``) at the term's end, sigma annualised
    in points; a short pays it."""

    type: Literal["hashprice_volatility_swap"]
    id: Id
    side: Literal["long", "short"] = "long"
    strike_kind: Literal["volatility", "variance"] = "volatility"
    strike_pct: float = Field(gt=0, le=MAX_VOLATILITY_PCT)
    notional_usd_per_point: float = Field(gt=0, le=MAX_LUMP_USD)

    @model_validator(mode="after")
    def _two_days(self) -> VolatilitySwapConfig:
        assert self.start is not None
        assert self.end is not None
        if (self.end - self.start).total_seconds() < 2 * 86_400:
            raise ValueError("a volatility swap's term must span at least two days")
        return self


BitcoinHedgeConfig = (
    BtcForwardConfig
    | BtcPutConfig
    | BtcCallConfig
    | BtcCollarConfig
    | DifficultySwapConfig
    | VolatilitySwapConfig
)

#: Which feed each instrument type settles on (``None``: the site's hashprice).
NEEDS_FEED = {
    "btc_forward": "btc_usd_feed",
    "btc_put": "btc_usd_feed",
    "btc_call": "btc_usd_feed",
    "btc_collar": "btc_usd_feed",
    "difficulty_swap": "difficulty_feed",
    "hashprice_volatility_swap": None,
}


def bitcoin_hedge(h: BitcoinHedgeConfig) -> BitcoinHedge:
    """A Bitcoin instrument's config as a core value."""
    start = h.start.timestamp() if h.start else None
    end = h.end.timestamp() if h.end else None
    match h:
        case BtcForwardConfig():
            return BtcForward(h.id, h.quantity_btc, h.price_usd_per_btc, start, end)
        case BtcCallConfig():  # before BtcPutConfig: a subclass of it
            return BtcOptionStrip(
                h.id, h.quantity_btc_per_day, None, h.strike_usd_per_btc,
                call_premium_usd_per_btc=h.premium_usd_per_btc,
                settlement=h.settlement, start=start, end=end,
            )  # fmt: skip
        case BtcPutConfig():
            return BtcOptionStrip(
                h.id, h.quantity_btc_per_day, h.strike_usd_per_btc, None,
                put_premium_usd_per_btc=h.premium_usd_per_btc,
                settlement=h.settlement, start=start, end=end,
            )  # fmt: skip
        case BtcCollarConfig():
            return BtcOptionStrip(
                h.id,
                h.quantity_btc_per_day,
                h.put_strike_usd_per_btc,
                h.call_strike_usd_per_btc,
                h.put_premium_usd_per_btc,
                h.call_premium_usd_per_btc,
                h.settlement,
                start,
                end,
            )
        case DifficultySwapConfig():
            return DifficultySwap(
                h.id,
                h.side,
                h.strike_difficulty_t,
                h.notional_usd_per_day,
                h.settlement,
                start,
                end,
            )
        case VolatilitySwapConfig():
            assert start is not None
            assert end is not None
            return VolatilitySwap(
                h.id, h.side, h.strike_kind, h.strike_pct, h.notional_usd_per_point, start, end
            )
