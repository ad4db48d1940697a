"""The capital view of the hedged scenario's books against an independent computation.

The books are replayed over the whole recording (the fee-inclusive hashprice), their daily
series exported as the report exports them, and ``tests/golden/capital_reference.py``
(standard library only, from docs/economics.md) recomputes every figure from those CSVs.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from controller.accounting.capital import CapitalFigures
from controller.app.replay.capital_view import CapitalInputs, CapitalView, capital_view
from controller.app.replay.compare import Comparison, compare
from controller.app.replay.runner import prepare
from controller.app.replay.series_export import csv_bytes, daily_columns
from controller.config import load_config
from tests.golden.capital_reference import capital, read_daily

#: The hedged scenario plus its Bitcoin inputs and a seventh book with a BTC collar; its six
#: built-in books are the hedged scenario's to the cent (tests/test_bitcoin_inputs.py).
HEDGED = Path(__file__).resolve().parents[1] / "deploy/scenarios/ercot-hb-south-hedged-btc.toml"
BOOKS = (
    "spot",
    "ppa",
    "ppa+call",
    "capped-ppa",
    "ppa+forward",
    "ppa+forward+call",
    "hedged+btc-collar",
)

#: Not the defaults, so that a default wired in the wrong place shows.
INPUTS = CapitalInputs(
    coverage_ratio=1.5,
    debt_rate=0.09,
    tenor_months=48,
    cfar_percentile=20.0,
    capex_usd_per_th=12.0,
    capex_usd_per_miner={"Antminer S21": 3_400.0},
    asset_life_years=4.0,
    discount_rate=0.18,
    discount_rates={"ppa+forward+call": 0.10, "ppa+forward": 0.12},
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Comparison, CapitalView, Path]:
    inputs = prepare(load_config(HEDGED))
    comparison = compare(inputs)
    out = tmp_path_factory.mktemp("series")
    for r in comparison.results:
        (out / f"{r.strategy.name}.daily.csv").write_bytes(csv_bytes(daily_columns(r.table)))
    return comparison, capital_view(comparison, inputs.model.fleet, INPUTS), out


def _close(ours: float | None, theirs: float | None) -> None:
    assert (ours is None) == (theirs is None), (ours, theirs)
    if ours is not None and theirs is not None:
        assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-6), (ours, theirs)


def _reference(view: CapitalView, comparison: Comparison, out: Path, book: str) -> dict[str, Any]:
    result = next(r for r in comparison.results if r.strategy.name == book)
    window = result.typed_report.window
    return capital(
        read_daily(out / f"{book}.daily.csv"),
        datetime.fromisoformat(window.start),
        datetime.fromisoformat(window.end),
        coverage_ratio=1.5,
        debt_rate=0.09,
        tenor_months=48,
        cfar_percentile=20.0,
        # 600 S19j Pro at 12 USD/TH x 104 TH/s, 400 S21 at 3,400 USD each.
        capital_employed_usd=600 * 12.0 * 104 + 400 * 3_400.0,
        asset_life_years=4.0,
        discount_rate={"ppa+forward+call": 0.10, "ppa+forward": 0.12}.get(book, 0.18),
    )


def test_the_seven_books_are_compared(run: tuple[Comparison, CapitalView, Path]) -> None:
    # Any further book is checked below like these seven.
    _, view, _ = run
    assert set(BOOKS) <= {name for name, _ in view.books}
    assert view.capital_employed_usd == 600 * 12.0 * 104 + 400 * 3_400.0


def test_capital_figures_match_the_independent_computation(
    run: tuple[Comparison, CapitalView, Path],
) -> None:
    comparison, view, out = run
    for book, ours in view.books:
        _check(ours, _reference(view, comparison, out, book))


def _check(ours: CapitalFigures, ref: dict[str, Any]) -> None:
    for horizon in ("daily", "weekly", "monthly"):
        mine = getattr(ours, horizon)
        assert mine.periods == ref[horizon]["periods"]
        _close(mine.mean_usd, ref[horizon]["mean"])
        _close(mine.std_usd, ref[horizon]["std"])
        _close(mine.cv, ref[horizon]["cv"])
    _close(ours.net_usd, ref["net"])
    _close(ours.cfar_usd, ref["cfar"])
    assert ours.worst_month is not None
    assert ours.worst_month.label == ref["worst_month"][0]
    _close(ours.worst_month.net_usd, ref["worst_month"][1])
    _close(ours.max_drawdown_usd, ref["max_drawdown"])
    _close(ours.debt_capacity_usd, ref["debt_capacity"])
    _close(ours.roce, ref["roce"])
    _close(ours.pv_usd, ref["pv"])
    _close(ours.pv_mean_month_over_life_usd, ref["pv_life"])


def test_monthly_cv_ranks_the_forward_as_the_issue_measured(
    run: tuple[Comparison, CapitalView, Path],
) -> None:
    # The figures docs/replay.md quotes: by month the forward halves the PPA's volatility,
    # which the daily figure hides (its daily std is above the call's).
    comparison, view, _ = run
    rows = {r.strategy.name: r.row() for r in comparison.results}
    assert rows["ppa"]["months_counted"] == 8  # July 2024 .. February 2025
    assert round(rows["ppa"]["monthly_net_cv"], 3) == 0.210
    assert round(rows["ppa+forward"]["monthly_net_cv"], 3) == 0.110
    assert rows["ppa+forward"]["daily_net_std_usd"] > rows["ppa+call"]["daily_net_std_usd"]
    figures = dict(view.books)
    forward, ppa = figures["ppa+forward"].debt_capacity_usd, figures["ppa"].debt_capacity_usd
    assert forward is not None
    assert ppa is not None
    assert forward > ppa


def test_docs_capital_table_is_what_the_defaults_give(
    run: tuple[Comparison, CapitalView, Path],
) -> None:
    # docs/replay.md quotes the seven books' capital view at the default assumptions.
    comparison, _, _ = run
    inputs = prepare(load_config(HEDGED))
    view = dict(capital_view(comparison, inputs.model.fleet, CapitalInputs()).books)
    text = (HEDGED.parents[2] / "docs/replay.md").read_text()
    section = text[text.index("### The capital view") : text.index("### Stress and resampling")]
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \|$", section, re.M)
    assert {name for name, _ in rows} == set(BOOKS)
    for name, cells in rows:
        f = view[name]
        assert f.worst_month is not None
        assert f.roce is not None
        expected = [
            f"{f.monthly.cv:.3f}",
            f"{f.cfar_usd:,.0f}",
            f"{f.worst_month.net_usd:,.0f} ({f.worst_month.label})",
            f"{f.debt_capacity_usd:,.0f}",
            f"{f.roce:.1%}",
            f"{f.pv_usd:,.0f}",
            f"{f.pv_mean_month_over_life_usd:,.0f}",
        ]
        assert [c.strip() for c in cells.split("|")] == expected, name
