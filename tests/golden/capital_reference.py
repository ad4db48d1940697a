"""Independent reference for the capital view (standard library only).

Written from docs/economics.md ("Capital") alone, it reads a book's exported daily series
(``series/<book>.daily.csv``) and recomputes every figure with plain loops, ``datetime``,
``calendar`` and ``statistics``. It shares no code with ``controller.accounting.capital``.
"""

from __future__ import annotations

import calendar
import csv
import statistics
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

WHOLE_DAY_H = 24.0 - 1e-6


def read_daily(path: Path) -> list[dict[str, Any]]:
    """The daily CSV's rows: the date, the hours and the net."""
    with path.open(newline="") as handle:
        return [
            {
                "date": date.fromisoformat(row["date"]),
                "hours": float(row["hours"]),
                "net": float(row["net_usd"]),
            }
            for row in csv.DictReader(handle)
        ]


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"periods": 0, "mean": None, "std": None, "cv": None}
    mean = statistics.fmean(values)
    std = statistics.pstdev(values) if len(values) >= 2 else None
    cv = std / mean if std is not None and mean > 0 else None
    return {"periods": len(values), "mean": mean, "std": std, "cv": cv}


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between order statistics at rank (n - 1) * pct / 100."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def capital(
    rows: list[dict[str, Any]],
    window_start: datetime,
    window_end: datetime,
    *,
    coverage_ratio: float,
    debt_rate: float,
    tenor_months: int,
    cfar_percentile: float,
    capital_employed_usd: float,
    asset_life_years: float,
    discount_rate: float,
) -> dict[str, Any]:
    """Every capital figure of one book."""
    whole = {r["date"]: r["hours"] >= WHOLE_DAY_H for r in rows}
    net = {r["date"]: r["net"] for r in rows}
    daily = [net[d] for d in net if whole[d]]

    weeks: dict[tuple[int, int], list[date]] = {}
    months: dict[tuple[int, int], list[date]] = {}
    for d in net:
        iso_year, iso_week, _ = d.isocalendar()
        weeks.setdefault((iso_year, iso_week), []).append(d)
        months.setdefault((d.year, d.month), []).append(d)
    weekly = [
        sum(net[d] for d in ds)
        for ds in weeks.values()
        if len(ds) == 7 and all(whole[d] for d in ds)
    ]
    monthly = []
    worst = None
    for (y, m), ds in months.items():
        if len(ds) == calendar.monthrange(y, m)[1] and all(whole[d] for d in ds):
            total = sum(net[d] for d in ds)
            monthly.append(total)
            if worst is None or total < worst[1]:
                worst = (f"{y:04d}-{m:02d}", total)

    cfar = percentile(monthly, cfar_percentile)
    payment = max(cfar, 0.0) / coverage_ratio
    r = debt_rate / 12.0
    capacity = sum(payment / (1.0 + r) ** k for k in range(1, tenor_months + 1))

    cumulative, peak, deepest = 0.0, 0.0, 0.0
    for usd in net.values():
        cumulative += usd
        peak = max(peak, cumulative)
        deepest = max(deepest, peak - cumulative)

    total = sum(net.values())
    hours = sum(r["hours"] for r in rows)
    annualised = total / hours * 365.25 * 24.0
    depreciation = capital_employed_usd / asset_life_years
    roce = (annualised - depreciation) / capital_employed_usd

    pv = 0.0
    for d, usd in net.items():
        day_end = min(datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=1), window_end)
        years = (day_end - window_start).total_seconds() / (365.25 * 86400.0)
        pv += usd / (1.0 + discount_rate) ** years
    monthly_rate = (1.0 + discount_rate) ** (1.0 / 12.0) - 1.0
    mean_month = statistics.fmean(monthly)
    pv_life = sum(
        mean_month / (1.0 + monthly_rate) ** k for k in range(1, round(asset_life_years * 12) + 1)
    )
    return {
        "daily": _stats(daily),
        "weekly": _stats(weekly),
        "monthly": _stats(monthly),
        "cfar": cfar,
        "worst_month": worst,
        "max_drawdown": deepest,
        "debt_capacity": capacity,
        "roce": roce,
        "pv": pv,
        "pv_life": pv_life,
        "net": total,
    }
