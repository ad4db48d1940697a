"""Cross-market comparison: one fleet and one book replayed over several markets' prices.

The first scenario gives the fleet, the supply and hedge book and the policy; every scenario
(the first included) gives its market: the price recording, its currency and exchange rate,
its market kind (real-time or day-ahead) and how long its prices may go without a new one
(a recording's gaps are a property of the data, not of the book). All run on the fast path
over the markets' common window, in one currency, with the same hashprice.

Per market: net, net per mined MWh, curtailed hours, the energy hashprice margin (the
time-weighted mean of the fleet's energy hashprice less the price: what a MWh would have
earned over what it cost, had the fleet never curtailed), and the standard deviation of the
net over whole UTC days and whole calendar months.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np

from controller.app.replay.compare import DailyNet, daily_net, describe
from controller.app.replay.runner import ReplayError, ReplayInputs, ReplayResult, prepare, replay
from controller.config import LoadedConfig
from controller.decision.economics import net_hashprice
from controller.domain import iso, to_datetime

#: A month counts as whole when its days cover all of its hours (float noise aside).
_HOUR_SLACK = 1e-6


@dataclass(frozen=True, slots=True)
class MarketResult:
    """One market replayed with the common fleet and book."""

    name: str  # the scenario's name
    inputs: ReplayInputs
    result: ReplayResult
    daily: DailyNet
    monthly_std_usd: float | None  # population std over whole calendar months
    months_counted: int
    mean_price_usd_per_mwh: float  # time-weighted
    mean_energy_hashprice_usd_per_mwh: float  # the fleet's, after the pool fee, time-weighted

    @property
    def energy_hashprice_margin_usd_per_mwh(self) -> float:
        """Mean energy hashprice less mean price."""
        return self.mean_energy_hashprice_usd_per_mwh - self.mean_price_usd_per_mwh

    def row(self) -> dict[str, Any]:
        """The comparison table's row (``markets.json``)."""
        r = self.result.typed_report
        site = self.inputs.site
        return {
            "market": self.name,
            "config_file": r.config_file,
            "price_feed": r.price_feed.source,
            "market_kind": site.market,
            "price_currency": site.prices_in,
            "exchange_rate": r.exchange_rate,
            "totals": r.totals.as_dict(),
            "net_margin_usd_per_mwh": r.summary.net_margin_usd_per_mwh,
            "curtailed_hours": r.summary.curtailed_hours,
            "fully_curtailed_hours": r.summary.fully_curtailed_hours,
            "mean_price_usd_per_mwh": self.mean_price_usd_per_mwh,
            "mean_energy_hashprice_usd_per_mwh": self.mean_energy_hashprice_usd_per_mwh,
            "energy_hashprice_margin_usd_per_mwh": self.energy_hashprice_margin_usd_per_mwh,
            "daily_net_std_usd": self.daily.std_usd,
            "days_counted": self.daily.days_counted,
            "monthly_net_std_usd": self.monthly_std_usd,
            "months_counted": self.months_counted,
        }


@dataclass(frozen=True, slots=True)
class MarketComparison:
    """Every market's result over the common window, in the order given."""

    results: tuple[MarketResult, ...]
    book: str  # the common book, described
    currency: str

    def to_json(self) -> dict[str, Any]:
        """The comparison as plain data."""
        first = self.results[0].result.typed_report
        return {
            "window": first.window.as_dict(),
            "currency": self.currency,
            "fleet_and_book_from": first.config_file,
            "book": self.book,
            "markets": [r.row() for r in self.results],
        }


