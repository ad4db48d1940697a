"""What a book's cash flow is worth to a lender and an investor (docs/economics.md, "Capital").

Pure arithmetic on a book's daily net cash flow: volatility at daily, weekly and monthly
horizons, cash flow at risk, worst month, deepest drawdown of cumulative cash, debt
capacity, return on capital employed and present value. Every assumption comes in as
``CapitalAssumptions``; nothing here invents a number.

Days, weeks and months are UTC. A period counts for the volatility and percentile figures
only when it is whole: a day whose intervals cover 24 h, an ISO week (Monday to Sunday) of
seven whole days, a calendar month all of whose days are whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.domain import EpochS, FloatArray

DAY_S = 86_400.0
YEAR_DAYS = 365.25
#: A day counts as whole when its intervals cover 24 hours (float noise aside).
WHOLE_DAY_H = 24.0 - 1e-6
#: 1970-01-01 was a Thursday: shift by 3 days so ISO weeks (Monday first) share an index.
_MONDAY_SHIFT_DAYS = 3


@dataclass(frozen=True, slots=True)
class CapitalAssumptions:
    """Every assumption behind the capital figures (docs/economics.md, "Capital")."""

    coverage_ratio: float  #: the lender's debt-service coverage ratio on CFaR
    debt_rate: float  #: annual, compounded monthly
    tenor_months: int  #: the loan's term, repaid in equal monthly instalments
    cfar_percentile: float  #: the percentile (0..100) of whole-month net that is CFaR
    capital_employed_usd: float  #: the fleet's capex
    asset_life_years: float  #: straight-line depreciation of the capex
    discount_rate: float  #: annual, for the present values of this book


@dataclass(frozen=True, slots=True)
class DailySeries:
    """A book's net cash flow per UTC day, and the window it covers."""

    day_start_s: FloatArray  #: each day's 00:00 UTC (epoch s)
    net_usd: FloatArray
    hours: FloatArray  #: hours of intervals in the day
    window_start_s: EpochS
    window_end_s: EpochS

    @property
    def day_end_s(self) -> FloatArray:
        """When each day's cash is counted: its midnight, or the window's end if earlier."""
        return np.asarray(np.minimum(self.day_start_s + DAY_S, self.window_end_s))


@dataclass(frozen=True, slots=True)
class HorizonStats:
    """Net cash flow over whole periods of one length: their count, mean, spread and CV."""

    periods: int
    mean_usd: float | None
    std_usd: float | None  #: population standard deviation; None with fewer than 2 periods
    cv: float | None  #: std over mean; None unless the mean is positive


@dataclass(frozen=True, slots=True)
class Period:
    """One calendar period's net cash flow (``YYYY-MM`` or ``YYYY-MM-DD`` of its Monday)."""

    label: str
    net_usd: float
    whole: bool


@dataclass(frozen=True, slots=True)
class CapitalFigures:
    """A book's capital view over its window under ``assumptions``."""

    assumptions: CapitalAssumptions
    net_usd: float
    hours: float
    daily: HorizonStats
    weekly: HorizonStats
    monthly: HorizonStats
    months: tuple[Period, ...]
    cfar_usd: float | None  #: the CFaR percentile of whole-month net; None without one
    worst_month: Period | None  #: the whole month with the lowest net
    max_drawdown_usd: float  #: deepest fall of end-of-day cumulative cash below its peak
    drawdown_peak_day: str | None
    drawdown_trough_day: str | None
    debt_service_usd_per_month: float | None  #: max(CFaR, 0) / coverage ratio
    debt_capacity_usd: float | None  #: that instalment's annuity value at rate and tenor
    annualised_net_usd: float | None  #: net per hour of window times a year's hours
    depreciation_usd_per_year: float
    roce: float | None  #: (annualised net - depreciation) / capital employed
    pv_usd: float  #: each day's net discounted from its end to the window's start
    #: The mean whole month repeated monthly over the asset life, discounted at the rate.
    pv_mean_month_over_life_usd: float | None


def horizon_stats(values: FloatArray) -> HorizonStats:
    """Count, mean, population std and coefficient of variation of some periods' net."""
    n = int(values.size)
    if n == 0:
        return HorizonStats(0, None, None, None)
    mean = float(values.mean())
    std = float(values.std()) if n >= 2 else None
    cv = std / mean if std is not None and mean > 0 else None
    return HorizonStats(n, mean, std, cv)


def annuity_factor(rate_per_period: float, periods: int) -> float:
    """Present value of 1 paid at the end of each of ``periods`` periods."""
    if rate_per_period == 0:
        return float(periods)
    return float((1.0 - (1.0 + rate_per_period) ** -periods) / rate_per_period)


def debt_capacity_usd(
    monthly_cash_usd: float, coverage_ratio: float, annual_rate: float, tenor_months: int
) -> tuple[float, float]:
    """(monthly instalment, principal) a lender sizes on a conservative monthly cash flow.

    The instalment is the cash flow over the coverage ratio (nothing when it is not
    positive); the principal is what equal monthly instalments over the tenor repay at the
    rate compounded monthly.
    """
    payment = max(monthly_cash_usd, 0.0) / coverage_ratio
    return payment, payment * annuity_factor(annual_rate / 12.0, tenor_months)


