"""The capital view of a comparison: each book's figures under the stated assumptions.

The arithmetic is ``controller.accounting.capital``; this module gathers the assumptions
(defaults below, each overridable on the command line), prices the fleet's capex per
model, and lays the figures out as text and JSON with the assumptions beside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from controller.accounting.capital import (
    CapitalAssumptions,
    CapitalFigures,
    DailySeries,
    HorizonStats,
    capital_figures,
)
from controller.app.replay.compare import Comparison
from controller.app.replay.runner import ReplayError
from controller.domain import FleetSpec

#: Defaults of every assumption, printed beside the figures they produce.
DEFAULT_COVERAGE_RATIO = 1.35
DEFAULT_DEBT_RATE = 0.10
DEFAULT_TENOR_MONTHS = 36
DEFAULT_CFAR_PERCENTILE = 10.0
DEFAULT_CAPEX_USD_PER_TH = 15.0
DEFAULT_ASSET_LIFE_YEARS = 3.0
DEFAULT_DISCOUNT_RATE = 0.15


@dataclass(frozen=True, slots=True)
class CapitalInputs:
    """The capital view's assumptions as the user gave them (or the defaults)."""

    coverage_ratio: float = DEFAULT_COVERAGE_RATIO
    debt_rate: float = DEFAULT_DEBT_RATE
    tenor_months: int = DEFAULT_TENOR_MONTHS
    cfar_percentile: float = DEFAULT_CFAR_PERCENTILE
    #: Capex of a miner of a model not in ``capex_usd_per_miner``, per TH/s of nameplate.
    capex_usd_per_th: float = DEFAULT_CAPEX_USD_PER_TH
    capex_usd_per_miner: Mapping[str, float] = field(default_factory=dict)
    asset_life_years: float = DEFAULT_ASSET_LIFE_YEARS
    discount_rate: float = DEFAULT_DISCOUNT_RATE
    #: Per book, overriding ``discount_rate``.
    discount_rates: Mapping[str, float] = field(default_factory=dict)


class CapitalInputError(ReplayError):
    """An assumption that names a model or a book the comparison does not have."""


@dataclass(frozen=True, slots=True)
class CapexRow:
    """One miner model's capex: count, USD per miner and where that figure came from."""

    model: str
    miners: int
    usd_per_miner: float
    source: str  # "given" or "default N USD/TH x H TH/s"

    @property
    def usd(self) -> float:
        """The model's total capex."""
        return self.miners * self.usd_per_miner


@dataclass(frozen=True, slots=True)
class CapitalView:
    """Every book's capital figures, the capex they rest on and the inputs."""

    inputs: CapitalInputs
    capex: tuple[CapexRow, ...]
    books: tuple[tuple[str, CapitalFigures], ...]

    @property
    def capital_employed_usd(self) -> float:
        """The fleet's capex."""
        return sum(r.usd for r in self.capex)

    def to_json(self) -> dict[str, Any]:
        """The view as plain data: the assumptions, the capex, and per book its figures."""
        i = self.inputs
        return {
            "assumptions": {
                "coverage_ratio": i.coverage_ratio,
                "debt_rate": i.debt_rate,
                "tenor_months": i.tenor_months,
                "cfar_percentile": i.cfar_percentile,
                "asset_life_years": i.asset_life_years,
                "discount_rate_default": i.discount_rate,
                "capital_employed_usd": self.capital_employed_usd,
                "capex": [
                    {
                        "model": r.model,
                        "miners": r.miners,
                        "usd_per_miner": r.usd_per_miner,
                        "source": r.source,
                    }
                    for r in self.capex
                ],
            },
            "books": [{"name": name, **figures_json(f)} for name, f in self.books],
        }


def _stats_json(h: HorizonStats) -> dict[str, Any]:
    return {"periods": h.periods, "mean_usd": h.mean_usd, "std_usd": h.std_usd, "cv": h.cv}


def figures_json(f: CapitalFigures) -> dict[str, Any]:
    """One book's capital figures as plain data."""
    worst = f.worst_month
    return {
        "discount_rate": f.assumptions.discount_rate,
        "net_usd": f.net_usd,
        "hours": f.hours,
        "daily": _stats_json(f.daily),
        "weekly": _stats_json(f.weekly),
        "monthly": _stats_json(f.monthly),
        "months": [{"month": m.label, "net_usd": m.net_usd, "whole": m.whole} for m in f.months],
        "cfar_usd": f.cfar_usd,
        "worst_month": None if worst is None else {"month": worst.label, "net_usd": worst.net_usd},
        "max_drawdown_usd": f.max_drawdown_usd,
        "drawdown_peak_day": f.drawdown_peak_day,
        "drawdown_trough_day": f.drawdown_trough_day,
        "debt_service_usd_per_month": f.debt_service_usd_per_month,
        "debt_capacity_usd": f.debt_capacity_usd,
        "annualised_net_usd": f.annualised_net_usd,
        "depreciation_usd_per_year": f.depreciation_usd_per_year,
        "roce": f.roce,
        "pv_usd": f.pv_usd,
        "pv_mean_month_over_life_usd": f.pv_mean_month_over_life_usd,
    }


