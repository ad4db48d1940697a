"""A seeded block bootstrap of whole months: a distribution of each book's capital figures.

A draw picks ``months_per_draw`` whole calendar months of the window with replacement
(the same months for every book, so the books face the same world) and lays their days end
to end. Each draw gives a net, a CFaR, a worst month, a drawdown, a debt capacity, a ROCE
and a present value per book, by the same rules as ``controller.accounting.capital``. The
generator is numpy's PCG64 seeded with ``seed``: the same seed gives the same draws.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from controller.accounting.capital import (
    DAY_S,
    YEAR_DAYS,
    CapitalAssumptions,
    DailySeries,
    debt_capacity_usd,
    max_drawdown,
    monthly_net,
)
from controller.domain import FloatArray

#: What each draw measures, in ``BootstrapResult.figures`` order.
FIGURES = (
    "net_usd",
    "monthly_cv",
    "cfar_usd",
    "worst_month_usd",
    "max_drawdown_usd",
    "debt_capacity_usd",
    "roce",
    "pv_usd",
)


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """Every draw's figures for one book: ``figures[name]`` has one value per draw."""

    book: str
    figures: dict[str, FloatArray]


def whole_month_days(series: DailySeries) -> tuple[np.ndarray, ...]:
    """The day indices of each whole calendar month, in order."""
    days = (series.day_start_s // DAY_S).astype(np.int64)
    month = days.astype("datetime64[D]").astype("datetime64[M]")
    wanted = {m.label for m in monthly_net(series) if m.whole}
    return tuple(np.flatnonzero(month == m) for m in np.unique(month) if str(m) in wanted)


def draw_months(n_months: int, n_draws: int, months_per_draw: int, seed: int) -> np.ndarray:
    """(n_draws, months_per_draw) month indices, drawn with replacement from ``seed``."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.integers(0, n_months, size=(n_draws, months_per_draw))


def _one_draw(net: FloatArray, months: Sequence[np.ndarray], a: CapitalAssumptions) -> list[float]:
    month_net = np.asarray([net[m].sum() for m in months])
    days = np.concatenate([net[m] for m in months])
    total = float(days.sum())
    mean, std = float(month_net.mean()), float(month_net.std())
    cfar = float(np.percentile(month_net, a.cfar_percentile))
    _, capacity = debt_capacity_usd(cfar, a.coverage_ratio, a.debt_rate, a.tenor_months)
    annualised = total / days.size * YEAR_DAYS
    roce = (annualised - a.capital_employed_usd / a.asset_life_years) / a.capital_employed_usd
    years = np.arange(1, days.size + 1) / YEAR_DAYS
    return [
        total,
        std / mean if mean > 0 and month_net.size >= 2 else np.nan,
        cfar,
        float(month_net.min()),
        max_drawdown(np.cumsum(days))[0],
        capacity,
        roce if a.capital_employed_usd > 0 else np.nan,
        float((days * (1.0 + a.discount_rate) ** -years).sum()),
    ]


def bootstrap(
    books: Sequence[tuple[str, DailySeries, CapitalAssumptions]],
    *,
    draws: int,
    months_per_draw: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[BootstrapResult, ...]:
    """Each book's figures over ``draws`` synthetic windows of whole months.

    The books must share their days (one comparison's window). ``progress(done, total)`` is
    called every tenth of the work. Raises ``ValueError`` without a whole month.
    """
    months = whole_month_days(books[0][1])
    if not months:
        raise ValueError("the window has no whole calendar month to resample")
    picks = draw_months(len(months), draws, months_per_draw, seed)
    out = {name: np.empty((draws, len(FIGURES))) for name, _, _ in books}
    step = max(draws // 10, 1)
    for d in range(draws):
        chosen = [months[i] for i in picks[d]]
        for name, series, a in books:
            out[name][d] = _one_draw(series.net_usd, chosen, a)
        if progress is not None and ((d + 1) % step == 0 or d + 1 == draws):
            progress(d + 1, draws)
    return tuple(
        BootstrapResult(name, {f: out[name][:, k] for k, f in enumerate(FIGURES)})
        for name, _, _ in books
    )
