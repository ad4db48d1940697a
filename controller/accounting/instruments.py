"""Supply contracts and hedges as plain values for the pure core."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.accounting.bitcoin import BitcoinHedge
from controller.accounting.options import Option
from controller.accounting.supply_stack import Quantity, SupplyStack, Tranche
from controller.domain import EpochS, FloatArray


@dataclass(frozen=True, slots=True)
class SpotSupply:
    """Power bought at the real-time price."""


@dataclass(frozen=True, slots=True)
class FixedPpa:
    """A fixed-price contract for ``quantity_mw`` at ``price_usd_per_mwh``; spare power resold.

    With ``resale_cap_usd_per_mwh`` set, spare power resells at ``min(P, cap)`` (a short call
    embedded in the contract and settled physically); otherwise at spot.
    """

    quantity_mw: float
    price_usd_per_mwh: float
    resale_cap_usd_per_mwh: float | None = None


#: A supply contract. ``SpotSupply`` and ``FixedPpa`` are the one-tranche cases of a
#: ``SupplyStack`` (``as_stack``): load above a PPA's quantity is bought at spot.
Supply = SpotSupply | FixedPpa | SupplyStack


def as_stack(supply: Supply) -> SupplyStack:
    """Any supply as a stack: spot is no tranche, a PPA is one flat tranche."""
    match supply:
        case SpotSupply():
            return SupplyStack(())
        case FixedPpa(quantity_mw=q, price_usd_per_mwh=k, resale_cap_usd_per_mwh=cap):
            return SupplyStack((Tranche("ppa", float(q), k, cap),))
        case SupplyStack():
            return supply


@dataclass(frozen=True, slots=True)
class ShortCall:
    """A financially settled call on power the site sold: premium in, upside above strike out."""

    id: str
    quantity_mw: float
    strike_usd_per_mwh: float
    premium_usd_per_mwh: float
    start: EpochS | None = None
    end: EpochS | None = None


@dataclass(frozen=True, slots=True)
class HashrateForward:
    """A hashrate forward / fixed pool payout, cash-settled against the hashprice index."""

    id: str
    hashrate_ph: float
    price_usd_per_ph_day: float
    start: EpochS | None = None
    end: EpochS | None = None


@dataclass(frozen=True, slots=True)
class PoolPayout:
    """A fixed pool payout delivered on hashrate (ECONOMICS.md, "Pool payouts: cash-settled
    or delivered"): the pool pays ``price_usd_per_ph_day`` (HPf) per PH/s-day actually
    delivered up to ``hashrate_ph`` (Hc), and its floating rate above; each PH/s-day short
    of Hc is charged ``shortfall_penalty_usd_per_ph_day`` when set, else ``max(HP - HPf, 0)``.
    It changes the decision: see ``controller.accounting.pool_payout``."""

    id: str
    hashrate_ph: float
    price_usd_per_ph_day: float
    shortfall_penalty_usd_per_ph_day: float | None = None
    start: EpochS | None = None
    end: EpochS | None = None


@dataclass(frozen=True, slots=True)
class VirtualPpa:
    """A financial fixed-for-floating swap on power (a virtual PPA): the site receives
    ``(P - K) * Q * dt_h``. It settles in cash and never changes dispatch."""

    id: str
    quantity: Quantity
    price_usd_per_mwh: float
    start: EpochS | None = None
    end: EpochS | None = None


#: ``Option`` generalises ``ShortCall`` (a short call on the interval price, per-MWh premium);
#: ``BitcoinHedge`` are the instruments on the BTC price, difficulty and hashprice volatility.
Hedge = ShortCall | HashrateForward | VirtualPpa | PoolPayout | Option | BitcoinHedge


def opportunity_cost_usd_per_mwh(
    supply: Supply, price_usd_per_mwh: FloatArray | float, adders_usd_per_mwh: float = 0.0
) -> FloatArray:
    """Value of one MWh not burnt (ECONOMICS.md, "opportunity cost").

    Spot: ``P``; PPA resold at spot: ``P`` (the contract price is sunk); PPA with resale
    capped at ``S``: ``min(P, S)``. Adders are charges on consumption, so every MWh not
    burnt also saves them; with zero adders this is exactly the table in ECONOMICS.md.
    Financial hedges never enter: they move cash, not the marginal value of a MWh.
    This is the cost of load within the PPA's quantity; above it, spot's (``tranche_costs``).
    """
    price = np.asarray(price_usd_per_mwh, dtype=np.float64)
    match supply:
        case FixedPpa(resale_cap_usd_per_mwh=float() as cap):
            base = np.minimum(price, cap)
        case FixedPpa() | SpotSupply():
            base = price
        case SupplyStack():
            raise TypeError("a supply stack's cost depends on the load: see tranche_costs")
    return np.asarray(base + adders_usd_per_mwh, dtype=np.float64)


def active_fraction(
    start: EpochS | None, end: EpochS | None, t0: FloatArray, t1: FloatArray
) -> FloatArray:
    """Share of each interval ``[t0, t1)`` inside an instrument's term ``[start, end)``."""
    lo = t0 if start is None else np.maximum(t0, start)
    hi = t1 if end is None else np.minimum(t1, end)
    span = np.where(t1 > t0, t1 - t0, 1.0)
    return np.asarray(np.clip((hi - lo) / span, 0.0, 1.0), dtype=np.float64)
