"""The payoff charts: load, profit components and net against the spot price.

Each chart shows two things on one axis: every replayed interval as a point at its spot
price (at its own hashprice), and the contracts' payoff function
(``controller.accounting.payoff``) at the window's time-weighted mean hashprice as a line.
They are drawn for the comparison's fixed-price book (a PPA resold at spot, no hedge) and
its PPA + short call book; a comparison without both has no payoff charts.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib as mpl

mpl.use("Agg")  # before pyplot: no display, no GUI toolkit

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from controller.accounting.instruments import FixedPpa, ShortCall
from controller.accounting.payoff import CallTerms, PayoffCurves, miner_energy_hashprice, ppa_payoff
from controller.app.replay.charts import PRICE_LINEAR_UP_TO_USD_PER_MWH
from controller.app.replay.compare import Comparison, StrategyResult
from controller.domain import FleetSpec, FloatArray

TITLE_LOAD = "Load against spot price: a fixed-price site curtails above its energy hashprice"
TITLE_COMPONENTS = "Profit components against spot price (PPA + short call)"
TITLE_CALL = "Fixed price against fixed price + short call: the upside flattens above the strike"

#: USD/h up to this are drawn linearly on the payoff charts' cash axes, beyond it log.
USD_PER_H_LINEAR_UP_TO = 1000.0


@dataclass(frozen=True, slots=True)
class PayoffBooks:
    """The two books the payoff charts draw, and the reference hashprice of their lines."""

    fixed: StrategyResult
    ppa: FixedPpa
    with_call: StrategyResult
    call: ShortCall
    hashprice_usd_per_ph_day: float


def payoff_books(comparison: Comparison) -> PayoffBooks | None:
    """The first PPA-at-spot book without hedges and the first with one short call."""
    fixed = with_call = None
    for r in comparison.results:
        s, h = r.strategy.supply, r.strategy.hedges
        if not isinstance(s, FixedPpa) or s.resale_cap_usd_per_mwh is not None:
            continue
        if not h and fixed is None:
            fixed = r
        elif len(h) == 1 and isinstance(h[0], ShortCall) and with_call is None:
            with_call = r
    if fixed is None or with_call is None:
        return None
    t = fixed.table.inputs
    hp = float((t.hashprice_usd_per_ph_day * t.dt_h).sum() / t.dt_h.sum())
    assert isinstance(fixed.strategy.supply, FixedPpa)
    call = with_call.strategy.hedges[0]
    assert isinstance(call, ShortCall)
    return PayoffBooks(fixed, fixed.strategy.supply, with_call, call, hp)


def _price_grid(prices: FloatArray) -> FloatArray:
    low, high = min(float(prices.min()), 0.0), max(float(prices.max()), 300.0)
    linear = np.linspace(low, PRICE_LINEAR_UP_TO_USD_PER_MWH, 801)
    log = np.geomspace(PRICE_LINEAR_UP_TO_USD_PER_MWH, high, 200)
    return np.asarray(np.concatenate((linear, log[1:])))


def _curves(books: PayoffBooks, fleet: FleetSpec, pool_fee: float, call: bool) -> PayoffCurves:
    grid = _price_grid(books.fixed.table.inputs.price_usd_per_mwh)
    c = books.call
    return ppa_payoff(
        fleet,
        grid,
        hashprice_usd_per_ph_day=books.hashprice_usd_per_ph_day,
        pool_fee=pool_fee,
        quantity_mw=books.ppa.quantity_mw,
        ppa_price_usd_per_mwh=books.ppa.price_usd_per_mwh,
        call=CallTerms(c.quantity_mw, c.strike_usd_per_mwh, c.premium_usd_per_mwh)
        if call
        else None,
    )


def _points(ax: Axes, x: FloatArray, y: FloatArray, color: str, label: str | None = None) -> None:
    """One replayed interval per point: small, faint, rasterised (tens of thousands)."""
    ax.scatter(x, y, s=6, alpha=0.4, linewidths=0, rasterized=True, color=color, label=label)


def _price_axis(ax: Axes) -> None:
    ax.set_xscale("symlog", linthresh=PRICE_LINEAR_UP_TO_USD_PER_MWH, linscale=2.0)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel(f"spot price USD/MWh (log above {PRICE_LINEAR_UP_TO_USD_PER_MWH:,.0f})")
    ax.grid(True, alpha=0.3)


def _cash_chart(ax: Axes, title: str) -> None:
    """A cash chart's frame: the zero line, the price and USD/h axes, title and legend."""
    ax.axhline(0.0, color="grey", lw=0.8)
    _price_axis(ax)
    ax.set_yscale("symlog", linthresh=USD_PER_H_LINEAR_UP_TO, linscale=1.5)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel(f"USD per hour (log beyond ±{USD_PER_H_LINEAR_UP_TO:,.0f})")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)


