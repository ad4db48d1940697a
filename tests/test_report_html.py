"""The HTML report: self-contained, valid PNGs, every chart drawn from the replay's numbers."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from controller.accounting.payoff import ppa_payoff
from controller.app.replay import charts, html_capital, payoff_charts
from controller.app.replay.capital_view import CapitalInputs, capital_view
from controller.app.replay.compare import Comparison, compare
from controller.app.replay.html_report import ReportFiles, write_report
from controller.app.replay.runner import ReplayInputs, ReplayResult, prepare, replay
from controller.config import load_config

HEDGED = Path(__file__).resolve().parents[1] / "deploy/scenarios/ercot-hb-south-hedged.toml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Built:
    """A compare report over the scarcity window, and what it was made from."""

    inputs: ReplayInputs
    result: ReplayResult
    comparison: Comparison
    files: ReportFiles


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    inputs = prepare(load_config(HEDGED), window="scarcity-2024-08-20")
    result = replay(inputs)
    comparison = compare(inputs)
    out = tmp_path_factory.mktemp("report")
    view = capital_view(comparison, inputs.model.fleet, CapitalInputs())
    data = {**comparison.to_json({"scenario": "x"}), "capital": view.to_json()}
    files = write_report(out, inputs, result, comparison, data)
    return Built(inputs, result, comparison, files)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_writes_html_pngs_and_json(built: Built) -> None:
    names = sorted(p.name for p in built.files.html.parent.iterdir())
    assert names == [
        "comparison.json",
        "cumulative-pnl.png",
        "daily-net-per-strategy.png",
        "daily-net-spread.png",
        "payoff-call.png",
        "payoff-components.png",
        "payoff-load.png",
        "price-vs-energy-hashprice.png",
        "report.html",
        "report.json",
        "series",
    ]


def test_each_png_is_a_real_image(built: Built) -> None:
    assert len(built.files.pngs) == 7
    for path in built.files.pngs:
        data = path.read_bytes()
        assert len(data) > 15_000, path  # a drawn chart, not an empty canvas
        width, height = _png_size(data)
        assert width >= 800, path
        assert height >= 300, path
        assert data.endswith(b"IEND\xaeB`\x82"), path


def test_html_is_self_contained_and_embeds_the_pngs(built: Built) -> None:
    html = built.files.html.read_text(encoding="utf-8")
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", html, re.I)
    assert refs, "the charts are images"
    assert all(r.startswith("data:image/png;base64,") for r in refs), refs
    assert not re.search(r"https?://", html)
    assert "<script" not in html.lower()
    embedded = [base64.b64decode(r.removeprefix("data:image/png;base64,")) for r in refs]
    assert embedded == [p.read_bytes() for p in built.files.pngs]


def test_html_carries_the_strategy_table(built: Built) -> None:
    html = built.files.html.read_text(encoding="utf-8")
    for r in built.comparison.results:
        row = r.row()
        assert f"<th>{row['name']}</th>" in html
        assert f"{row['totals']['net_usd']:,.2f}" in html
    assert f"{built.result.report['totals']['net_usd']:,.2f}" in html


def test_price_chart_draws_the_prices_and_energy_hashprices(built: Built) -> None:
    table, model = built.result.table, built.inputs.model
    fig = charts.price_vs_energy_hashprice(table, model.fleet, model.params.pool_fee)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    spot = np.asarray(lines["spot price"].get_ydata(), dtype=float)
    assert np.array_equal(spot[:-1], table.inputs.price_usd_per_mwh)
    assert spot.max() == pytest.approx(4857.82)  # 2024-08-21T00:30Z
    hp = table.inputs.hashprice_usd_per_ph_day
    for name, eff in (("Antminer S19j Pro", 3068 / 104), ("Antminer S21", 3500 / 200)):
        (label,) = [k for k in lines if str(k).startswith(f"energy hashprice, {name} ")]
        ehp = np.asarray(lines[label].get_ydata(), dtype=float)[:-1]
        np.testing.assert_allclose(ehp, hp * 0.98 * 1000 / (24 * eff))
    shaded = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    assert {c.get_label() for c in shaded} == {"some miners curtailed", "whole site curtailed"}
    charts.png(fig)


def test_cumulative_chart_ends_at_the_totals(built: Built) -> None:
    fig = charts.cumulative_pnl(built.result.table)
    ends = {ln.get_label(): float(np.asarray(ln.get_ydata())[-1]) for ln in fig.axes[0].lines}
    t = built.result.report["totals"]
    assert ends["net"] == pytest.approx(t["net_usd"])
    assert ends["power cost"] == pytest.approx(-t["power_cost_usd"])
    assert ends["call payout (capped upside)"] == pytest.approx(-t["call_payout_usd"])
    assert ends["resale revenue"] == pytest.approx(t["resale_revenue_usd"])
    charts.png(fig)


def test_daily_chart_bars_are_each_strategys_daily_net(built: Built) -> None:
    fig = charts.daily_net_per_strategy(built.comparison.results)
    assert len(fig.axes) == len(built.comparison.results)
    for ax, r in zip(fig.axes, built.comparison.results, strict=True):
        heights = [p.get_height() for p in ax.patches if isinstance(p, Rectangle)]
        assert heights == pytest.approx([d["net_usd"] for d in r.report["per_day"]])
        assert ax.get_title(loc="left").startswith(f"{r.strategy.name}: ")
    charts.png(fig)


def test_short_window_has_no_daily_std(built: Built) -> None:
    # 36 hours hold one whole UTC day: a standard deviation of one value says nothing.
    for r in built.comparison.results:
        assert r.daily.days_counted == 1
        assert r.daily.std_usd is None
        assert r.daily.worst_date == "2024-08-21"


#: Headless Chromium on a closed network: no background fetches (and a profile of its own).
CHROMIUM = (
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def _chromium(profile: Path, *args: str, timeout: float) -> str:
    """Run headless Chromium with ``profile`` and ``args``; its stdout (it must exit 0)."""
    proc = subprocess.run(
        [*CHROMIUM, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_headless_chromium_renders_every_chart(built: Built, tmp_path: Path) -> None:
    # `make test` installs chromium (scripts/ensure-system-packages): never a silent skip.
    assert shutil.which("chromium"), "chromium is missing: run scripts/ensure-system-packages"
    dom = _chromium(tmp_path / "chromium", "--dump-dom", built.files.html.as_uri(), timeout=60)
    assert dom.count('<img src="data:image/png;base64,') == 7
    assert "Strategies compared" in dom


def _payoff_figures(built: Built) -> dict[str, Figure]:
    model = built.inputs.model
    figures = html_capital.payoff_figures(built.comparison, model.fleet, model.params.pool_fee)
    return {name: fig for name, _, fig in figures}


def test_payoff_charts_draw_the_replay_and_the_payoff_function(built: Built) -> None:
    figures = _payoff_figures(built)
    assert list(figures) == [name for name, _ in html_capital.PAYOFF_PNGS]
    books = payoff_charts.payoff_books(built.comparison)
    assert books is not None
    assert (books.fixed.strategy.name, books.with_call.strategy.name) == ("ppa", "ppa+call")
    for (name, title), fig in zip(html_capital.PAYOFF_PNGS, figures.values(), strict=True):
        assert fig.axes[0].get_title().startswith(title), name
    # Chart 1: one point per interval at (spot, load); the line is the payoff function's.
    ax = figures["payoff-load.png"].axes[0]
    t = books.fixed.table.inputs
    points = ax.collections[0].get_offsets()
    assert np.array_equal(np.asarray(points), np.column_stack((t.price_usd_per_mwh, t.running_mw)))
    line = ax.lines[0]
    model = built.inputs.model
    curves = ppa_payoff(
        model.fleet,
        np.asarray(line.get_xdata(), dtype=float),
        hashprice_usd_per_ph_day=books.hashprice_usd_per_ph_day,
        pool_fee=model.params.pool_fee,
        quantity_mw=books.ppa.quantity_mw,
        ppa_price_usd_per_mwh=books.ppa.price_usd_per_mwh,
    )
    assert np.array_equal(np.asarray(line.get_ydata(), dtype=float), curves.load_mw)
    # Chart 3: the call's line is flatter above the strike by the call's quantity.
    ax = figures["payoff-call.png"].axes[0]
    x = np.asarray(ax.lines[0].get_xdata(), dtype=float)
    plain, called = (np.asarray(ln.get_ydata(), dtype=float) for ln in ax.lines[:2])
    above = x > books.call.strike_usd_per_mwh + 1
    gap = plain[above] - called[above]
    expected = (x[above] - books.call.strike_usd_per_mwh) * books.call.quantity_mw
    premium = books.call.premium_usd_per_mwh * books.call.quantity_mw
    assert np.allclose(gap, expected - premium)
    for fig in figures.values():
        plt.close(fig)


def test_series_export_matches_the_replayed_tables(built: Built) -> None:
    out = built.files.html.parent
    data = json.loads((out / "comparison.json").read_text())
    for row, result in zip(data["strategies"], built.comparison.results, strict=True):
        files = row["series"]
        with (out / files["intervals_csv"]).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        s = result.table.settlement
        assert len(rows) == s.net_usd.size
        assert [float(r["net_usd"]) for r in rows] == s.net_usd.tolist()
        for ident, component, usd in s.by_instrument:
            assert [float(r[f"{ident}.{component}"]) for r in rows] == usd.tolist()
        with (out / files["daily_csv"]).open(newline="") as handle:
            days = list(csv.DictReader(handle))
        assert [d["date"] for d in days] == list(result.daily.dates)
        assert [float(d["net_usd"]) for d in days] == pytest.approx(result.daily.net_usd.tolist())
        doc = json.loads((out / files["json"]).read_text())
        assert doc["book"] == row["name"]
        assert doc["intervals"]["net_usd"] == s.net_usd.tolist()
        assert doc["daily"]["date"] == list(result.daily.dates)


def test_html_carries_the_capital_view_with_its_assumptions(built: Built) -> None:
    html = built.files.html.read_text(encoding="utf-8")
    assert "<h2>Capital view</h2>" in html
    assert "coverage ratio on CFaR</th><td class=n>1.35</td>" in html
    assert "default 15 USD/TH x 200 TH/s" in html
    assert "monthly net: CV (std / mean)" in html


def _screenshot(html: Path, png: Path, profile: Path, height: int) -> np.ndarray:
    args = ("--hide-scrollbars", f"--window-size=1300,{height}", f"--screenshot={png}")
    _chromium(profile, *args, html.as_uri(), timeout=90)
    return np.asarray(mpimg.imread(png))


def test_headless_chromium_screenshots_the_payoff_charts(built: Built, tmp_path: Path) -> None:
    # The payoff charts as the report embeds them, each in a fixed-height box under its
    # title on one page, rendered by Chromium: each box must show a drawn chart, not a blank
    # or broken image.
    assert shutil.which("chromium"), "chromium is missing: run scripts/ensure-system-packages"
    html = built.files.html.read_text(encoding="utf-8")
    box, head = 600, 70
    boxes = []
    for name, title in html_capital.PAYOFF_PNGS:
        assert f"<h3>{title}</h3>" in html
        img = re.search(rf'<img [^>]*title="{re.escape(name)}">', html)
        assert img, name
        tag = img.group(0).replace("<img ", f"<img style='height:{box - head}px' ", 1)
        boxes.append(
            f"<div style='height:{box}px;overflow:hidden'><h3 style='height:{head - 20}px;"
            f"margin:10px 0'>{title}</h3>{tag}</div>"
        )
    page = tmp_path / "payoff.html"
    page.write_text(
        f"<!DOCTYPE html><html><body style='margin:0;background:#fff'>{''.join(boxes)}"
        "</body></html>",
        encoding="utf-8",
    )
    shot = _screenshot(page, tmp_path / "payoff.png", tmp_path / "chromium", box * len(boxes))
    rgb = shot[..., :3]
    for k, (name, _) in enumerate(html_capital.PAYOFF_PNGS):
        chart = rgb[k * box + head : (k + 1) * box]
        inked = np.asarray((chart < 0.9).any(axis=-1))  # not white
        assert inked.mean() > 0.03, (name, inked.mean())
        colours = {tuple(np.round(px, 1)) for px in chart.reshape(-1, 3)[::97]}
        assert len(colours) > 8, (name, len(colours))  # lines, points, text: not one flat fill
