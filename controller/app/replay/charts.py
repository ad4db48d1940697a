"""The replay report's charts, drawn with matplotlib's Agg backend from a replay's numbers.

Each builder returns its ``Figure`` so tests can read back what was drawn; ``png`` renders
one and closes it. The daily panels and money axes (``daily_panels``, ``daily_bars``,
``money_axis``) are shared with the cross-market charts (``markets_charts``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib as mpl

mpl.use("Agg")  # before pyplot: no display, no GUI toolkit

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from controller.app.replay.compare import DailyNet, StrategyResult
from controller.decision.economics import energy_hashprice_usd_per_mwh, net_hashprice
from controller.domain import FleetSpec, FloatArray
from controller.records import IntervalTable

#: Running below this share of nominal power counts as curtailed (as the JSON report does).
_CURTAILED_TOLERANCE = 1e-9

#: Prices up to this many USD/MWh are drawn on a linear scale; beyond it, logarithmic.
PRICE_LINEAR_UP_TO_USD_PER_MWH = 200.0

#: The components of the cumulative P&L chart, each with the sign it adds to net.
PNL_COMPONENTS = (
    ("mining_revenue_usd", "mining revenue", 1.0),
    ("power_cost_usd", "power cost", -1.0),
    ("resale_revenue_usd", "resale revenue", 1.0),
    ("call_premium_usd", "call premium", 1.0),
    ("call_payout_usd", "call payout (capped upside)", -1.0),
    ("forward_settlement_usd", "forward settlement", 1.0),
)

_DPI = 110

_PRICE_TICKS = (-1000, -200, -100, -50, 0, 50, 100, 150, 200, 500, 1000, 2000, 5000, 10_000)


def _dates(epoch_s: FloatArray) -> np.ndarray:
    return np.asarray(np.round(epoch_s * 1000.0).astype("datetime64[ms]"))


def _date_axis(ax: Axes) -> None:
    # matplotlib.dates leaves these two constructors unannotated.
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")


def money_axis(ax: Axes, label: str | None = None) -> None:
    """Whole units with thousands separators on the y axis, a grid, and ``label``."""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    if label is not None:
        ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)


def daily_panels(n: int, inches_each: float) -> tuple[Figure, np.ndarray]:
    """``n`` panels stacked, one a series of days, on a shared time and money scale."""
    fig, axes = plt.subplots(
        n, 1, figsize=(11, 1.2 + inches_each * n), sharex=True, sharey=True, layout="constrained"
    )
    return fig, np.atleast_1d(axes)


def daily_bars(ax: Axes, d: DailyNet) -> None:
    """One bar a UTC day (spanning its day), red below zero, faded for a partial day."""
    days = np.asarray(d.dates, dtype="datetime64[D]")
    colors = [
        to_rgba("#d9534f" if net < 0 else "#3c7dc4", 1.0 if whole else 0.35)
        for net, whole in zip(d.net_usd, d.whole, strict=True)
    ]
    ax.bar(days, d.net_usd, width=1.0, align="edge", color=colors)


def _shade(ax: Axes, edges: np.ndarray, mask: np.ndarray, color: str, label: str) -> None:
    """Shade the intervals where ``mask`` holds, over the axes' full height."""
    if not mask.any():
        return
    ax.fill_between(
        edges,
        0,
        1,
        where=np.append(mask, False),
        step="post",
        color=color,
        alpha=0.35,
        linewidth=0,
        transform=ax.get_xaxis_transform(),
        label=label,
    )