def _note(books: PayoffBooks) -> str:
    return (
        f"points: each replayed interval; lines: the contracts' payoff at the window's mean "
        f"hashprice {books.hashprice_usd_per_ph_day:,.2f} USD/PH/day"
    )


def load_vs_price(books: PayoffBooks, fleet: FleetSpec, pool_fee: float) -> Figure:
    """Chart 1: the fixed-price book's load against spot, and where each model curtails."""
    t = books.fixed.table.inputs
    curves = _curves(books, fleet, pool_fee, call=False)
    fig, ax = plt.subplots(figsize=(11, 4.8), layout="constrained")
    _points(ax, t.price_usd_per_mwh, t.running_mw, "#1f4e79", "replay")
    ax.step(
        curves.price_usd_per_mwh,
        curves.load_mw,
        where="post",
        color="black",
        lw=1.6,
        label="payoff function",
    )
    ehp = miner_energy_hashprice(fleet, books.hashprice_usd_per_ph_day, pool_fee)
    for m, name in enumerate(fleet.model_names):
        value = float(ehp[fleet.model_index == m].mean())
        ax.axvline(
            value,
            linestyle="--",
            lw=1,
            color=f"C{m + 1}",
            label=f"energy hashprice {name} {value:,.0f}",
        )
    ax.axhline(
        books.ppa.quantity_mw, color="grey", lw=0.8, label=f"PPA {books.ppa.quantity_mw:g} MW"
    )
    _price_axis(ax)
    ax.set_ylabel("load MW")
    ax.set_title(f"{TITLE_LOAD}\n{_note(books)}", fontsize=10)
    ax.legend(loc="center right", fontsize=8, framealpha=0.9)
    return fig


def components_vs_price(books: PayoffBooks, fleet: FleetSpec, pool_fee: float) -> Figure:
    """Chart 2: mining, resale, premium, payout and power cost per hour against spot."""
    r = books.with_call
    t, s = r.table.inputs, r.table.settlement
    dt_h = np.where(t.dt_h > 0, t.dt_h, 1.0)
    curves = _curves(books, fleet, pool_fee, call=True)
    series = (
        ("mining revenue", s.mining_revenue_usd, curves.mining_usd_per_h, 1.0),
        ("resale", s.resale_revenue_usd, curves.resale_usd_per_h, 1.0),
        ("call premium", s.call_premium_usd, curves.premium_usd_per_h, 1.0),
        ("call payout", s.call_payout_usd, curves.payout_usd_per_h, -1.0),
        ("power cost", s.power_cost_usd, curves.power_cost_usd_per_h, -1.0),
    )
    fig, ax = plt.subplots(figsize=(11, 5.2), layout="constrained")
    for n, (label, flow, line, sign) in enumerate(series):
        _points(ax, t.price_usd_per_mwh, sign * flow / dt_h, f"C{n}")
        ax.plot(curves.price_usd_per_mwh, sign * line, color=f"C{n}", lw=1.6, label=label)
    _cash_chart(ax, f"{TITLE_COMPONENTS}\n{_note(books)}; costs and payouts negative")
    return fig


def fixed_vs_call(books: PayoffBooks, fleet: FleetSpec, pool_fee: float) -> Figure:
    """Chart 3: net per hour of the fixed-price book and of it with the short call."""
    fig, ax = plt.subplots(figsize=(11, 5.0), layout="constrained")
    plain = _curves(books, fleet, pool_fee, call=False)
    called = _curves(books, fleet, pool_fee, call=True)
    for n, (r, curves) in enumerate(((books.fixed, plain), (books.with_call, called))):
        t = r.table.inputs
        dt_h = np.where(t.dt_h > 0, t.dt_h, 1.0)
        _points(ax, t.price_usd_per_mwh, r.table.settlement.net_usd / dt_h, f"C{n}")
        ax.plot(
            curves.price_usd_per_mwh,
            curves.net_usd_per_h,
            color=f"C{n}",
            lw=1.8,
            label=f"{r.strategy.name}: net",
        )
    ax.axvline(
        books.call.strike_usd_per_mwh,
        color="grey",
        linestyle="--",
        lw=1,
        label=f"call strike {books.call.strike_usd_per_mwh:g}",
    )
    _cash_chart(ax, f"{TITLE_CALL}\n{_note(books)}")
    return fig
