"""Strategy comparison: one scenario's site and fleet under several supply and hedge books.

Every book runs on the fast path over the same window; each one's dispatch uses its own
supply's opportunity cost (a capped PPA keeps mining above its strike) and its own delivered
pool payout, and its own contracts settle. Daily volatility is measured on whole UTC days,
so the partial first and last days of a window that does not start at midnight do not look
like quiet days.

Over 300 lines: describing, running and scoring the books are one flow, read top to bottom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from controller.accounting.bitcoin import (
    BtcForward,
    BtcOptionStrip,
    DifficultySwap,
    VolatilitySwap,
)
from controller.accounting.capital import (
    DAY_S,
    WHOLE_DAY_H,
    DailySeries,
    HorizonStats,
    horizon_stats,
    monthly_net,
    weekly_net,
)
from controller.accounting.instruments import (
    FixedPpa,
    HashrateForward,
    Hedge,
    PoolPayout,
    ShortCall,
    SpotSupply,
    Supply,
    VirtualPpa,
)
from controller.accounting.options import Option
from controller.accounting.pool_payout import pool_of
from controller.accounting.report import build_report
from controller.accounting.report_types import Report
from controller.accounting.supply_stack import SupplyStack
from controller.app.replay.runner import ReplayError, ReplayInputs
from controller.config import CompareConfig, hedge_book, supply_contract
from controller.domain import FloatArray
from controller.fast_replay import NotStatelessError, fast_replay
from controller.records import IntervalTable
from controller.site_model import SiteModel

#: Strike of the default short call when the scenario has neither a call nor a capped PPA.
DEFAULT_CALL_STRIKE_USD_PER_MWH = 200.0


@dataclass(frozen=True, slots=True)
class Strategy:
    """A named supply contract and hedge book."""

    name: str
    description: str
    supply: Supply
    hedges: tuple[Hedge, ...]


@dataclass(frozen=True, slots=True)
class DailyNet:
    """Net cash flow per UTC day, and its spread over the whole days."""

    dates: tuple[str, ...]
    net_usd: FloatArray
    whole: np.ndarray  # bool per day: its intervals cover 24 h
    mean_usd: float
    std_usd: float | None  # population std over the counted days; None with fewer than 2
    worst_date: str
    worst_usd: float
    days_counted: int
    series: DailySeries  #: the days as the capital view reads them
    weekly: HorizonStats  #: whole ISO weeks
    monthly: HorizonStats  #: whole calendar months


@dataclass(frozen=True, slots=True)
class StrategyResult:
    """One book replayed: its interval table, its replay report and its daily cash flow."""

    strategy: Strategy
    table: IntervalTable
    typed_report: Report
    daily: DailyNet

    @property
    def report(self) -> dict[str, Any]:
        """The report as JSON data, under the strategy's name."""
        return {"strategy": self.strategy.name, **self.typed_report.as_dict()}

    def row(self) -> dict[str, Any]:
        """The comparison table's row: every totals key and the volatility figures."""
        s = self.typed_report.summary
        return {
            "name": self.strategy.name,
            "description": self.strategy.description,
            "totals": self.typed_report.totals.as_dict(),
            "net_margin_usd_per_mwh": s.net_margin_usd_per_mwh,
            "curtailed_hours": s.curtailed_hours,
            "hashspark_spread_usd_per_mwh": s.hashspark_spread_usd_per_mwh,
            "hedged_share": s.hedged_share,
            "margin_floor_usd_per_mwh": s.margin_floor_usd_per_mwh,
            "daily_net_mean_usd": self.daily.mean_usd,
            "daily_net_std_usd": self.daily.std_usd,
            "worst_day": {"date": self.daily.worst_date, "net_usd": self.daily.worst_usd},
            "days_counted": self.daily.days_counted,
            "weekly_net_std_usd": self.daily.weekly.std_usd,
            "weekly_net_cv": self.daily.weekly.cv,
            "weeks_counted": self.daily.weekly.periods,
            "monthly_net_mean_usd": self.daily.monthly.mean_usd,
            "monthly_net_std_usd": self.daily.monthly.std_usd,
            "monthly_net_cv": self.daily.monthly.cv,
            "months_counted": self.daily.monthly.periods,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every book's result, in the order given."""

    results: tuple[StrategyResult, ...]
    builtin: bool  # the scenario had no [[compare.strategies]]: the default set ran

    def to_json(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The comparison as plain data."""
        return {
            **meta,
            "strategies_source": "built-in" if self.builtin else "compare.strategies",
            "strategies": [r.row() for r in self.results],
        }


def daily_net(report: Report, window_start_s: float, window_end_s: float) -> DailyNet:
    """Daily net cash flow from a replay report's ``per_day``; volatility over whole days,
    weeks and months."""
    days = report.per_day
    dates = tuple(d.date for d in days)
    net = np.asarray([d.totals.net_usd for d in days], dtype=np.float64)
    whole = np.asarray([d.totals.hours >= WHOLE_DAY_H for d in days], dtype=bool)
    counted = whole if whole.any() else np.ones_like(whole)  # a window shorter than a day
    values = net[counted]
    worst = int(np.flatnonzero(counted)[np.argmin(values)])
    day_start = np.asarray(dates, dtype="datetime64[D]").astype(np.int64) * DAY_S
    hours = np.asarray([d.totals.hours for d in days], dtype=np.float64)
    series = DailySeries(day_start.astype(np.float64), net, hours, window_start_s, window_end_s)
    return DailyNet(
        dates=dates,
        net_usd=net,
        whole=whole,
        mean_usd=float(values.mean()),
        std_usd=float(values.std()) if values.size >= 2 else None,
        worst_date=dates[worst],
        worst_usd=float(net[worst]),
        days_counted=int(counted.sum()),
        series=series,
        weekly=horizon_stats(weekly_net(series)),
        monthly=horizon_stats(np.asarray([m.net_usd for m in monthly_net(series) if m.whole])),
    )


def describe(supply: Supply, hedges: tuple[Hedge, ...]) -> str:
    """A one-line description of a book, with its numbers."""
    match supply:
        case SpotSupply():
            parts = ["spot"]
        case FixedPpa(resale_cap_usd_per_mwh=None):
            parts = [
                f"PPA {supply.quantity_mw:g} MW at {supply.price_usd_per_mwh:g}, resale at spot"
            ]
        case FixedPpa():
            parts = [
                f"PPA {supply.quantity_mw:g} MW at {supply.price_usd_per_mwh:g}, "
                f"resale capped at {supply.resale_cap_usd_per_mwh:g}"
            ]
        case SupplyStack(tranches=tranches):
            parts = [
                f"tranche {t.id} at {t.price_usd_per_mwh:g}"
                + ("" if t.resale_cap_usd_per_mwh is None else f" cap {t.resale_cap_usd_per_mwh:g}")
                for t in tranches
            ] + ["spot above"]
    for h in hedges:
        match h:
            case ShortCall():
                parts.append(
                    f"short call {h.quantity_mw:g} MW strike {h.strike_usd_per_mwh:g} "
                    f"premium {h.premium_usd_per_mwh:g}"
                )
            case HashrateForward() | PoolPayout():
                kind = "forward" if isinstance(h, HashrateForward) else "delivered pool payout"
                parts.append(f"{kind} {h.hashrate_ph:g} PH/s at {h.price_usd_per_ph_day:g}")
            case VirtualPpa():
                parts.append(f"virtual PPA {h.id} at {h.price_usd_per_mwh:g}")
            case Option():
                unit = "MW" if h.underlying == "power" else "PH/s"
                parts.append(
                    f"{h.side} {h.underlying} {h.kind} {h.id} {h.quantity:g} {unit} "
                    f"strike {h.strike:g} on {h.basis.replace('_', '-')} prices"
                )
            case BtcForward() | BtcOptionStrip() | DifficultySwap() | VolatilitySwap():
                parts.append(f"{type(h).__name__} {h.id} on {h.reference.replace('_', '/')}")
    return "; ".join(parts)


def strategies_from_config(compare: CompareConfig, *, extra: bool = False) -> tuple[Strategy, ...]:
    """The books of a scenario's ``[[compare.strategies]]`` (``extra``: of its
    ``[[compare.extra_strategies]]``)."""
    out = []
    for s in compare.extra_strategies if extra else compare.strategies:
        supply, hedges = supply_contract(s.supply), hedge_book(s.hedges)
        out.append(Strategy(s.name, s.description or describe(supply, hedges), supply, hedges))
    return tuple(out)


def default_strategies(
    model: SiteModel,
    window: IntervalTable,
    *,
    concession_usd_per_mwh: float | None = None,
    premium_usd_per_mwh: float | None = None,
) -> tuple[Strategy, ...]:
    """The built-in books, from the site's own contracts where it has them.

    The PPA is the site's (fixed or capped); without one, the fleet's nominal power rounded
    up to 0.1 MW at the window's time-weighted mean spot price. The call is the site's first
    short call; without one, 90% of the PPA quantity at the capped PPA's strike (or 200),
    its premium ``premium_usd_per_mwh`` or else the **break-even premium**: the mean payout
    the window realised (a fair price in hindsight, named so in the book's description).
    The cap is the site's, else the call's strike. The capped PPA's price is the plain
    PPA's less ``concession_usd_per_mwh``, or else the break-even concession: the embedded
    call's mean payout over the window (a cap buys a lower price; without one the capped
    book would be the plain PPA with its upside given away). The forwards are the site's;
    without any, half the fleet's nominal hashrate at the window's time-weighted mean
    hashprice.
    """
    dt_h = window.inputs.dt_h
    hours = float(dt_h.sum())
    price = window.inputs.price_usd_per_mwh
    own_ppa = model.supply if isinstance(model.supply, FixedPpa) else None
    if own_ppa is not None:
        q, k = own_ppa.quantity_mw, own_ppa.price_usd_per_mwh
    else:
        q = math.ceil(model.fleet.nominal_mw * 10 - 1e-9) / 10
        k = round(float((price * dt_h).sum()) / hours, 2)
    own_cap = own_ppa.resale_cap_usd_per_mwh if own_ppa is not None else None
    calls = [h for h in model.hedges if isinstance(h, ShortCall)]
    p_note = ""
    if calls:
        call = calls[0]
    else:
        strike = own_cap if own_cap is not None else DEFAULT_CALL_STRIKE_USD_PER_MWH
        premium = premium_usd_per_mwh
        if premium is None:
            premium = round(float((np.maximum(price - strike, 0.0) * dt_h).sum()) / hours, 2)
            p_note = " (break-even premium: the window's mean payout, hindsight)"
        call = ShortCall("call", round(0.9 * q, 3), strike, premium)
    cap = own_cap if own_cap is not None else call.strike_usd_per_mwh
    payout = float((np.maximum(price - cap, 0.0) * dt_h).sum()) / hours
    k_capped, c_note = round(k - payout, 2), f" (break-even concession {payout:.2f})"
    if concession_usd_per_mwh is not None:
        k_capped, c_note = k - concession_usd_per_mwh, " (configured concession)"
    forwards: tuple[Hedge, ...] = tuple(h for h in model.hedges if isinstance(h, HashrateForward))
    if not forwards:
        hp = window.inputs.hashprice_usd_per_ph_day
        nominal_ph = float(model.fleet.nominal_hashrate_th.sum()) / 1e3
        forwards = (
            HashrateForward(
                "forward", round(nominal_ph / 2, 1), round(float((hp * dt_h).sum()) / hours, 2)
            ),
        )
    ppa = FixedPpa(q, k)
    books: list[tuple[str, Supply, tuple[Hedge, ...]]] = [
        ("spot", SpotSupply(), ()),
        ("ppa", ppa, ()),
        ("ppa+call", ppa, (call,)),
        ("capped-ppa", FixedPpa(q, k_capped, resale_cap_usd_per_mwh=cap), ()),
        ("ppa+forward", ppa, forwards),
        ("ppa+forward+call", ppa, (*forwards, call)),
    ]
    notes = {"capped-ppa": c_note, "ppa+call": p_note, "ppa+forward+call": p_note}
    return tuple(Strategy(name, describe(s, h) + notes.get(name, ""), s, h) for name, s, h in books)


def run_book(inputs: ReplayInputs, supply: Supply, hedges: tuple[Hedge, ...]) -> IntervalTable:
    """Replay the window on the fast path with ``supply`` deciding and settling."""
    m = inputs.model
    needs_da = [h.id for h in hedges if isinstance(h, Option) and h.basis == "day_ahead"]
    if needs_da and inputs.day_ahead is None:
        raise ReplayError(
            f"{needs_da[0]} settles on day-ahead prices: the site has no day_ahead_feed"
        )
    for h in hedges:
        ref = getattr(h, "reference", None)
        if ref in {"btc_usd", "difficulty"} and getattr(inputs, ref) is None:
            raise ReplayError(f"{h.id} settles on {ref}: the site has no bitcoin.{ref}_feed")
    try:
        return fast_replay(
            fleet=m.fleet,
            params=replace(m.params, supply=supply, pool=pool_of(hedges)),
            supply=supply,
            hedges=hedges,
            price=inputs.price,
            hashprice=inputs.hashprice,
            start=inputs.start,
            end=inputs.end,
            day_ahead=inputs.day_ahead,
            grid=m.grid,
            btc_usd=inputs.btc_usd,
            difficulty=inputs.difficulty,
        )
    except NotStatelessError as exc:
        raise ReplayError(f"compare runs on the fast path only: {exc}") from None


def run_strategy(inputs: ReplayInputs, strategy: Strategy) -> StrategyResult:
    """Replay one book and build its report."""
    table = run_book(inputs, strategy.supply, strategy.hedges)
    model = replace(inputs.model, supply=strategy.supply, hedges=strategy.hedges)
    forward, share = model.forwards_in_term(inputs.start, inputs.end)
    report = build_report(
        table,
        model.fleet,
        pool_fee=model.params.pool_fee,
        ppa_price_usd_per_mwh=model.ppa_price_usd_per_mwh,
        forward_usd_per_ph_day=forward,
        hedged_share=share,
    )
    t = table.inputs
    daily = daily_net(report, float(t.start[0]), float(t.end[-1]))
    return StrategyResult(strategy, table, report, daily)


def scenario_strategies(inputs: ReplayInputs) -> tuple[tuple[Strategy, ...], bool]:
    """The scenario's ``[[compare.strategies]]``, or the built-in set (then True), followed by
    its ``[[compare.extra_strategies]]``."""
    configured = inputs.loaded.config.compare or CompareConfig()
    extra = strategies_from_config(configured, extra=True)
    if configured.strategies:
        return strategies_from_config(configured) + extra, False
    books = default_strategies(
        inputs.model,
        run_book(inputs, SpotSupply(), ()),
        concession_usd_per_mwh=configured.capped_ppa_concession_usd_per_mwh,
        premium_usd_per_mwh=configured.call_premium_usd_per_mwh,
    )
    return books + extra, True


def compare(inputs: ReplayInputs, strategies: tuple[Strategy, ...] | None = None) -> Comparison:
    """Replay every book over the inputs' window; the scenario's or the built-in set."""
    builtin = False
    if strategies is None:
        strategies, builtin = scenario_strategies(inputs)
    return Comparison(tuple(run_strategy(inputs, s) for s in strategies), builtin)
