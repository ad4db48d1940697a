"""Supply contracts and hedges as config, and their conversion to the core's values.

Over 300 lines: every contract kind's model and its conversion sit together, so a new kind
is one place to read; the supply stack's quantity shapes are most of it.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, field_validator, model_validator

from controller.accounting.instruments import (
    FixedPpa,
    HashrateForward,
    Hedge,
    PoolPayout,
    ShortCall,
    SpotSupply,
    Supply,
    VirtualPpa,
)
from controller.accounting.options import Option
from controller.accounting.supply_stack import (
    HoursBlock,
    Quantity,
    ScheduledQuantity,
    ScheduleEntry,
    ShapedQuantity,
    SupplyStack,
    Tranche,
)
from controller.config.bitcoin import BitcoinHedgeConfig, bitcoin_hedge
from controller.config.terms import Id, Term
from controller.runtime.config_base import NonEmpty, Strict
from controller.runtime.config_bounds import (
    MAX_EVENTS,
    MAX_HASHPRICE_USD_PER_PH_DAY,
    MAX_HEDGES,
    MAX_LUMP_USD,
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


Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class HoursBlockConfig(Strict):
    """``quantity_mw`` on ``days`` in local hours ``[hours[0], hours[1])`` (hours 0..24)."""

    days: Annotated[tuple[Day, ...], NonEmpty]
    hours: tuple[int, int]
    quantity_mw: float = Field(ge=0, le=MAX_SITE_MW)

    @model_validator(mode="after")
    def _hours(self) -> HoursBlockConfig:
        lo, hi = self.hours
        if not 0 <= lo < hi <= 24:
            raise ValueError(f"hours must be [start, end) with 0 <= start < end <= 24: {[lo, hi]}")
        return self


class ShapeConfig(Strict):
    """A quantity shaped by local hours and days: 0 outside its blocks, which never overlap."""

    timezone: str = Field(min_length=1)
    blocks: Annotated[tuple[HoursBlockConfig, ...], NonEmpty, Field(max_length=7 * 24)]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r} (an IANA name: America/Chicago)"
            ) from None
        return name

    @model_validator(mode="after")
    def _no_overlap(self) -> ShapeConfig:
        seen: dict[tuple[str, int], int] = {}
        for k, block in enumerate(self.blocks):
            for day in block.days:
                for hour in range(*block.hours):
                    if (day, hour) in seen:
                        raise ValueError(
                            f"blocks[{k}] overlaps blocks[{seen[day, hour]}] on {day} at "
                            f"{hour:02d}:00: a tranche's blocks must not overlap"
                        )
                    seen[day, hour] = k
        return self


class ScheduleEntryConfig(Strict):
    """``quantity_mw`` over ``[start, end)``."""

    start: AwareDatetime
    end: AwareDatetime
    quantity_mw: float = Field(ge=0, le=MAX_SITE_MW)

    @model_validator(mode="after")
    def _ordered(self) -> ScheduleEntryConfig:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class QuantityConfig(Strict):
    """A quantity per interval: exactly one of ``quantity_mw`` (flat, 7x24), ``shape`` (by
    local hours and days) or ``schedule`` (contiguous entries, no gaps)."""

    quantity_mw: float | None = Field(default=None, ge=0, le=MAX_SITE_MW)
    shape: ShapeConfig | None = None
    schedule: tuple[ScheduleEntryConfig, ...] | None = Field(default=None, max_length=MAX_EVENTS)

    @model_validator(mode="after")
    def _one_quantity(self) -> QuantityConfig:
        given = [k for k in ("quantity_mw", "shape", "schedule") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of quantity_mw, shape or schedule"
                + (f" (got {', '.join(given)})" if given else "")
            )
        entries = self.schedule or ()
        if self.schedule is not None and not entries:
            raise ValueError("schedule is empty")
        for k in range(1, len(entries)):
            prev, cur = entries[k - 1], entries[k]
            if cur.start > prev.end:
                raise ValueError(
                    f"schedule[{k}] starts {cur.start.isoformat()}, after schedule[{k - 1}] "
                    f"ends {prev.end.isoformat()}: a schedule must have no gaps"
                )
            if cur.start < prev.end:
                raise ValueError(
                    f"schedule[{k}] starts {cur.start.isoformat()}, before schedule[{k - 1}] "
                    f"ends {prev.end.isoformat()}: schedule entries must not overlap"
                )
        return self

    def quantity(self) -> Quantity:
        """The quantity as a core value."""
        if self.shape is not None:
            blocks = tuple(
                HoursBlock(tuple(DAYS.index(d) for d in b.days), *b.hours, b.quantity_mw)
                for b in self.shape.blocks
            )
            return ShapedQuantity(blocks, ZoneInfo(self.shape.timezone))
        if self.schedule is not None:
            return ScheduledQuantity(
                tuple(
                    ScheduleEntry(e.start.timestamp(), e.end.timestamp(), e.quantity_mw)
                    for e in self.schedule
                )
            )
        assert self.quantity_mw is not None
        return float(self.quantity_mw)


class TrancheConfig(QuantityConfig):
    """One contract tranche of a supply stack: physically delivered power at a price, spare
    power resold at spot (or at ``min(P, resale_cap_usd_per_mwh)``)."""

    id: Id
    price_usd_per_mwh: UsdPerMwh
    resale_cap_usd_per_mwh: UsdPerMwh | None = None


class StackSupplyConfig(Strict):
    """Contract tranches, cheapest opportunity cost first, with spot above them."""

    type: Literal["stack"]
    tranches: Annotated[tuple[TrancheConfig, ...], NonEmpty, Field(max_length=MAX_HEDGES)]

    @model_validator(mode="after")
    def _unique_ids(self) -> StackSupplyConfig:
        unique("tranche ids", [t.id for t in self.tranches])
        if "spot" in {t.id for t in self.tranches}:
            raise ValueError("'spot' names the power bought above the tranches: pick another id")
        return self


SupplyConfig = Annotated[
    SpotSupplyConfig | FixedPpaConfig | CappedPpaConfig | StackSupplyConfig,
    Field(discriminator="type"),
]


class ShortCallConfig(Term):
    """A financially settled short call on power."""

    type: Literal["short_call"]
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    quantity_mw: Mw
    strike_usd_per_mwh: UsdPerMwh
    premium_usd_per_mwh: float = Field(ge=0, le=MAX_PRICE_USD_PER_MWH)


class OptionConfig(Term):
    """A financially settled option on power (USD/MWh, MW) or on hashprice (USD/PH/day,
    PH/s): long or short, call or put, settled on a basis over its term and delivery hours
    (``hours``: a shape whose blocks' ``quantity_mw`` is 1 in delivery hours; none = 7x24)."""

    type: Literal["option"]
    id: Id
    underlying: Literal["power", "hashprice"] = "power"
    side: Literal["long", "short"]
    kind: Literal["call", "put"]
    strike: float = Field(ge=-MAX_PRICE_USD_PER_MWH, le=MAX_PRICE_USD_PER_MWH)
    quantity: float = Field(gt=0, le=MAX_SITE_PH)
    premium_per_unit: float = Field(default=0.0, ge=0, le=MAX_PRICE_USD_PER_MWH)
    premium_lump_usd: float = Field(default=0.0, ge=0, le=MAX_LUMP_USD)
    settlement: Literal["interval", "hourly", "daily", "day_ahead"] = "interval"
    hours: ShapeConfig | None = None
    timezone: str = Field(default="UTC", min_length=1)

    @model_validator(mode="after")
    def _coherent(self) -> OptionConfig:
        if self.underlying == "hashprice":
            if not 0 <= self.strike <= MAX_HASHPRICE_USD_PER_PH_DAY:
                raise ValueError(
                    f"strike {self.strike} USD/PH/day is outside [0, "
                    f"{MAX_HASHPRICE_USD_PER_PH_DAY}]"
                )
            if self.settlement == "day_ahead":
                raise ValueError("a hashprice has no day-ahead price: settle on interval or daily")
        elif self.quantity > MAX_SITE_MW:
            raise ValueError(f"quantity {self.quantity} MW is above {MAX_SITE_MW}")
        if self.premium_lump_usd and self.premium_per_unit:
            raise ValueError("give premium_per_unit or premium_lump_usd, not both")
        if self.premium_lump_usd and self.start is None:
            raise ValueError("a lump-sum premium is paid at the term's start: give start")
        if self.hours is not None:
            for k, block in enumerate(self.hours.blocks):
                if block.quantity_mw not in (0.0, 1.0):
                    raise ValueError(
                        f"hours.blocks[{k}].quantity_mw is {block.quantity_mw}: delivery hours "
                        "are 1 (delivered) or 0"
                    )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r} (an IANA name)") from None
        return self

    def option(self) -> Option:
        """The option as a core value."""
        hours = None
        if self.hours is not None:
            hours = ShapedQuantity(
                tuple(
                    HoursBlock(tuple(DAYS.index(d) for d in b.days), *b.hours, b.quantity_mw)
                    for b in self.hours.blocks
                ),
                ZoneInfo(self.hours.timezone),
            )
        return Option(
            self.id,
            self.underlying,
            self.side,
            self.kind,
            self.strike,
            self.quantity,
            self.settlement,
            self.premium_per_unit,
            self.premium_lump_usd,
            hours,
            ZoneInfo(self.timezone),
            self.start.timestamp() if self.start else None,
            self.end.timestamp() if self.end else None,
        )


