"""The cross-market comparison as text, and as an HTML page with each market's charts side by side.

The HTML is self-contained like the replay report's (charts as ``data:`` URIs, inline CSS);
the PNGs and ``markets.json`` are written beside it. matplotlib is imported by ``write``
only: the text table needs none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from controller.app.replay.markets import MarketComparison, MarketResult
from controller.app.replay.summary import in_currency

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HTML_NAME = "markets.html"
JSON_NAME = "markets.json"


def _opt(value: float | None, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value + 0.0:>{width},.2f}"


def format_markets(comparison: MarketComparison, wall_s: float) -> str:
    """The per-market table for the terminal."""
    results = comparison.results
    first = results[0].result.typed_report
    s = first.summary
    lines = [
        f"hashspark markets: {len(results)} markets, one fleet and book "
        f"(fast engine, {wall_s:.2f} s)",
        f"  window      {first.window.start} .. {first.window.end}  "
        f"(common to every market; {first.totals.hours:,.2f} h)",
        f"  fleet       {s.miners:,} miners, {s.nominal_mw:.4f} MW nominal, "
        f"{s.fleet_efficiency_j_per_th:.2f} J/TH (from {first.config_file})",
        f"  book        {comparison.book}",
        f"  currency    every figure in {comparison.currency}",
        "",
        f"  {'market':<22} {'net USD':>13} {'USD/MWh':>8} {'curtailed h':>11} "
        f"{'mean price':>10} {'EHP margin':>10} {'daily std':>9} {'monthly std':>11}",
    ]
    for r in results:
        row = r.row()
        lines.append(
            f"  {r.name:<22} {row['totals']['net_usd']:>13,.2f} "
            f"{_opt(row['net_margin_usd_per_mwh'], 8)} {row['curtailed_hours']:>11,.2f} "
            f"{r.mean_price_usd_per_mwh:>10,.2f} {r.energy_hashprice_margin_usd_per_mwh:>10,.2f} "
            f"{_opt(r.daily.std_usd, 9)} {_opt(r.monthly_std_usd, 11)}"
        )
    counted = results[0]
    lines += [
        "",
        "  USD/MWh: net per mined MWh. EHP margin: the fleet's mean energy hashprice (after",
        "  the pool fee) less the mean price, USD/MWh, time-weighted. Std of the net per whole",
        f"  UTC day ({counted.daily.days_counted} days) and whole calendar month "
        f"({counted.months_counted} months), USD.",
        "",
    ]
    lines += [f"  {r.name:<22} {_feed_note(r)}" for r in results]
    return in_currency("\n".join(lines), comparison.currency)


def _feed_note(r: MarketResult) -> str:
    site = r.inputs.site
    kind = "day-ahead hourly" if site.market == "day_ahead" else "real-time"
    # The feed's source names the conversion when there was one (controller/currency.py).
    return f"{kind}, {r.result.typed_report.price_feed.source}"


@dataclass(frozen=True, slots=True)
class MarketsReportFiles:
    """What ``write`` wrote."""

    html: Path
    pngs: tuple[Path, ...]
    json: Path


def write(directory: Path, comparison: MarketComparison) -> MarketsReportFiles:
    """``markets.html`` with every market's charts side by side, the PNGs and ``markets.json``."""
    from controller.app.replay import charts, html_report  # noqa: PLC0415 (matplotlib: slow)
    from controller.app.replay.markets_charts import cumulative_net, daily_net_per_market  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    results = comparison.results
    shared = [
        ("cumulative-net-per-market.png", "Cumulative net per market", cumulative_net(results)),
        ("daily-net-per-market.png", "Daily net per market", daily_net_per_market(results)),
    ]
    per_market = []
    for r in results:
        model = r.inputs.model
        per_market.append(
            (
                r,
                charts.price_vs_energy_hashprice(
                    r.result.table, model.fleet, model.params.pool_fee
                ),
                charts.cumulative_pnl(r.result.table),
            )
        )
    images: dict[str, str] = {}
    pngs = []

    def put(name: str, alt: str, fig: Figure) -> str:
        data = charts.png(fig)
        html_report._write_atomic(directory / name, data)
        pngs.append(directory / name)
        images[name] = html_report._img(name, data, alt)
        return images[name]

    for name, alt, fig in shared:
        put(name, alt, fig)
    cells = []
    for r, price_fig, pnl_fig in per_market:
        a = put(f"{r.name}-price-vs-energy-hashprice.png", f"{r.name}: price vs EHP", price_fig)
        b = put(f"{r.name}-cumulative-pnl.png", f"{r.name}: cumulative P&L", pnl_fig)
        cells.append(
            f"<div><h3>{escape(r.name)}</h3><p class='note'>{escape(_feed_note(r))}</p>{a}{b}</div>"
        )
    json_path = directory / JSON_NAME
    html_report._write_atomic(json_path, html_report._json_bytes(comparison.to_json()))
    html_path = directory / HTML_NAME
    html_report._write_atomic(html_path, _html(comparison, images, cells).encode("utf-8"))
    return MarketsReportFiles(html_path, tuple(pngs), json_path)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1600px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f3f7; text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.3em 0; }
p.note { color: #555; font-size: 0.9em; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1em; }
"""


def _html(comparison: MarketComparison, images: dict[str, str], cells: list[str]) -> str:
    ccy = comparison.currency
    first = comparison.results[0].result.typed_report
    head = "".join(
        f"<th>{escape(h)}</th>"
        for h in (
            "market",
            f"net {ccy}",
            f"{ccy} per mined MWh",
            "curtailed h",
            f"mean price {ccy}/MWh",
            f"EHP margin {ccy}/MWh",
            f"daily std {ccy}",
            f"monthly std {ccy}",
        )
    )
    body = "".join(
        "<tr>"
        + f"<td>{escape(r.name)}</td>"
        + "".join(
            f"<td class='n'>{'n/a' if v is None else f'{v + 0.0:,.2f}'}</td>"
            for v in (
                r.result.typed_report.totals.net_usd,
                r.result.typed_report.summary.net_margin_usd_per_mwh,
                r.result.typed_report.summary.curtailed_hours,
                r.mean_price_usd_per_mwh,
                r.energy_hashprice_margin_usd_per_mwh,
                r.daily.std_usd,
                r.monthly_std_usd,
            )
        )
        + "</tr>"
        for r in comparison.results
    )
    title = "hashspark markets: one fleet and book over several markets"
    return (
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en"><head><meta charset="utf-8">',
                f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
                f"<h1>{escape(title)}</h1>",
                f"<p>Window {escape(first.window.start)} .. {escape(first.window.end)} (common to "
                f"every market), fleet and book from {escape(first.config_file)}: "
                f"{escape(comparison.book)}. Every figure in {escape(ccy)}.</p>",
                f"<table><tr>{head}</tr>{body}</table>",
                "<p class='note'>EHP margin: the fleet's time-weighted mean energy hashprice "
                "(after the pool fee) less the mean price. Std: population standard deviation "
                "of the net per whole UTC day and per whole calendar month.</p>",
                "<h2>Cumulative net per market</h2>",
                images["cumulative-net-per-market.png"],
                "<h2>Daily net per market</h2>",
                images["daily-net-per-market.png"],
                "<h2>Each market's charts, side by side</h2>",
                f"<div class='grid'>{''.join(cells)}</div>",
                "</body></html>",
            ]
        )
        + "\n"
    )
