"""A fixed pool payout delivered on hashrate: its rate for the decision and its settlement.

ECONOMICS.md, "Pool payouts: cash-settled or delivered". The pool pays ``HPf`` per PH/s-day
for hashrate delivered up to the committed ``Hc`` and its floating rate ``HPn`` above; each
PH/s-day short of ``Hc`` is charged (``max(HP - HPf, 0)``, or a fixed penalty). A PH/s
delivered within ``Hc`` therefore earns ``HPf`` plus the charge it avoids: the committed
rate ``HPc`` of ``committed_rate``. The decision values the first ``Hc`` PH/s of the merit
order (most efficient miners first) at ``HPc`` and the rest at ``HPn``
(``controller.decision.stack``).

Settlement books two flows beside the floating mining revenue (``HPn`` on all delivered
hashrate), per interval on its time-averaged delivered hashrate ``D``:

- ``pool_fixed_rate_usd = (HPf - HPn) * min(D, Hc) * dt_h / 24`` (signed, received), and
- ``pool_shortfall_charge_usd = charge * max(Hc - D, 0) * dt_h / 24`` (paid),

so mining plus the two is ``HPf * min(D, Hc) + HPn * max(D - Hc, 0) - charge * shortfall``.
Both are scaled by the share of the interval inside the contract's term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.accounting.instruments import PoolPayout, active_fraction
from controller.domain import FloatArray

#: Component names of the two flows (ledger ``instrument_flows``, metrics, report).
FIXED_RATE = "pool_fixed_rate_usd"
SHORTFALL_CHARGE = "pool_shortfall_charge_usd"


def shortfall_charge(pool: PoolPayout, hashprice_usd_per_ph_day: FloatArray) -> FloatArray:
    """What each PH/s-day short of the commitment costs (USD/PH/day)."""
    hp = np.asarray(hashprice_usd_per_ph_day, dtype=np.float64)
    if pool.shortfall_penalty_usd_per_ph_day is not None:
        return np.full(hp.shape, pool.shortfall_penalty_usd_per_ph_day)
    return np.asarray(np.maximum(hp - pool.price_usd_per_ph_day, 0.0), dtype=np.float64)


def committed_rate(pool: PoolPayout, hashprice_usd_per_ph_day: FloatArray) -> FloatArray:
    """``HPc``: what a PH/s delivered within the commitment earns (USD/PH/day), the fixed rate
    plus the shortfall charge it avoids."""
    return pool.price_usd_per_ph_day + shortfall_charge(pool, hashprice_usd_per_ph_day)


def committed_th(pool: PoolPayout | None, t: FloatArray) -> FloatArray:
    """The committed hashrate (TH/s) at each decision instant ``t``: 0 outside the term."""
    t = np.asarray(t, dtype=np.float64)
    if pool is None:
        return np.zeros(t.shape)
    inside = np.ones(t.shape, dtype=bool)
    if pool.start is not None:
        inside &= t >= pool.start
    if pool.end is not None:
        inside &= t < pool.end
    return np.where(inside, pool.hashrate_ph * 1e3, 0.0)


@dataclass(frozen=True, slots=True)
class PoolFlows:
    """A pool payout's flows per interval (USD)."""

    fixed_rate_usd: FloatArray  # received (signed): (HPf - HPn) on delivered hashrate <= Hc
    shortfall_charge_usd: FloatArray  # paid: charge on the hashrate short of Hc


def settle_pool(
    pool: PoolPayout,
    *,
    start: FloatArray,
    end: FloatArray,
    hashprice_usd_per_ph_day: FloatArray,
    net_hashprice_usd_per_ph_day: FloatArray,
    delivered_ph: FloatArray,
) -> PoolFlows:
    """Settle the contract on each interval's time-averaged delivered hashrate."""
    days = np.asarray((end - start) / 86_400.0, dtype=np.float64)
    days = days * active_fraction(pool.start, pool.end, start, end)
    hc = pool.hashrate_ph
    within = np.minimum(delivered_ph, hc)
    short = np.maximum(hc - delivered_ph, 0.0)
    fixed = (pool.price_usd_per_ph_day - net_hashprice_usd_per_ph_day) * within * days
    charge = shortfall_charge(pool, hashprice_usd_per_ph_day) * short * days
    return PoolFlows(np.asarray(fixed, np.float64), np.asarray(charge, np.float64))


def pool_of(hedges: tuple[object, ...]) -> PoolPayout | None:
    """The book's delivered pool payout (the config allows one), or None."""
    pools = [h for h in hedges if isinstance(h, PoolPayout)]
    return pools[0] if pools else None
