"""Grid programs as config (capacity awards, 4CP credits) and their conversion to core values."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from controller.accounting.grid_revenue import CapacityAward, FourCpCredit, GridProgram
from controller.config.contracts import QuantityConfig
from controller.config.terms import Id, Term
from controller.runtime.config_base import Strict
from controller.runtime.config_bounds import MAX_PRICE_USD_PER_MWH

#: A transmission rate (USD per MW of peak load per year): ERCOT's 4CP charge is tens of
#: thousands; this bound only stops a typo (USD/kW-year given as USD/W-year, ...).
MAX_TRANSMISSION_USD_PER_MW_YEAR = 10_000_000.0

Program = Literal["ECRS", "RRS", "Non-Spin", "ERS", "other"]


class CapacityAwardConfig(QuantityConfig, Term):
    """MW awarded in a grid program (``quantity_mw``, or a ``shape`` of delivery blocks, or
    a ``schedule``) at ``price_usd_per_mw_h`` per MW per hour; scenario events and commands
    name it in ``award`` to deploy it."""

    type: Literal["capacity_award"]
    id: Id
    program: Program
    price_usd_per_mw_h: float = Field(ge=0, le=MAX_PRICE_USD_PER_MWH)
    #: Paid per awarded MWh deployed and complied with (0: the curtailed energy's value is
    #: already in the resale or the spot power not bought).
    deployment_price_usd_per_mwh: float = Field(default=0.0, ge=0, le=MAX_PRICE_USD_PER_MWH)
    #: Charged per MWh above the cap in a non-compliant deployment (its capacity payment is
    #: forfeited as well).
    penalty_usd_per_mwh: float = Field(default=0.0, ge=0, le=MAX_PRICE_USD_PER_MWH)


class FourCpConfig(Strict):
    """4CP: the transmission charge avoided by curtailing in ``peak_window`` overrides,
    booked as an estimate (docs/economics.md, "Grid revenue")."""

    type: Literal["four_cp"]
    id: Id
    rate_usd_per_mw_year: float = Field(gt=0, le=MAX_TRANSMISSION_USD_PER_MW_YEAR)
    #: Peak windows the site curtails per coincident peak: each books that share of it.
    windows_per_peak: int = Field(default=1, ge=1, le=31)


GridProgramConfig = Annotated[CapacityAwardConfig | FourCpConfig, Field(discriminator="type")]


def grid_book(programs: tuple[CapacityAwardConfig | FourCpConfig, ...]) -> tuple[GridProgram, ...]:
    """Grid program configs as core values."""
    book: list[GridProgram] = []
    for p in programs:
        match p:
            case CapacityAwardConfig():
                book.append(
                    CapacityAward(
                        p.id,
                        p.program,
                        p.quantity(),
                        p.price_usd_per_mw_h,
                        p.deployment_price_usd_per_mwh,
                        p.penalty_usd_per_mwh,
                        p.start.timestamp() if p.start else None,
                        p.end.timestamp() if p.end else None,
                    )
                )
            case FourCpConfig():
                book.append(FourCpCredit(p.id, p.rate_usd_per_mw_year, p.windows_per_peak))
    return tuple(book)