class HashrateForwardConfig(Term):
    """A hashrate forward or fixed pool payout, cash-settled on the hashprice index."""

    type: Literal["hashrate_forward"]
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    hashrate_ph: float = Field(gt=0, le=MAX_SITE_PH)
    price_usd_per_ph_day: float = Field(gt=0, le=MAX_HASHPRICE_USD_PER_PH_DAY)


class PoolPayoutConfig(Term):
    """A fixed pool payout delivered on hashrate: ``price_usd_per_ph_day`` per PH/s-day
    delivered up to ``hashrate_ph``, the pool's floating rate above; each PH/s-day short is
    charged ``shortfall_penalty_usd_per_ph_day`` if set, else ``max(HP - HPf, 0)``. It
    changes dispatch: the first ``hashrate_ph`` of the merit order earn the fixed rate plus
    the charge they avoid. At most one per site."""

    type: Literal["pool_payout"]
    id: Id
    hashrate_ph: float = Field(gt=0, le=MAX_SITE_PH)
    price_usd_per_ph_day: float = Field(gt=0, le=MAX_HASHPRICE_USD_PER_PH_DAY)
    shortfall_penalty_usd_per_ph_day: float | None = Field(
        default=None, ge=0, le=MAX_HASHPRICE_USD_PER_PH_DAY
    )


