"""Hashprice, energy hashprice, opportunity cost and operating-point values (ECONOMICS.md).

Every function is pure and works on scalars or numpy arrays alike (broadcasting).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from controller.domain import BoolArray, FloatArray, IntArray

SECONDS_PER_DAY = 86_400.0
HOURS_PER_DAY = 24.0
TWO_POW_32 = float(2**32)

Num = TypeVar("Num", float, FloatArray)


def hashprice_usd_per_ph_day(
    difficulty: Num, subsidy_btc: Num, fees_btc_per_block: Num, btc_usd: Num
) -> Num:
    """Expected USD per PH/s per day from chain data.

    ``HP = 86400 * 1e15 * (subsidy + fees) * btc_usd / (difficulty * 2**32)``.
    """
    btc_per_block = subsidy_btc + fees_btc_per_block
    return SECONDS_PER_DAY * 1e15 * btc_per_block * btc_usd / (difficulty * TWO_POW_32)


def net_hashprice(hashprice_usd_per_ph_day: Num, pool_fee: float) -> Num:
    """What the site earns per PH/s per day after the pool fee: ``HP * (1 - f)``."""
    return hashprice_usd_per_ph_day * (1.0 - pool_fee)


def energy_hashprice_usd_per_mwh(
    net_hashprice_usd_per_ph_day: Num, efficiency_j_per_th: Num | float
) -> Num:
    """Revenue per MWh burnt: ``EHP = HPn * 1000 / (24 * E)``."""
    return net_hashprice_usd_per_ph_day * 1000.0 / (HOURS_PER_DAY * efficiency_j_per_th)


def hashspark_spread_usd_per_mwh(
    forward_usd_per_ph_day: float,
    pool_fee: float,
    fleet_efficiency_j_per_th: float,
    ppa_price_usd_per_mwh: float,
) -> float:
    """Margin a fully hedged site has locked in: ``HPf * (1 - f) * 1000 / (24 * E) - K``."""
    locked = energy_hashprice_usd_per_mwh(
        net_hashprice(forward_usd_per_ph_day, pool_fee), fleet_efficiency_j_per_th
    )
    return locked - ppa_price_usd_per_mwh


def point_value_usd_per_h(
    hashrate_th: FloatArray | float,
    power_w: FloatArray | float,
    net_hashprice_usd_per_ph_day: FloatArray | float,
    opportunity_cost_usd_per_mwh: FloatArray | float,
) -> FloatArray:
    """Margin of running at an operating point: ``h * HPn / 24000 - w / 1e6 * c`` (USD/h).

    Off (0 TH/s at 0 W) is worth exactly 0.
    """
    # Scale the (few) prices first, then the (many) points: two products, one difference.
    per_th = np.divide(net_hashprice_usd_per_ph_day, 24_000.0)
    per_w = np.divide(opportunity_cost_usd_per_mwh, 1e6)
    return np.asarray(
        np.multiply(hashrate_th, per_th) - np.multiply(power_w, per_w), dtype=np.float64
    )


def best_point(values: FloatArray, valid: BoolArray) -> IntArray:
    """Index of the best operating point along the last axis, ties to the higher-power point.

    ``values`` and ``valid`` have points ordered by increasing power along the last axis;
    invalid points never win (at least one point must be valid). Ties go to the
    higher-power point, so one point runs iff ``EHP >= c`` as ECONOMICS.md states.
    """
    values, valid = np.broadcast_arrays(values, valid)
    # A loop over the few points beats argmax over a short, reversed last axis by ~5x.
    best = np.zeros(values.shape[:-1], dtype=np.int64)
    best_v = np.where(valid[..., 0], values[..., 0], -np.inf)
    for j in range(1, values.shape[-1]):
        v = values[..., j]
        better = valid[..., j] & (v >= best_v)
        best[better] = j
        best_v = np.where(better, v, best_v)
    return best
