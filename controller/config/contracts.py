"""Supply contracts and hedges as config, and their conversion to the core's values."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from controller.accounting.instruments import (
    FixedPpa,
    HashrateForward,
    Hedge,
    ShortCall,
    SpotSupply,
    Supply,
)
from controller.runtime.config_base import Strict
from controller.runtime.config_bounds import (
    MAX_HASHPRICE_USD_PER_PH_DAY,
    MAX_PRICE_USD_PER_MWH,
    MAX_SITE_MW,
    MAX_SITE_PH,
)

#: A price, strike or premium in USD/MWh, within ``MAX_PRICE_USD_PER_MWH`` either way.
UsdPerMwh = Annotated[float, Field(ge=-MAX_PRICE_USD_PER_MWH, le=MAX_PRICE_USD_PER_MWH)]
Mw = Annotated[float, Field(gt=0, le=MAX_SITE_MW)]


def unique(kind: str, ids: list[str]) -> None:
    dupes = sorted(i for i, n in Counter(ids).items() if n > 1)  # linear: lists are long
    if dupes:
        raise ValueError(f"{kind} must be unique: {', '.join(dupes)}")


class SpotSupplyConfig(Strict):
    """Power bought at the real-time price."""

    type: Literal["spot"]


class FixedPpaConfig(Strict):
    """Fixed-price PPA; spare power resold at spot."""

    type: Literal["fixed_ppa"]
    quantity_mw: Mw
    price_usd_per_mwh: UsdPerMwh


class CappedPpaConfig(Strict):
    """Fixed-price PPA whose resale is capped at a strike (an embedded short call)."""

    type: Literal["capped_ppa"]
    quantity_mw: Mw
    price_usd_per_mwh: UsdPerMwh
    strike_usd_per_mwh: UsdPerMwh


SupplyConfig = Annotated[
    SpotSupplyConfig | FixedPpaConfig | CappedPpaConfig, Field(discriminator="type")
]


class Term(Strict):
    """An instrument's term; open ends mean "throughout"."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Term:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ShortCallConfig(Term):
    """A financially settled short call on power."""

    type: Literal["short_call"]
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    quantity_mw: Mw
    strike_usd_per_mwh: UsdPerMwh
    premium_usd_per_mwh: float = Field(ge=0, le=MAX_PRICE_USD_PER_MWH)


class HashrateForwardConfig(Term):
    """A hashrate forward or fixed pool payout, cash-settled on the hashprice index."""

    type: Literal["hashrate_forward"]
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    hashrate_ph: float = Field(gt=0, le=MAX_SITE_PH)
    price_usd_per_ph_day: float = Field(gt=0, le=MAX_HASHPRICE_USD_PER_PH_DAY)


HedgeConfig = Annotated[ShortCallConfig | HashrateForwardConfig, Field(discriminator="type")]


def supply_contract(supply: SpotSupplyConfig | FixedPpaConfig | CappedPpaConfig) -> Supply:
    """A supply config as a core value."""
    match supply:
        case SpotSupplyConfig():
            return SpotSupply()
        case FixedPpaConfig(quantity_mw=q, price_usd_per_mwh=k):
            return FixedPpa(q, k)
        case CappedPpaConfig(quantity_mw=q, price_usd_per_mwh=k, strike_usd_per_mwh=s):
            return FixedPpa(q, k, resale_cap_usd_per_mwh=s)


def hedge_book(hedges: tuple[ShortCallConfig | HashrateForwardConfig, ...]) -> tuple[Hedge, ...]:
    """Hedge configs as core values."""
    book: list[Hedge] = []
    for h in hedges:
        start = h.start.timestamp() if h.start else None
        end = h.end.timestamp() if h.end else None
        match h:
            case ShortCallConfig():
                book.append(
                    ShortCall(
                        h.id, h.quantity_mw, h.strike_usd_per_mwh, h.premium_usd_per_mwh, start, end
                    )
                )
            case HashrateForwardConfig():
                book.append(
                    HashrateForward(h.id, h.hashrate_ph, h.price_usd_per_ph_day, start, end)
                )
    return tuple(book)
