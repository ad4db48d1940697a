"""Independent reference computation (standard library only) for the
curtailment backtest, following /work/shared/ECONOMICS.md.

Pure rule, no hysteresis, zero adders, one operating point per miner model.
Deliberately plain per-interval loops; it shares no code with the controller.
"""

from __future__ import annotations

import csv
import itertools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

PRICE_CSV = "/work/main/simulators/recordings/ercot_hb_south_rtm_spp_15min_2024-06_2025-03.csv"
HASHPRICE_CSV = "/work/main/simulators/recordings/btc_hashprice_daily_2024-05_2025-04_with_fees.csv"

LAST_PRICE_HOLD = timedelta(minutes=15)

KEYS = (
    "intervals",
    "hours",
    "mined_mwh",
    "curtailed_mwh",
    "mining_revenue_usd",
    "power_cost_usd",
    "resale_revenue_usd",
    "call_premium_usd",
    "call_payout_usd",
    "forward_settlement_usd",
    "net_usd",
)


def _parse_ts(text: str) -> datetime:
    text = text.strip()
    if not text.endswith("Z"):
        raise ValueError(f"timestamp without Z: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def _read_series(path: str) -> list[tuple[datetime, float]]:
    rows: list[tuple[datetime, float]] = []
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if len(header) != 2 or header[0] != "timestamp":
            raise ValueError(f"unexpected header in {path}: {header}")
        for rec in reader:
            if not rec:
                continue
            ts = _parse_ts(rec[0])
            val = float(rec[1])
            if not math.isfinite(val):
                raise ValueError(f"non-finite value in {path}: {rec}")
            if rows and ts <= rows[-1][0]:
                raise ValueError(f"timestamps not strictly increasing in {path} at {rec[0]}")
            rows.append((ts, val))
    if not rows:
        raise ValueError(f"empty series {path}")
    return rows


def _value_at(series: list[tuple[datetime, float]], t: datetime) -> float:
    """Value of the last observation with timestamp <= t (step hold). Linear scan
    from the start would be slow; a simple bisection on timestamps is used."""
    lo, hi = 0, len(series)  # find largest i with series[i][0] <= t
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if series[mid][0] <= t:
            lo = mid
        else:
            hi = mid
    if series[lo][0] > t:
        raise ValueError(f"no observation at or before {t.isoformat()}")
    return series[lo][1]


def settle_interval(
    P: float,
    HP: float,
    dt_h: float,
    *,
    fleet: list[tuple[int, float, float]],
    pool_fee: float,
    supply: dict[str, Any],
    call: dict[str, Any] | None,
    forward: dict[str, Any] | None,
) -> dict[str, float]:
    """Decision + settlement for one interval with constant P and HP."""
    stype = supply["type"]
    HPn = HP * (1.0 - pool_fee)

    # Opportunity cost of a MWh not burnt.
    if stype in ("spot", "fixed_ppa"):
        c = P
    elif stype == "capped_ppa":
        c = min(P, supply["strike_usd_per_mwh"])
    else:
        raise ValueError(f"unknown supply type {stype!r}")

    q = 0.0  # running MW
    H = 0.0  # running PH/s
    nominal_mw = 0.0
    for count, hashrate_th, power_w in fleet:
        nominal_mw += count * power_w / 1e6
        E = power_w / hashrate_th  # J/TH
        EHP = HPn * 1000.0 / (24.0 * E)  # USD/MWh
        if c <= EHP:
            q += count * power_w / 1e6
            H += count * hashrate_th / 1000.0

    mining = HPn * H * dt_h / 24.0

    if stype == "spot":
        power_cost = P * q * dt_h
        resale = 0.0
    else:
        Q = supply["quantity_mw"]
        K = supply["price_usd_per_mwh"]
        power_cost = K * Q * dt_h
        spare = Q - q
        if stype == "capped_ppa" and spare > 0:
            resale = spare * min(P, supply["strike_usd_per_mwh"]) * dt_h
        else:
            resale = spare * P * dt_h  # negative spare: excess bought at spot

    if call is not None:
        Qc = call["quantity_mw"]
        premium = call["premium_usd_per_mwh"] * Qc * dt_h
        payout = max(P - call["strike_usd_per_mwh"], 0.0) * Qc * dt_h
    else:
        premium = 0.0
        payout = 0.0

    if forward is not None:
        fwd = (forward["price_usd_per_ph_day"] - HP) * forward["hashrate_ph"] * dt_h / 24.0
    else:
        fwd = 0.0

    net = mining + resale + premium - payout + fwd - power_cost
    return {
        "mined_mwh": q * dt_h,
        "curtailed_mwh": (nominal_mw - q) * dt_h,
        "mining_revenue_usd": mining,
        "power_cost_usd": power_cost,
        "resale_revenue_usd": resale,
        "call_premium_usd": premium,
        "call_payout_usd": payout,
        "forward_settlement_usd": fwd,
        "net_usd": net,
    }


def compute_totals(
    price_csv: str,
    hashprice_csv: str,
    *,
    fleet: list[tuple[int, float, float]],
    pool_fee: float,
    supply: dict[str, Any],
    call: dict[str, Any] | None,
    forward: dict[str, Any] | None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, float]:
    prices = _read_series(price_csv)
    hps = _read_series(hashprice_csv)

    if start is None:
        start = prices[0][0]
    if end is None:
        end = prices[-1][0] + LAST_PRICE_HOLD
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start/end must be timezone-aware")
    if not start < end:
        raise ValueError("start must be before end")

    # Interval boundaries: start, every timestamp of either feed inside (start, end), end.
    cuts = {start, end}
    for ts, _ in prices:
        if start < ts < end:
            cuts.add(ts)
    for ts, _ in hps:
        if start < ts < end:
            cuts.add(ts)
    bounds = sorted(cuts)

    totals = dict.fromkeys(KEYS, 0.0)
    n = 0
    for a, b in itertools.pairwise(bounds):
        dt_h = (b - a).total_seconds() / 3600.0
        P = _value_at(prices, a)
        HP = _value_at(hps, a)
        r = settle_interval(
            P, HP, dt_h, fleet=fleet, pool_fee=pool_fee, supply=supply, call=call, forward=forward
        )
        for k, v in r.items():
            totals[k] += v
        totals["hours"] += dt_h
        n += 1
    totals["intervals"] = n
    return totals


def _self_check() -> None:
    kw: dict[str, Any] = {
        "fleet": [(1, 200.0, 3500.0)],
        "pool_fee": 0.02,
        "supply": {"type": "fixed_ppa", "quantity_mw": 0.0035, "price_usd_per_mwh": 45.0},
        "call": {"quantity_mw": 0.0035, "strike_usd_per_mwh": 200.0, "premium_usd_per_mwh": 3.5},
        "forward": None,
    }
    r80 = settle_interval(80.0, 50.0, 0.25, **kw)
    r900 = settle_interval(900.0, 50.0, 0.25, **kw)
    assert r80["mined_mwh"] > 0, r80
    assert round(r80["net_usd"], 4) == 0.0658, r80
    assert round(r80["mining_revenue_usd"], 4) == 0.1021
    assert round(r80["power_cost_usd"], 4) == 0.0394
    assert abs(r80["resale_revenue_usd"]) < 1e-12
    assert round(r80["call_premium_usd"], 4) == 0.0031
    assert r900["mined_mwh"] == 0, r900
    assert round(r900["net_usd"], 4) == 0.1387, r900
    assert round(r900["resale_revenue_usd"], 4) == 0.7875
    assert round(r900["call_payout_usd"], 4) == 0.6125


if __name__ == "__main__":
    _self_check()
    print("worked interval check: OK (P=80 net 0.0658, P=900 net 0.1387)")
    start = datetime(2024, 6, 1, 5, 0, tzinfo=UTC)
    end = datetime(2025, 3, 28, 5, 0, tzinfo=UTC)
    fleet = [(600, 104.0, 3068.0), (400, 200.0, 3500.0)]
    fwd = {"hashrate_ph": 70.0, "price_usd_per_ph_day": 52.0}
    scenarios: dict[str, dict[str, Any]] = {
        "hedged": {
            "supply": {"type": "fixed_ppa", "quantity_mw": 3.3, "price_usd_per_mwh": 45.0},
            "call": {"quantity_mw": 3.0, "strike_usd_per_mwh": 200.0, "premium_usd_per_mwh": 3.5},
            "forward": fwd,
        },
        "capped": {
            "supply": {
                "type": "capped_ppa",
                "quantity_mw": 3.3,
                "price_usd_per_mwh": 45.0,
                "strike_usd_per_mwh": 100.0,
            },
            "call": None,
            "forward": fwd,
        },
        "spot": {"supply": {"type": "spot"}, "call": None, "forward": None},
    }
    for name, sc in scenarios.items():
        t = compute_totals(
            PRICE_CSV, HASHPRICE_CSV, fleet=fleet, pool_fee=0.02, start=start, end=end, **sc
        )
        print(f"== {name}")
        for k in KEYS:
            v = t[k]
            print(f"  {k:24s} {v:d}" if k == "intervals" else f"  {k:24s} {v:,.4f}")