def common_window(
    prepared: list[ReplayInputs], start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """The window every market covers, narrowed by ``start``/``end`` if given."""
    lo = max(prepared, key=lambda p: p.start)
    hi = min(prepared, key=lambda p: p.end)
    t0 = lo.start if start is None else start.timestamp()
    t1 = hi.end if end is None else end.timestamp()
    common = f"the common window is {iso(lo.start)} .. {iso(hi.end)}"
    if t0 < lo.start:
        raise ReplayError(f"{lo.loaded.path}: starts {iso(lo.start)}, after --from ({common})")
    if t1 > hi.end:
        raise ReplayError(f"{hi.loaded.path}: ends {iso(hi.end)}, before --to ({common})")
    if t1 <= t0:
        raise ReplayError(
            f"the markets have no common window: {lo.loaded.path} starts {iso(lo.start)}, "
            f"{hi.loaded.path} ends {iso(hi.end)}"
        )
    return to_datetime(t0), to_datetime(t1)


def with_book(market: ReplayInputs, ref: ReplayInputs) -> ReplayInputs:
    """``market``'s prices under ``ref``'s fleet, book and policy (its own price age)."""
    if market.currency != ref.currency:
        raise ReplayError(
            f"{market.loaded.path}: sites[{market.site.id}].currency is {market.currency}, "
            f"the first scenario's {ref.currency}: compare markets in one currency"
        )
    m = ref.model
    needs_day_ahead = any(getattr(h, "settlement", None) == "day_ahead" for h in m.hedges)
    if needs_day_ahead and market.day_ahead is None:
        raise ReplayError(
            f"{market.loaded.path}: the book settles options on day-ahead prices and "
            f"sites[{market.site.id}] has no day_ahead_feed"
        )
    params = replace(m.params, price_max_age_s=market.model.params.price_max_age_s)
    return replace(market, model=replace(m, site_id=market.site.id, params=params))


def monthly_std(result: ReplayResult) -> tuple[float | None, int]:
    """Std (population) of the net per whole calendar month (UTC), and how many counted."""
    months: dict[str, list[float]] = {}
    for day in result.typed_report.per_day:
        acc = months.setdefault(day.date[:7], [0.0, 0.0])
        acc[0] += day.totals.net_usd
        acc[1] += day.totals.hours
    whole = []
    for month, (net, hours) in months.items():
        year, mon = int(month[:4]), int(month[5:7])
        if hours >= calendar.monthrange(year, mon)[1] * 24 - _HOUR_SLACK:
            whole.append(net)
    if len(whole) < 2:
        return None, len(whole)
    return float(np.std(whole)), len(whole)


def _means(inputs: ReplayInputs, result: ReplayResult) -> tuple[float, float]:
    """Time-weighted mean price and fleet energy hashprice over the window."""
    i = result.table.inputs
    dt = i.end - i.start
    efficiency = result.typed_report.summary.fleet_efficiency_j_per_th
    ehp = net_hashprice(i.hashprice_usd_per_ph_day, inputs.model.params.pool_fee) * 1000.0
    ehp = ehp / (24.0 * efficiency)
    total = float(dt.sum())
    return float((i.price_usd_per_mwh * dt).sum()) / total, float((ehp * dt).sum()) / total


def compare_markets(
    loaded: list[LoadedConfig], start: datetime | None = None, end: datetime | None = None
) -> MarketComparison:
    """Replay the first scenario's fleet and book over every scenario's market."""
    if len(loaded) < 2:
        raise ReplayError("give at least two scenarios (one per market)")
    t0, t1 = common_window([prepare(cfg) for cfg in loaded], start, end)
    markets = [prepare(cfg, start=t0, end=t1) for cfg in loaded]
    ref = markets[0]
    results = []
    for market in markets:
        inputs = with_book(market, ref)
        result = replay(inputs, engine="fast")
        mstd, months = monthly_std(result)
        price, ehp = _means(inputs, result)
        results.append(
            MarketResult(
                name=result.typed_report.scenario,
                inputs=inputs,
                result=result,
                daily=daily_net(result.typed_report.core, inputs.start, inputs.end),
                monthly_std_usd=mstd,
                months_counted=months,
                mean_price_usd_per_mwh=price,
                mean_energy_hashprice_usd_per_mwh=ehp,
            )
        )
    book = describe(ref.model.supply, ref.model.hedges)
    return MarketComparison(tuple(results), book, ref.currency)
