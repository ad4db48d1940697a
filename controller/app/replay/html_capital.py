"""The HTML report's payoff and capital sections (``compare --report``)."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

from matplotlib.figure import Figure

from controller.app.replay import payoff_charts
from controller.app.replay.compare import Comparison
from controller.domain import FleetSpec

PAYOFF_PNGS = (
    ("payoff-load.png", payoff_charts.TITLE_LOAD),
    ("payoff-components.png", payoff_charts.TITLE_COMPONENTS),
    ("payoff-call.png", payoff_charts.TITLE_CALL),
)


def payoff_figures(
    comparison: Comparison, fleet: FleetSpec, pool_fee: float
) -> list[tuple[str, str, Figure]]:
    """The three payoff charts (file name, title, figure), or none without both books."""
    books = payoff_charts.payoff_books(comparison)
    if books is None:
        return []
    builders = (
        payoff_charts.load_vs_price,
        payoff_charts.components_vs_price,
        payoff_charts.fixed_vs_call,
    )
    return [
        (name, title, build(books, fleet, pool_fee))
        for (name, title), build in zip(PAYOFF_PNGS, builders, strict=True)
    ]


def payoff_section(images: dict[str, str]) -> str:
    """The payoff charts with what they show, or a note saying why they are absent."""
    if not all(name in images for name, _ in PAYOFF_PNGS):
        return (
            "<h2>Payoff against spot price</h2><p class=note>Not drawn: the comparison has no "
            "book with a PPA resold at spot and no hedge, or none with one short call.</p>"
        )
    parts = [
        "<h2>Payoff against spot price</h2>",
        '<p class="note">Each point is one replayed interval at its spot price (and its own '
        "hashprice); each line is the contracts' payoff function at the window's mean "
        "hashprice. A fixed-price site resells its power at spot, so it curtails a model when "
        "spot rises above that model's energy hashprice; a short call hands the resale above "
        "its strike to the call's buyer for the premium.</p>",
    ]
    for name, title in PAYOFF_PNGS:
        parts += [f"<h3>{escape(title)}</h3>", images[name]]
    return "\n".join(parts)


def _n(x: Any, fmt: str) -> str:
    return "n/a" if x is None else format(float(x) + 0.0, fmt)


def _cell(value: Any, fmt: str) -> str:
    return _n(value, fmt) if fmt else escape(str(value))


def capital_section(capital: dict[str, Any] | None) -> str:
    """The capital table and its assumptions (``comparison.json``'s ``capital``)."""
    if capital is None:
        return ""
    a, books = capital["assumptions"], capital["books"]
    assumptions = [
        ("coverage ratio on CFaR", _n(a["coverage_ratio"], "g")),
        ("CFaR percentile of whole-month net", _n(a["cfar_percentile"], "g")),
        ("debt rate (annual, monthly instalments)", _n(a["debt_rate"], ".2%")),
        ("tenor months", str(a["tenor_months"])),
        ("asset life years (depreciation, PV over life)", _n(a["asset_life_years"], "g")),
        ("discount rate (default)", _n(a["discount_rate_default"], ".2%")),
        ("capital employed USD", _n(a["capital_employed_usd"], ",.0f")),
    ] + [
        (
            f"capex {c['model']} ({c['miners']:,} miners)",
            f"{_n(c['usd_per_miner'], ',.2f')} USD each ({escape(c['source'])})",
        )
        for c in a["capex"]
    ]
    rows: list[tuple[str, str]] = [
        ("daily CV", ".3f"),
        ("weekly CV", ".3f"),
        ("monthly std USD", ",.0f"),
        ("monthly CV", ".3f"),
        ("CFaR USD per month", ",.0f"),
        ("worst month USD", ",.0f"),
        ("worst month", ""),
        ("max drawdown USD", ",.0f"),
        ("debt capacity USD", ",.0f"),
        ("annualised net USD", ",.0f"),
        ("ROCE", ".1%"),
        ("discount rate", ".1%"),
        ("PV of the window USD", ",.0f"),
        ("PV of the mean month over the life USD", ",.0f"),
    ]
    values: dict[str, Callable[[dict[str, Any]], Any]] = {
        "daily CV": lambda b: b["daily"]["cv"],
        "weekly CV": lambda b: b["weekly"]["cv"],
        "monthly std USD": lambda b: b["monthly"]["std_usd"],
        "monthly CV": lambda b: b["monthly"]["cv"],
        "CFaR USD per month": lambda b: b["cfar_usd"],
        "worst month USD": lambda b: (b["worst_month"] or {}).get("net_usd"),
        "worst month": lambda b: (b["worst_month"] or {}).get("month", "n/a"),
        "max drawdown USD": lambda b: b["max_drawdown_usd"],
        "debt capacity USD": lambda b: b["debt_capacity_usd"],
        "annualised net USD": lambda b: b["annualised_net_usd"],
        "ROCE": lambda b: b["roce"],
        "discount rate": lambda b: b["discount_rate"],
        "PV of the window USD": lambda b: b["pv_usd"],
        "PV of the mean month over the life USD": lambda b: b["pv_mean_month_over_life_usd"],
    }
    head = "<tr><th></th>" + "".join(f"<th>{escape(b['name'])}</th>" for b in books) + "</tr>"
    body = "".join(
        f"<tr><th>{escape(label)}</th>"
        + "".join(f"<td class=n>{_cell(values[label](b), fmt)}</td>" for b in books)
        + "</tr>"
        for label, fmt in rows
    )
    a_body = "".join(f"<tr><th>{escape(k)}</th><td class=n>{v}</td></tr>" for k, v in assumptions)
    return (
        "<h2>Capital view</h2>"
        '<p class="note">Every figure is computed from the books\' daily net cash flow under '
        "the assumptions below, each an input with a default (docs/economics.md, "
        '"Capital"). Volatility counts whole UTC days, ISO weeks and calendar months; cash '
        "flow at risk (CFaR) is the given percentile of whole-month net; debt capacity is the "
        "principal that CFaR over the coverage ratio repays monthly over the tenor.</p>"
        f"<table>{a_body}</table><table>{head}{body}</table>"
    )