def capex_rows(fleet: FleetSpec, inputs: CapitalInputs) -> tuple[CapexRow, ...]:
    """Capex per model: the given USD per miner, else the default per TH/s of nameplate."""
    unknown = sorted(set(inputs.capex_usd_per_miner) - set(fleet.model_names))
    if unknown:
        raise CapitalInputError(
            f"--capex: no miner model {unknown[0]!r} in the fleet "
            f"(models: {', '.join(fleet.model_names)})"
        )
    rows = []
    hashrate = fleet.nominal_hashrate_th
    for m, name in enumerate(fleet.model_names):
        members = fleet.model_index == m
        count = int(members.sum())
        if name in inputs.capex_usd_per_miner:
            rows.append(CapexRow(name, count, inputs.capex_usd_per_miner[name], "given"))
            continue
        th = float(hashrate[members].mean())
        rows.append(
            CapexRow(
                name,
                count,
                inputs.capex_usd_per_th * th,
                f"default {inputs.capex_usd_per_th:g} USD/TH x {th:g} TH/s",
            )
        )
    return tuple(rows)


def assumptions_for(
    inputs: CapitalInputs, capital_employed_usd: float, book: str
) -> CapitalAssumptions:
    """One book's assumptions: the shared ones and its discount rate."""
    return CapitalAssumptions(
        coverage_ratio=inputs.coverage_ratio,
        debt_rate=inputs.debt_rate,
        tenor_months=inputs.tenor_months,
        cfar_percentile=inputs.cfar_percentile,
        capital_employed_usd=capital_employed_usd,
        asset_life_years=inputs.asset_life_years,
        discount_rate=inputs.discount_rates.get(book, inputs.discount_rate),
    )


def check_books(inputs: CapitalInputs, names: Sequence[str]) -> None:
    """Refuse a per-book discount rate for a book that is not compared."""
    unknown = sorted(set(inputs.discount_rates) - set(names))
    if unknown:
        raise CapitalInputError(
            f"--book-discount-rate: no book {unknown[0]!r} (books: {', '.join(names)})"
        )


def view_of_series(
    fleet: FleetSpec, inputs: CapitalInputs, books: Sequence[tuple[str, DailySeries]]
) -> CapitalView:
    """The capital view of some books' daily series."""
    check_books(inputs, [name for name, _ in books])
    capex = capex_rows(fleet, inputs)
    employed = sum(r.usd for r in capex)
    figures = tuple(
        (name, capital_figures(s, assumptions_for(inputs, employed, name))) for name, s in books
    )
    return CapitalView(inputs, capex, figures)


def capital_view(comparison: Comparison, fleet: FleetSpec, inputs: CapitalInputs) -> CapitalView:
    """The capital view of every compared book."""
    return view_of_series(
        fleet, inputs, [(r.strategy.name, r.daily.series) for r in comparison.results]
    )


def with_rates(inputs: CapitalInputs, rates: Mapping[str, float]) -> CapitalInputs:
    """The inputs with more per-book discount rates."""
    return replace(inputs, discount_rates={**inputs.discount_rates, **rates})


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"{x + 0.0:,.0f}"


def _ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def format_capital(view: CapitalView) -> str:
    """The capital table for the terminal, the assumptions first."""
    i = view.inputs
    first = view.books[0][1] if view.books else None
    months = "" if first is None else f"{first.monthly.periods} whole UTC months"
    lines = [
        "",
        "  capital view  (assumptions: every one an input; defaults in docs/economics.md)",
        f"    coverage ratio {i.coverage_ratio:g} on CFaR = the {i.cfar_percentile:g}th "
        f"percentile of monthly net over {months}",
        f"    debt at {i.debt_rate:.2%} a year (monthly instalments) over {i.tenor_months} "
        f"months; capex depreciated over {i.asset_life_years:g} years",
        f"    capital employed {view.capital_employed_usd:,.0f} USD:",
        *(
            f"      {r.model:<20} {r.miners:>6,} x {r.usd_per_miner:>9,.2f} USD ({r.source})"
            for r in view.capex
        ),
        "",
        f"  {'book':<18} {'daily CV':>8} {'weekly CV':>9} {'monthly std':>11} "
        f"{'monthly CV':>10} {'CFaR/month':>10} {'worst month':>19} {'max drawdown':>12} "
        f"{'debt capacity':>13} {'ROCE':>7} {'rate':>6} {'PV window':>12} {'PV life':>12}",
    ]
    for name, f in view.books:
        worst = f.worst_month
        worst_s = "n/a" if worst is None else f"{_money(worst.net_usd)} {worst.label}"
        lines.append(
            f"  {name:<18} {_ratio(f.daily.cv):>8} {_ratio(f.weekly.cv):>9} "
            f"{_money(f.monthly.std_usd):>11} {_ratio(f.monthly.cv):>10} "
            f"{_money(f.cfar_usd):>10} {worst_s:>19} {_money(f.max_drawdown_usd):>12} "
            f"{_money(f.debt_capacity_usd):>13} {_pct(f.roce):>7} "
            f"{f.assumptions.discount_rate:>6.1%} {_money(f.pv_usd):>12} "
            f"{_money(f.pv_mean_month_over_life_usd):>12}"
        )
    lines += [
        "",
        "  debt capacity: CFaR / coverage ratio paid monthly over the tenor, discounted at the "
        "debt rate; ROCE: (annualised net - capex / asset life) / capex;",
        "  PV window: each day's net discounted at the book's rate to the window's start; "
        "PV life: the mean whole month repeated over the asset life at that rate.",
    ]
    return "\n".join(lines)
