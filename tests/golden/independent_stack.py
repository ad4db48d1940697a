"""Independent reference for a supply stack (standard library only), from ECONOMICS.md
("Several tranches (a supply stack)", "Settlement per interval") alone.

One operating point per miner model, zero adders. Miners are walked in merit order (best
J/TH first); a miner occupying the load span ``[a, b]`` (``a``: the power of every miner
before it) pays the blend of the tranche costs over that span and runs iff its EHP is at
least that blend. Miners wholly inside one tranche are counted in one step; a miner across
a boundary is blended on its own. It shares no code with the controller.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tests.golden.independent import _read_series, _value_at

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EPS_W = 1e-6


@dataclass(frozen=True)
class Tranche:
    """``quantity_mw`` flat, or ``blocks`` [(days, (h0, h1), mw)] in ``tz``."""

    id: str
    price: float
    cap: float | None = None
    quantity_mw: float | None = None
    tz: str | None = None
    blocks: tuple[tuple[tuple[str, ...], tuple[int, int], float], ...] = ()

    def mw_at(self, t: datetime) -> float:
        if self.quantity_mw is not None:
            return self.quantity_mw
        assert self.tz is not None
        local = t.astimezone(ZoneInfo(self.tz))
        for days, (h0, h1), mw in self.blocks:
            if _DAYS[local.weekday()] in days and h0 <= local.hour < h1:
                return mw
        return 0.0


def segments(
    tranches: list[Tranche], P: float, t: datetime
) -> list[tuple[float, float, float, int]]:
    """(low W, high W, cost, tranche index or -1 for spot), cheapest first."""
    costed = []
    for i, tr in enumerate(tranches):
        resale = P if tr.cap is None else min(P, tr.cap)
        costed.append((resale, i, tr.mw_at(t)))
    costed.sort(key=lambda x: (x[0], x[1]))
    out = []
    low = 0.0
    for cost, i, mw in costed:
        out.append((low, low + mw * 1e6, cost, i))
        low += mw * 1e6
    out.append((low, math.inf, P, -1))
    return out


def blend(segs: list[tuple[float, float, float, int]], a: float, b: float) -> float:
    """Mean cost (USD/MWh) over the span [a, b] W."""
    usd = 0.0
    for lo, hi, cost, _ in segs:
        overlap = min(b, hi) - max(a, lo)
        if overlap > 0:
            usd += overlap * cost
    return usd / (b - a)


def running_counts(
    fleet: list[tuple[int, float, float]],
    HPn: float,
    segs: list[tuple[float, float, float, int]],
) -> list[int]:
    """Miners running in each group (fleet in merit order)."""
    counts = []
    pos = 0.0
    for count, h, w in fleet:
        ehp = HPn * 1000.0 / (24.0 * w / h)
        run = 0
        k = 0
        while k < count:
            s = pos + k * w
            seg = next(x for x in segs if x[1] > s + _EPS_W)
            if s + w <= seg[1] + _EPS_W:  # wholly inside this tranche
                m = (
                    min(count - k, int((seg[1] + _EPS_W - s) // w))
                    if seg[1] < math.inf
                    else count - k
                )
                if ehp >= seg[2]:
                    run += m
                k += m
            else:
                if ehp >= blend(segs, s, s + w):
                    run += 1
                k += 1
        counts.append(run)
        pos += count * w
    return counts


def settle(
    P: float,
    HP: float,
    dt_h: float,
    *,
    fleet: list[tuple[int, float, float]],
    pool_fee: float,
    tranches: list[Tranche],
    t: datetime,
) -> dict[str, float]:
    """Decision and settlement of one interval; fleet in merit order."""
    HPn = HP * (1.0 - pool_fee)
    segs = segments(tranches, P, t)
    run = running_counts(fleet, HPn, segs)
    q = sum(n * w for n, (_, _, w) in zip(run, fleet, strict=True)) / 1e6
    H = sum(n * h for n, (_, h, _) in zip(run, fleet, strict=True)) / 1e3
    power_cost = sum(tr.price * tr.mw_at(t) for tr in tranches) * dt_h
    resale = 0.0
    left = q
    for lo, hi, _, i in segs:
        if i < 0:
            resale -= max(left, 0.0) * P * dt_h  # above the tranches: bought at spot
            break
        mw = (hi - lo) / 1e6
        used = min(max(left, 0.0), mw)
        left -= used
        tr = tranches[i]
        resale += (mw - used) * (P if tr.cap is None else min(P, tr.cap)) * dt_h
    mining = HPn * H * dt_h / 24.0
    return {
        "running": float(sum(run)),
        "mined_mwh": q * dt_h,
        "mining_revenue_usd": mining,
        "power_cost_usd": power_cost,
        "resale_revenue_usd": resale,
        "net_usd": mining + resale - power_cost,
    }


def per_interval(
    price_csv: str,
    hashprice_csv: str,
    *,
    fleet: list[tuple[int, float, float]],
    pool_fee: float,
    tranches: list[Tranche],
    start: datetime,
    end: datetime,
) -> list[tuple[datetime, float, float, list[int], dict[str, float]]]:
    """(start, P, HP, running per group, settlement) of every interval; fleet in merit order."""
    prices = _read_series(price_csv)
    hps = _read_series(hashprice_csv)
    cuts = {start, end}
    cuts.update(ts for ts, _ in prices if start < ts < end)
    cuts.update(ts for ts, _ in hps if start < ts < end)
    out = []
    for a, b in itertools.pairwise(sorted(cuts)):
        dt_h = (b - a).total_seconds() / 3600.0
        P, HP = _value_at(prices, a), _value_at(hps, a)
        segs = segments(tranches, P, a)
        run = running_counts(fleet, HP * (1.0 - pool_fee), segs)
        r = settle(P, HP, dt_h, fleet=fleet, pool_fee=pool_fee, tranches=tranches, t=a)
        out.append((a, P, HP, run, r))
    return out


def _self_check() -> None:
    """ECONOMICS.md's worked check: 285 S21 run, load 0.9975 MW, 0.0025 MW resold at 100."""
    fleet = [(400, 200.0, 3500.0), (600, 104.0, 3068.0)]
    tranches = [Tranche("ppa", 45.0, cap=100.0, quantity_mw=1.0)]
    t = datetime(2024, 6, 1, tzinfo=UTC)
    segs = segments(tranches, 300.0, t)
    assert running_counts(fleet, 49.0, segs) == [285, 0]
    r = settle(300.0, 50.0, 0.25, fleet=fleet, pool_fee=0.02, tranches=tranches, t=t)
    assert abs(r["mined_mwh"] - 0.9975 * 0.25) < 1e-12
    assert abs(r["resale_revenue_usd"] - 0.0025 * 100 * 0.25) < 1e-12


if __name__ == "__main__":
    _self_check()
    print("worked check: OK (285 S21 run, 0.9975 MW, 0.0025 MW resold at 100)")