def max_drawdown(cumulative_usd: FloatArray) -> tuple[float, int | None, int | None]:
    """Deepest fall below a running peak, the peak's and trough's indices (start at 0 cash).

    The peak index is None when the peak is the starting zero, before the first value.
    """
    if cumulative_usd.size == 0:
        return 0.0, None, None
    path = np.concatenate(([0.0], cumulative_usd))
    peaks = np.maximum.accumulate(path)
    falls = peaks - path
    trough = int(np.argmax(falls))
    if falls[trough] <= 0:
        return 0.0, None, None
    peak = int(np.flatnonzero(path[: trough + 1] == peaks[trough])[-1])
    return float(falls[trough]), (peak - 1 if peak > 0 else None), trough - 1


def _label_day(day_start_s: float) -> str:
    return str(np.datetime64(int(day_start_s // DAY_S), "D"))


def monthly_net(series: DailySeries) -> tuple[Period, ...]:
    """Net of each calendar month the days touch, whole or not."""
    days = (series.day_start_s // DAY_S).astype(np.int64)
    month = days.astype("datetime64[D]").astype("datetime64[M]")
    whole_day = series.hours >= WHOLE_DAY_H
    out = []
    for m in np.unique(month):
        members = month == m
        first = int(m.astype("datetime64[D]").astype(np.int64))
        length = int((m + 1).astype("datetime64[D]").astype(np.int64)) - first
        complete = int(members.sum()) == length and bool(whole_day[members].all())
        out.append(Period(str(m), float(series.net_usd[members].sum()), complete))
    return tuple(out)


def weekly_net(series: DailySeries) -> FloatArray:
    """Net of each whole ISO week (Monday to Sunday, seven whole days)."""
    days = (series.day_start_s // DAY_S).astype(np.int64)
    week = (days + _MONDAY_SHIFT_DAYS) // 7
    whole_day = series.hours >= WHOLE_DAY_H
    sums = []
    for w in np.unique(week):
        members = week == w
        if int(members.sum()) == 7 and bool(whole_day[members].all()):
            sums.append(float(series.net_usd[members].sum()))
    return np.asarray(sums, dtype=np.float64)


def percentile(values: FloatArray, pct: float) -> float | None:
    """The ``pct`` percentile, linear between order statistics (numpy's default, type 7)."""
    return float(np.percentile(values, pct)) if values.size else None


def capital_figures(series: DailySeries, a: CapitalAssumptions) -> CapitalFigures:
    """The capital view of one book's daily cash flow under ``a``."""
    whole_day = series.hours >= WHOLE_DAY_H
    months = monthly_net(series)
    whole_months = np.asarray([m.net_usd for m in months if m.whole], dtype=np.float64)
    cfar = percentile(whole_months, a.cfar_percentile)
    worst = min((m for m in months if m.whole), key=lambda m: m.net_usd, default=None)
    depth, peak, trough = max_drawdown(np.cumsum(series.net_usd))
    payment = capacity = None
    if cfar is not None:
        payment, capacity = debt_capacity_usd(cfar, a.coverage_ratio, a.debt_rate, a.tenor_months)
    net, hours = float(series.net_usd.sum()), float(series.hours.sum())
    annualised = net / hours * YEAR_DAYS * 24.0 if hours > 0 else None
    depreciation = a.capital_employed_usd / a.asset_life_years
    roce = None
    if annualised is not None and a.capital_employed_usd > 0:
        roce = (annualised - depreciation) / a.capital_employed_usd
    years = (series.day_end_s - series.window_start_s) / (DAY_S * YEAR_DAYS)
    pv = float((series.net_usd * (1.0 + a.discount_rate) ** -years).sum())
    monthly = horizon_stats(whole_months)
    pv_life = None
    if monthly.mean_usd is not None:
        life_months = round(a.asset_life_years * 12)
        monthly_rate = (1.0 + a.discount_rate) ** (1.0 / 12.0) - 1.0
        pv_life = monthly.mean_usd * annuity_factor(monthly_rate, life_months)
    return CapitalFigures(
        assumptions=a,
        net_usd=net,
        hours=hours,
        daily=horizon_stats(series.net_usd[whole_day]),
        weekly=horizon_stats(weekly_net(series)),
        monthly=monthly,
        months=months,
        cfar_usd=cfar,
        worst_month=worst,
        max_drawdown_usd=depth,
        drawdown_peak_day=None if peak is None else _label_day(series.day_start_s[peak]),
        drawdown_trough_day=None if trough is None else _label_day(series.day_start_s[trough]),
        debt_service_usd_per_month=payment,
        debt_capacity_usd=capacity,
        annualised_net_usd=annualised,
        depreciation_usd_per_year=depreciation,
        roce=roce,
        pv_usd=pv,
        pv_mean_month_over_life_usd=pv_life,
    )