class VirtualPpaConfig(QuantityConfig, Term):
    """A virtual PPA (fixed-for-floating swap on power): the site receives
    ``(P - K) * Q * dt_h``; financial, so it never changes dispatch. Its quantity is flat,
    shaped or scheduled, as a tranche's."""

    type: Literal["virtual_ppa"]
    id: Id
    price_usd_per_mwh: UsdPerMwh


def one_pool(hedges: tuple[object, ...]) -> None:
    """A book holds at most one delivered pool payout: the decision values one commitment."""
    pools = [h.id for h in hedges if isinstance(h, PoolPayoutConfig)]
    if len(pools) > 1:
        raise ValueError(f"at most one pool_payout per book, got {', '.join(pools)}")


HedgeConfig = Annotated[
    ShortCallConfig
    | HashrateForwardConfig
    | VirtualPpaConfig
    | PoolPayoutConfig
    | OptionConfig
    | BitcoinHedgeConfig,
    Field(discriminator="type"),
]


def supply_contract(
    supply: SpotSupplyConfig | FixedPpaConfig | CappedPpaConfig | StackSupplyConfig,
) -> Supply:
    """A supply config as a core value."""
    match supply:
        case SpotSupplyConfig():
            return SpotSupply()
        case FixedPpaConfig(quantity_mw=q, price_usd_per_mwh=k):
            return FixedPpa(q, k)
        case CappedPpaConfig(quantity_mw=q, price_usd_per_mwh=k, strike_usd_per_mwh=s):
            return FixedPpa(q, k, resale_cap_usd_per_mwh=s)
        case StackSupplyConfig(tranches=tranches):
            return SupplyStack(
                tuple(
                    Tranche(t.id, t.quantity(), t.price_usd_per_mwh, t.resale_cap_usd_per_mwh)
                    for t in tranches
                )
            )


def hedge_book(
    hedges: tuple[HedgeConfig, ...],
) -> tuple[Hedge, ...]:
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
            case VirtualPpaConfig():
                book.append(VirtualPpa(h.id, h.quantity(), h.price_usd_per_mwh, start, end))
            case PoolPayoutConfig():
                book.append(
                    PoolPayout(
                        h.id,
                        h.hashrate_ph,
                        h.price_usd_per_ph_day,
                        h.shortfall_penalty_usd_per_ph_day,
                        start,
                        end,
                    )
                )
            case OptionConfig():
                book.append(h.option())
            case _:
                book.append(bitcoin_hedge(h))
    return tuple(book)
