"""A fixed-price site's payoff against the spot price, from the contracts' terms alone.

For a PPA of ``Q`` MW at ``K`` resold at spot, with an optional financially settled short
call (``Qc`` MW, strike ``S``, premium per MWh), each miner runs iff its energy hashprice is
at least the spot price (ECONOMICS.md: with resale at spot, ``c = P`` within the contract
quantity and above it). Everything is per hour at one hashprice: the curves the replay's
intervals scatter around, each interval at its own hashprice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.decision.economics import energy_hashprice_usd_per_mwh, net_hashprice
from controller.domain import FleetSpec, FloatArray


@dataclass(frozen=True, slots=True)
class CallTerms:
    """A short call on power: quantity, strike and premium."""

    quantity_mw: float
    strike_usd_per_mwh: float
    premium_usd_per_mwh: float


@dataclass(frozen=True, slots=True)
class PayoffCurves:
    """Load and every cash-flow component per hour (USD/h) at each spot price."""

    price_usd_per_mwh: FloatArray
    load_mw: FloatArray
    mining_usd_per_h: FloatArray
    power_cost_usd_per_h: FloatArray
    resale_usd_per_h: FloatArray
    premium_usd_per_h: FloatArray
    payout_usd_per_h: FloatArray

    @property
    def net_usd_per_h(self) -> FloatArray:
        """Mining + resale + premium - payout - power cost."""
        return np.asarray(
            self.mining_usd_per_h
            + self.resale_usd_per_h
            + self.premium_usd_per_h
            - self.payout_usd_per_h
            - self.power_cost_usd_per_h
        )


def miner_energy_hashprice(
    fleet: FleetSpec, hashprice_usd_per_ph_day: float, pool_fee: float
) -> FloatArray:
    """Each miner's energy hashprice (USD/MWh) at its top operating point."""
    rows = np.arange(fleet.top_point.size)
    th = fleet.hashrate_th[rows, fleet.top_point]
    w = fleet.power_w[rows, fleet.top_point]
    hpn = net_hashprice(hashprice_usd_per_ph_day, pool_fee)
    efficiency = np.asarray(w / th, dtype=np.float64)
    return np.asarray(energy_hashprice_usd_per_mwh(np.full_like(efficiency, hpn), efficiency))


def ppa_payoff(
    fleet: FleetSpec,
    price_usd_per_mwh: FloatArray,
    *,
    hashprice_usd_per_ph_day: float,
    pool_fee: float,
    quantity_mw: float,
    ppa_price_usd_per_mwh: float,
    call: CallTerms | None = None,
) -> PayoffCurves:
    """The per-hour payoff of a PPA resold at spot (and a short call) at each price."""
    rows = np.arange(fleet.top_point.size)
    th = fleet.hashrate_th[rows, fleet.top_point]
    w = fleet.power_w[rows, fleet.top_point]
    ehp = miner_energy_hashprice(fleet, hashprice_usd_per_ph_day, pool_fee)
    p = np.asarray(price_usd_per_mwh, dtype=np.float64)
    runs = ehp[None, :] >= p[:, None]
    load = runs @ w / 1e6
    hashing_ph = runs @ th / 1e3
    hpn = net_hashprice(hashprice_usd_per_ph_day, pool_fee)
    zero = np.zeros_like(p)
    premium = payout = zero
    if call is not None:
        premium = np.full_like(p, call.premium_usd_per_mwh * call.quantity_mw)
        payout = np.maximum(p - call.strike_usd_per_mwh, 0.0) * call.quantity_mw
    return PayoffCurves(
        price_usd_per_mwh=p,
        load_mw=np.asarray(load),
        mining_usd_per_h=np.asarray(hpn * hashing_ph / 24.0),
        power_cost_usd_per_h=np.full_like(p, ppa_price_usd_per_mwh * quantity_mw),
        resale_usd_per_h=np.asarray((quantity_mw - load) * p),
        premium_usd_per_h=np.asarray(premium),
        payout_usd_per_h=np.asarray(payout),
    )
