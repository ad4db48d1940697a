"""The replay report as one self-contained HTML file, its PNGs beside it, and its JSON.

Over 300 lines: one self-contained page; its sections share the styling and tables.

The HTML embeds every chart as a base64 ``data:`` URI and carries its own CSS: it opens in
a browser without a network and loads nothing from anywhere else.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from controller.accounting.report import TOTAL_KEYS
from controller.app.replay import charts, html_capital
from controller.app.replay.compare import Comparison
from controller.app.replay.report import ReplayReport
from controller.app.replay.runner import ReplayInputs, ReplayResult
from controller.app.replay.series_export import write_series

HTML_NAME = "report.html"
REPORT_JSON_NAME = "report.json"
COMPARISON_JSON_NAME = "comparison.json"

#: Row labels of the totals, in TOTAL_KEYS order, with units.
_TOTAL_LABELS = {
    "intervals": "intervals",
    "hours": "hours",
    "mined_mwh": "mined MWh",
    "curtailed_mwh": "curtailed MWh",
    "mining_revenue_usd": "mining revenue USD",
    "power_cost_usd": "power cost USD",
    "resale_revenue_usd": "resale revenue USD",
    "call_premium_usd": "call premium USD",
    "call_payout_usd": "call payout USD (capped upside)",
    "forward_settlement_usd": "forward settlement USD",
    "net_usd": "net USD",
}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1240px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f3f7; text-align: left; }
tr.key td, tr.key th { font-weight: bold; background: #fafbe6; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
p.note { color: #555; font-size: 0.9em; max-width: 70em; }
"""


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """What a report wrote."""

    html: Path
    pngs: tuple[Path, ...]
    json: tuple[Path, ...]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write so that a crash leaves the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report is for reading
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value) + 0.0:,.{digits}f}"


