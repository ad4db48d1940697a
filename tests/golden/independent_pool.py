"""Independent reference for a fixed pool payout delivered on hashrate (standard library
only), from ECONOMICS.md ("Pool payouts: cash-settled or delivered", "Settlement per
interval") alone. Spot supply, one operating point per model, zero adders.

Miners are walked in merit order (best J/TH first). A miner occupying the hashrate span
``[a, a + h]`` TH/s earns the committed rate ``HPc = HPf + charge`` (the fixed rate plus the
shortfall charge a delivered PH/s avoids) on the part of the span below ``Hc`` and ``HPn``
on the rest; it runs iff that revenue per MWh is at least ``P``. The pool then pays ``HPf``
per PH/s-day delivered up to ``Hc`` and ``HPn`` above, and charges ``charge`` per PH/s-day
short of ``Hc``. It shares no code with the controller.
"""

from __future__ import annotations

import itertools
from datetime import datetime

from tests.golden.independent import _read_series, _value_at

_EPS_TH = 1e-9


def charge_per_ph_day(HP: float, HPf: float, penalty: float | None) -> float:
    """What a PH/s-day short of the commitment costs."""
    return penalty if penalty is not None else max(HP - HPf, 0.0)


def running_counts(
    fleet: list[tuple[int, float, float]], P: float, HPn: float, HPc: float, Hc_th: float
) -> list[int]:
    """Miners running in each group (fleet in merit order)."""
    counts = []
    pos = 0.0  # TH/s of every miner before
    for count, h, w in fleet:
        run = 0
        k = 0
        while k < count:
            a = pos + k * h
            if a + h <= Hc_th + _EPS_TH:  # wholly committed: every such miner alike
                m = min(count - k, int((Hc_th + _EPS_TH - a) // h))
                within = h
            elif a >= Hc_th - _EPS_TH:  # wholly floating
                m = count - k
                within = 0.0
            else:  # across the commitment: on its own
                m = 1
                within = Hc_th - a
            usd_per_h = (within * HPc + (h - within) * HPn) / 24_000.0
            if usd_per_h * 1e6 / w >= P:
                run += m
            k += m
        counts.append(run)
        pos += count * h
    return counts


def settle(
    P: float,
    HP: float,
    dt_h: float,
    *,
    fleet: list[tuple[int, float, float]],
    pool_fee: float,
    Hc_ph: float,
    HPf: float,
    penalty: float | None,
    decide_with_pool: bool = True,
) -> dict[str, float]:
    """Decision and settlement of one interval; fleet in merit order. With
    ``decide_with_pool`` false the decision ignores the contract (every miner at ``HPn``)
    and the contract still settles."""
    HPn = HP * (1.0 - pool_fee)
    charge = charge_per_ph_day(HP, HPf, penalty)
    decide_hc = Hc_ph * 1000.0 if decide_with_pool else 0.0
    run = running_counts(fleet, P, HPn, HPf + charge, decide_hc)
    q = sum(n * w for n, (_, _, w) in zip(run, fleet, strict=True)) / 1e6
    H = sum(n * h for n, (_, h, _) in zip(run, fleet, strict=True)) / 1e3
    mining = HPn * H * dt_h / 24.0
    fixed = (HPf - HPn) * min(H, Hc_ph) * dt_h / 24.0
    shortfall = charge * max(Hc_ph - H, 0.0) * dt_h / 24.0
    cost = P * q * dt_h
    return {
        "running": float(sum(run)),
        "mined_mwh": q * dt_h,
        "mining_revenue_usd": mining,
        "power_cost_usd": cost,
        "pool_fixed_rate_usd": fixed,
        "pool_shortfall_charge_usd": shortfall,
        "net_usd": mining + fixed - shortfall - cost,
    }


def per_interval(
    price_csv: str,
    hashprice_csv: str,
    *,
    fleet: list[tuple[int, float, float]],
    pool_fee: float,
    Hc_ph: float,
    HPf: float,
    penalty: float | None,
    start: datetime,
    end: datetime,
    decide_with_pool: bool = True,
) -> list[tuple[datetime, list[int], dict[str, float]]]:
    """(start, running per group, settlement) of every interval; fleet in merit order."""
    prices = _read_series(price_csv)
    hps = _read_series(hashprice_csv)
    cuts = {start, end}
    cuts.update(ts for ts, _ in prices if start < ts < end)
    cuts.update(ts for ts, _ in hps if start < ts < end)
    out = []
    for a, b in itertools.pairwise(sorted(cuts)):
        dt_h = (b - a).total_seconds() / 3600.0
        P, HP = _value_at(prices, a), _value_at(hps, a)
        HPn = HP * (1.0 - pool_fee)
        HPc = HPf + charge_per_ph_day(HP, HPf, penalty)
        run = running_counts(fleet, P, HPn, HPc, Hc_ph * 1000.0 if decide_with_pool else 0.0)
        r = settle(
            P,
            HP,
            dt_h,
            fleet=fleet,
            pool_fee=pool_fee,
            Hc_ph=Hc_ph,
            HPf=HPf,
            penalty=penalty,
            decide_with_pool=decide_with_pool,
        )
        out.append((a, run, r))
    return out
