"""The cross-market comparison's own charts: every market's cumulative and daily net together."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from controller.app.replay.charts import (  # charts selects the Agg backend
    daily_bars,
    daily_panels,
    money_axis,
    std_text,
)
from controller.app.replay.markets import MarketResult


def cumulative_net(results: Sequence[MarketResult]) -> Figure:
    """Each market's cumulative net on one axis."""
    fig, ax = plt.subplots(figsize=(11, 4.8), layout="constrained")
    for r in results:
        t = r.result.table
        edges = np.append(t.inputs.start, t.inputs.end[-1]).astype("datetime64[s]")
        ax.plot(edges, np.append(0.0, np.cumsum(t.settlement.net_usd)), linewidth=1.5, label=r.name)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    money_axis(ax, f"cumulative net, {results[0].inputs.currency}")
    ax.set_title("Cumulative net per market: one fleet and book")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    return fig


def daily_net_per_market(results: Sequence[MarketResult]) -> Figure:
    """Daily net, one panel per market on a shared scale (faded: partial days)."""
    fig, axs = daily_panels(len(results), 1.4)
    currency = results[0].inputs.currency
    for ax, r in zip(axs, results, strict=True):
        d = r.daily
        daily_bars(ax, d)
        ax.set_title(
            f"{r.name}: daily std {std_text(d.std_usd)} {currency}", fontsize=9, loc="left"
        )
        money_axis(ax)
    fig.suptitle(f"Daily net per market, {currency} per UTC day")
    return fig