def _img(name: str, data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{b64}" alt="{escape(alt)}" title="{escape(name)}">'


def _totals_table(report: ReplayReport) -> str:
    t, s = report.totals.as_dict(), report.summary
    rows = [(_TOTAL_LABELS[k], _num(t[k])) for k in TOTAL_KEYS]
    rows += [
        ("net margin USD per mined MWh", _num(s.net_margin_usd_per_mwh)),
        ("curtailed hours (some miners off)", _num(s.curtailed_hours)),
        ("fully curtailed hours", _num(s.fully_curtailed_hours)),
        ("hashspark spread USD/MWh", _num(s.hashspark_spread_usd_per_mwh)),
    ]
    body = "".join(
        f"<tr{' class=key' if label == 'net USD' else ''}><th>{escape(label)}</th>"
        f'<td class="n">{value}</td></tr>'
        for label, value in rows
    )
    return f"<table>{body}</table>"


def live_path_section(report: ReplayReport) -> str:
    """The live path's run and what the miners' resume ramps held back (empty otherwise)."""
    live = report.live_path
    if live is None:
        return ""
    r = live.ramp_losses
    rows = [
        ("simulated miners", f"{_num(live.miners)} ({escape(live.family)}, through pyasic)"),
        ("feeds", escape(live.feeds)),
        ("resume ramp s", _num(live.resume_ramp_s, 0)),
        ("simulated s per wall s", _num(live.sim_s_per_wall_s, 0)),
        ("cycles", _num(live.cycles)),
        (
            "commands sent / applied",
            f"{_num(live.commands['sent'])} / {_num(live.commands['applied'])}",
        ),
        ("ramp-ups", _num(r.ramp_ups)),
        ("PH/s-hours not hashed during ramps", _num(r.ph_hours_not_hashed, 4)),
        ("MWh not drawn during ramps", _num(r.mwh_not_drawn, 4)),
        ("mining revenue not earned USD", _num(r.mining_revenue_usd)),
        ("power not drawn, at its opportunity cost USD", _num(r.power_value_usd)),
        ("ramp losses net USD", _num(r.net_usd)),
        ("net USD after ramp losses", _num(live.net_usd_after_ramp_losses)),
    ]
    body = "".join(
        f"<tr><th>{escape(label)}</th><td class=n>{value}</td></tr>" for label, value in rows
    )
    return (
        "<h2>Live path: ramp losses</h2>"
        '<p class="note">The ledger books each miner at the operating point its telemetry '
        "shows, as the daemon does, so a miner resuming counts at its target at once. The "
        "simulated miners ramp their hashrate up over the resume ramp; what they did not hash "
        "(and the power they did not draw) in those seconds is measured on the simulator and "
        "valued at the prices of the interval in which each ramp began. It is the difference "
        "between this replay and the fast path that the ramps explain.</p>"
        f"<table>{body}</table>"
    )


def _per_model_table(report: ReplayReport) -> str:
    head = (
        "<tr><th>model</th><th>miners</th><th>J/TH</th><th>mined MWh</th>"
        "<th>curtailed MWh</th><th>curtailed h</th><th>mining revenue USD</th>"
        "<th>mean energy hashprice USD/MWh</th></tr>"
    )
    body = "".join(
        f"<tr><th>{escape(m.model)}</th><td class=n>{_num(m.miners)}</td>"
        f"<td class=n>{_num(m.efficiency_j_per_th)}</td><td class=n>{_num(m.mined_mwh)}</td>"
        f"<td class=n>{_num(m.curtailed_mwh)}</td>"
        f"<td class=n>{_num(m.curtailed_hours)}</td>"
        f"<td class=n>{_num(m.mining_revenue_usd)}</td>"
        f"<td class=n>{_num(m.mean_energy_hashprice_usd_per_mwh)}</td></tr>"
        for m in report.per_model
    )
    return f"<table>{head}{body}</table>"


def _per_instrument_table(report: ReplayReport) -> str:
    """Each hedge instrument's and supply tranche's flows over the window, one line each."""
    if not report.per_instrument:
        return ""
    body = "".join(
        f"<tr><th>{escape(i.id)}</th><td>{escape(i.component)}</td>"
        f"<td class=n>{_num(i.usd)}</td></tr>"
        for i in report.per_instrument
    )
    return (
        "<h2>Per instrument and supply tranche</h2>"
        f"<table><tr><th>id</th><th>component</th><th>USD</th></tr>{body}</table>"
    )


def strategy_table(rows: list[dict[str, Any]]) -> str:
    """The comparison as an HTML table: one column per strategy, one row per figure."""
    head = "<tr><th></th>" + "".join(f"<th>{escape(r['name'])}</th>" for r in rows) + "</tr>"
    lines: list[tuple[str, list[str], bool]] = [
        ("net USD", [_num(r["totals"]["net_usd"]) for r in rows], True),
        ("net margin USD per mined MWh", [_num(r["net_margin_usd_per_mwh"]) for r in rows], True),
        ("daily net: std USD", [_num(r["daily_net_std_usd"]) for r in rows], True),
        ("daily net: worst day USD", [_num(r["worst_day"]["net_usd"]) for r in rows], True),
        ("monthly net: std USD", [_num(r["monthly_net_std_usd"]) for r in rows], True),
        ("monthly net: CV (std / mean)", [_num(r["monthly_net_cv"], 3) for r in rows], True),
        ("whole months counted", [_num(r["months_counted"]) for r in rows], False),
        ("weekly net: CV", [_num(r["weekly_net_cv"], 3) for r in rows], False),
        ("worst day (UTC)", [escape(r["worst_day"]["date"]) for r in rows], False),
        ("daily net: mean USD", [_num(r["daily_net_mean_usd"]) for r in rows], False),
        ("whole days counted", [_num(r["days_counted"]) for r in rows], False),
        ("curtailed hours", [_num(r["curtailed_hours"]) for r in rows], False),
        (
            "hashspark spread USD/MWh",
            [_num(r["hashspark_spread_usd_per_mwh"]) for r in rows],
            False,
        ),
    ]
    lines += [(_TOTAL_LABELS[k], [_num(r["totals"][k]) for r in rows], False) for k in TOTAL_KEYS]
    body = "".join(
        f"<tr{' class=key' if key else ''}><th>{escape(label)}</th>"
        + "".join(f"<td class=n>{v}</td>" for v in values)
        + "</tr>"
        for label, values, key in lines
    )
    books = "".join(
        f"<li><b>{escape(r['name'])}</b>: {escape(r['description'])}</li>" for r in rows
    )
    return f"<table>{head}{body}</table><ul>{books}</ul>"


def write_report(
    directory: Path,
    inputs: ReplayInputs,
    result: ReplayResult,
    comparison: Comparison | None = None,
    comparison_json: dict[str, Any] | None = None,
) -> ReportFiles:
    """Write ``report.html``, its PNGs and ``report.json`` (and ``comparison.json``)."""
    directory.mkdir(parents=True, exist_ok=True)
    report = result.typed_report
    model = inputs.model
    figures = [
        (
            "price-vs-energy-hashprice.png",
            "Spot price against energy hashprice per model",
            charts.price_vs_energy_hashprice(result.table, model.fleet, model.params.pool_fee),
        ),
        ("cumulative-pnl.png", "Cumulative P&L by component", charts.cumulative_pnl(result.table)),
    ]
    if comparison is not None:
        figures += [
            (
                "daily-net-per-strategy.png",
                "Daily net cash flow per strategy",
                charts.daily_net_per_strategy(comparison.results),
            ),
            (
                "daily-net-spread.png",
                "Spread of daily net cash flow per strategy",
                charts.daily_net_spread(comparison.results),
            ),
            *html_capital.payoff_figures(comparison, model.fleet, model.params.pool_fee),
        ]
    images: dict[str, str] = {}
    pngs = []
    for name, alt, fig in figures:
        data = charts.png(fig)
        _write_atomic(directory / name, data)
        pngs.append(directory / name)
        images[name] = _img(name, data, alt)
    jsons = [directory / REPORT_JSON_NAME]
    _write_atomic(jsons[0], _json_bytes(report.as_dict()))
    if comparison is not None and comparison_json is not None:
        series = write_series(directory, comparison.results, _write_atomic)
        comparison_json = {
            **comparison_json,
            "strategies": [
                {**row, "series": series[row["name"]].as_dict()}
                for row in comparison_json["strategies"]
            ],
        }
    if comparison_json is not None:
        jsons.append(directory / COMPARISON_JSON_NAME)
        _write_atomic(jsons[1], _json_bytes(comparison_json))
    html_path = directory / HTML_NAME
    _write_atomic(html_path, _html(report, images, comparison_json).encode("utf-8"))
    return ReportFiles(html_path, tuple(pngs), tuple(jsons))


def _html(
    report: ReplayReport, images: dict[str, str], comparison_json: dict[str, Any] | None
) -> str:
    s, w = report.summary, report.window
    title = f"hashspark replay: {report.scenario}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>Site <b>{escape(report.site)}</b>, window {escape(w.start)} .. "
        f"{escape(w.end)} ({_num(report.totals.hours)} h), "
        f"{_num(s.miners)} miners, {_num(s.nominal_mw, 4)} MW nominal, "
        f"{_num(s.fleet_efficiency_j_per_th)} J/TH. Engine {escape(report.engine)}, "
        f"config {escape(report.config_file)} (version {escape(report.config_version)}).</p>",
        "<h2>The scenario's own book</h2>",
        _totals_table(report),
        "<h2>Spot price against energy hashprice</h2>",
        images["price-vs-energy-hashprice.png"],
        '<p class="note">A miner is worth running while its energy hashprice (what one MWh '
        "earns when mined, after the pool fee) is above the opportunity cost of a MWh. Shaded: "
        "intervals in which some miners, or the whole site, were curtailed.</p>",
        "<h2>Cumulative P&amp;L by component</h2>",
        images["cumulative-pnl.png"],
        live_path_section(report),
        _per_instrument_table(report),
    ]
    if comparison_json is not None:
        parts += [
            "<h2>Strategies compared</h2>",
            f'<p class="note">The same site, fleet and window under each book '
            f"({escape(comparison_json['strategies_source'])}); each book's dispatch uses its "
            "own supply's opportunity cost. Daily figures are per UTC day; the standard "
            "deviation (population) and the worst day count whole days only.</p>",
            strategy_table(comparison_json["strategies"]),
            "<h2>Daily net cash flow per strategy</h2>",
            images["daily-net-per-strategy.png"],
            images["daily-net-spread.png"],
            html_capital.capital_section(comparison_json.get("capital")),
            html_capital.payoff_section(images),
        ]
    parts += [
        "<h2>Per model</h2>",
        _per_model_table(report),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