def price_vs_energy_hashprice(table: IntervalTable, fleet: FleetSpec, pool_fee: float) -> Figure:
    """Spot price against each model's energy hashprice, curtailed intervals shaded."""
    inputs = table.inputs
    edges = _dates(np.append(inputs.start, inputs.end[-1]))
    fig, ax = plt.subplots(figsize=(11, 5.2), layout="constrained")
    running = inputs.running_mw
    some = running < inputs.nominal_mw * (1 - _CURTAILED_TOLERANCE)
    whole = running <= 0.0
    _shade(ax, edges, some & ~whole, "#f2b84b", "some miners curtailed")
    _shade(ax, edges, whole, "#d9534f", "whole site curtailed")
    price = np.append(inputs.price_usd_per_mwh, inputs.price_usd_per_mwh[-1])
    ax.step(edges, price, where="post", color="#1f4e79", linewidth=0.8, label="spot price")
    hpn = net_hashprice(inputs.hashprice_usd_per_ph_day, pool_fee)
    for m, name in enumerate(fleet.model_names):
        members = fleet.model_index == m
        eff = float(fleet.nominal_power_w[members].sum() / fleet.nominal_hashrate_th[members].sum())
        ehp = energy_hashprice_usd_per_mwh(hpn, np.full_like(hpn, eff))
        ax.step(
            edges,
            np.append(ehp, ehp[-1]),
            where="post",
            linewidth=1.6,
            label=f"energy hashprice, {name} ({eff:.1f} J/TH)",
        )
    ax.set_yscale("symlog", linthresh=PRICE_LINEAR_UP_TO_USD_PER_MWH, linscale=2.0)
    low, high = ax.get_ylim()
    ax.set_yticks([t for t in _PRICE_TICKS if low <= t <= high])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel(f"USD/MWh (log above {PRICE_LINEAR_UP_TO_USD_PER_MWH:,.0f})")
    ax.grid(True, alpha=0.3)
    ax.set_xlim(edges[0], edges[-1])
    _date_axis(ax)
    ax.set_title("Spot price against energy hashprice per model")
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return fig


def cumulative_pnl(table: IntervalTable) -> Figure:
    """Cumulative P&L by component and net, signed as they add to net."""
    s = table.settlement
    edges = _dates(np.append(table.inputs.start, table.inputs.end[-1]))
    fig, ax = plt.subplots(figsize=(11, 4.5), layout="constrained")
    for key, label, sign in PNL_COMPONENTS:
        values = getattr(s, key)
        if not np.any(values):
            continue  # a component the book does not have
        ax.plot(edges, np.append(0.0, np.cumsum(sign * values)), linewidth=1.3, label=label)
    ax.plot(edges, np.append(0.0, np.cumsum(s.net_usd)), color="black", linewidth=2.2, label="net")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlim(edges[0], edges[-1])
    money_axis(ax, "cumulative USD")
    _date_axis(ax)
    ax.set_title("Cumulative P&L by component (costs and payouts negative)")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    return fig


def daily_net_per_strategy(results: Sequence[StrategyResult]) -> Figure:
    """Daily net cash flow, one panel per strategy on a shared scale."""
    fig, axs = daily_panels(len(results), 1.55)
    for ax, result in zip(axs, results, strict=True):
        d = result.daily
        daily_bars(ax, d)
        ax.axhline(d.mean_usd, color="black", linewidth=0.8, linestyle="--")
        ax.set_title(
            f"{result.strategy.name}: std {std_text(d.std_usd)} USD/day, worst day "
            f"{d.worst_usd:,.0f} USD ({d.worst_date}), mean {d.mean_usd:,.0f} (dashed)",
            fontsize=9,
            loc="left",
        )
        money_axis(ax, "USD/day")
    _date_axis(axs[-1])
    axs[-1].set_xlabel("UTC day (faded bars: partial days, left out of std and worst day)")
    fig.suptitle("Daily net cash flow per strategy")
    return fig


def std_text(value: float | None) -> str:
    """A daily std for a title: whole units, or n/a where there is none."""
    return "n/a" if value is None else f"{value:,.0f}"


def daily_net_spread(results: Sequence[StrategyResult]) -> Figure:
    """The distribution of daily net cash flow (whole days) per strategy, as box plots."""
    fig, ax = plt.subplots(figsize=(11, 0.9 + 0.55 * len(results)), layout="constrained")
    data = [
        r.daily.net_usd[r.daily.whole] if r.daily.whole.any() else r.daily.net_usd for r in results
    ]
    ax.boxplot(data, orientation="horizontal", whis=(0, 100), widths=0.6)
    ax.set_yticks(range(1, len(results) + 1), [r.strategy.name for r in results])
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("net cash flow, USD per UTC day (box: quartiles; whiskers: worst and best day)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("Spread of daily net cash flow per strategy")
    return fig


def png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes and release it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=_DPI)
    finally:
        plt.close(fig)
    return buf.getvalue()
