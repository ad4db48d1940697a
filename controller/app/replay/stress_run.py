"""Stress a comparison's world and resample its months: each book's capital figures as a
distribution.

The books are chosen on the recorded window (the built-in books' break-even terms come
from it) and then replayed, unchanged, on the stressed inputs; the bootstrap resamples the
stressed replay's whole months.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from controller.accounting.resample import FIGURES, BootstrapResult, bootstrap
from controller.accounting.stress import Stress, stress_hashprice, stress_price
from controller.app.replay.capital_view import (
    CapitalInputs,
    CapitalView,
    assumptions_for,
    capex_rows,
    capital_view,
    check_books,
)
from controller.app.replay.compare import Comparison, run_strategy, scenario_strategies
from controller.app.replay.runner import ReplayError, ReplayInputs
from controller.domain import Recording, iso

#: The percentiles of each figure's distribution that the table and the JSON give.
PERCENTILES = (5.0, 50.0, 95.0)


@dataclass(frozen=True, slots=True)
class StressRun:
    """A stressed comparison, its capital view and its bootstrap."""

    stress: Stress
    comparison: Comparison
    base_net_usd: dict[str, float]
    view: CapitalView
    draws: int
    months_per_draw: int
    seed: int
    distribution: tuple[BootstrapResult, ...]

    def to_json(self) -> dict[str, Any]:
        """The run as plain data: the stress, each book's figures and their distribution."""
        s = self.stress
        return {
            "stress": {
                "hashprice_scale": s.hashprice_scale,
                "hashprice_shift_usd_per_ph_day": s.hashprice_shift_usd_per_ph_day,
                "fee_scale": s.fee_scale,
                "power_scale": s.power_scale,
                "power_shift_usd_per_mwh": s.power_shift_usd_per_mwh,
                "spikes": [
                    {
                        "from": iso(x.start),
                        "to": iso(x.end),
                        "price_usd_per_mwh": x.price_usd_per_mwh,
                    }
                    for x in s.spikes
                ],
            },
            "bootstrap": {
                "draws": self.draws,
                "months_per_draw": self.months_per_draw,
                "seed": self.seed,
                "percentiles": list(PERCENTILES),
            },
            "base_net_usd": self.base_net_usd,
            "capital": self.view.to_json(),
            "distribution": [
                {
                    "book": b.book,
                    **{
                        f: {
                            "mean": _finite_mean(b.figures[f]),
                            **{f"p{p:g}": _pct(b.figures[f], p) for p in PERCENTILES},
                        }
                        for f in FIGURES
                    },
                }
                for b in self.distribution
            ],
        }


def _finite_mean(values: np.ndarray) -> float | None:
    ok = values[np.isfinite(values)]
    return float(ok.mean()) if ok.size else None


def _pct(values: np.ndarray, p: float) -> float | None:
    ok = values[np.isfinite(values)]
    return float(np.percentile(ok, p)) if ok.size else None


def stressed_inputs(
    inputs: ReplayInputs, stress: Stress, subsidy: Recording | None
) -> ReplayInputs:
    """The inputs with the stressed price and hashprice; spikes must fall in the window."""
    for spike in stress.spikes:
        if spike.start < inputs.start or spike.end > inputs.end or spike.end <= spike.start:
            raise ReplayError(
                f"--spike {iso(spike.start)}..{iso(spike.end)} is not inside the window "
                f"{iso(inputs.start)}..{iso(inputs.end)}"
            )
    try:
        hashprice = stress_hashprice(inputs.hashprice, stress, subsidy)
    except ValueError as exc:
        raise ReplayError(f"--fee-scale: {exc}") from None
    return replace(inputs, price=stress_price(inputs.price, stress), hashprice=hashprice)


def _say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def run_stress(
    inputs: ReplayInputs,
    stress: Stress,
    capital: CapitalInputs,
    *,
    subsidy: Recording | None = None,
    draws: int,
    months_per_draw: int,
    seed: int,
    progress: Callable[[str], None] | None = _say,
) -> StressRun:
    """Replay every book on the stressed inputs, then bootstrap their whole months."""
    say = progress or (lambda _: None)
    capex_rows(inputs.model.fleet, capital)  # bad input stops before any replay
    stressed = stressed_inputs(inputs, stress, subsidy)
    strategies, builtin = scenario_strategies(inputs)
    check_books(capital, [s.name for s in strategies])
    base = {s.name: run_strategy(inputs, s).typed_report.totals.net_usd for s in strategies}
    results = []
    for n, strategy in enumerate(strategies, 1):
        began = time.perf_counter()
        results.append(run_strategy(stressed, strategy))
        took = time.perf_counter() - began
        say(f"stress: book {n}/{len(strategies)} {strategy.name} ({took:.2f} s)")
    comparison = Comparison(tuple(results), builtin)
    view = capital_view(comparison, inputs.model.fleet, capital)
    employed = view.capital_employed_usd
    books = [
        (r.strategy.name, r.daily.series, assumptions_for(capital, employed, r.strategy.name))
        for r in results
    ]
    try:
        distribution = bootstrap(
            books,
            draws=draws,
            months_per_draw=months_per_draw,
            seed=seed,
            progress=lambda done, total: say(f"bootstrap: {done:,}/{total:,} draws"),
        )
    except ValueError as exc:
        raise ReplayError(f"bootstrap: {exc}") from None
    return StressRun(stress, comparison, base, view, draws, months_per_draw, seed, distribution)


def _m(x: float | None) -> str:
    return "n/a" if x is None else f"{x + 0.0:,.0f}"


def format_stress(run: StressRun) -> str:
    """The stressed books and their distribution for the terminal."""
    lines = [
        f"  bootstrap: {run.draws:,} draws of {run.months_per_draw} whole months (with "
        f"replacement, the same months for every book), seed {run.seed}",
        "",
        f"  {'book':<18} {'net recorded':>13} {'net stressed':>13}   "
        + "  ".join(
            f"{h:>29}"
            for h in ("net per draw p5/p50/p95", "CFaR p5/p50/p95", "debt capacity p5/p50/p95")
        )
        + f"  {'ROCE p5/p50/p95':>23}",
    ]
    by_book = {b.book: b for b in run.distribution}
    for r in run.comparison.results:
        name = r.strategy.name
        f = by_book[name].figures

        def trio(key: str, fig: dict[str, np.ndarray] = f) -> str:
            return "/".join(_m(_pct(fig[key], p)) for p in PERCENTILES)

        roce = "/".join(
            "n/a" if (v := _pct(f["roce"], p)) is None else f"{v:.1%}" for p in PERCENTILES
        )
        lines.append(
            f"  {name:<18} {_m(run.base_net_usd[name]):>13} "
            f"{_m(r.typed_report.totals.net_usd):>13}   {trio('net_usd'):>29}  "
            f"{trio('cfar_usd'):>29}  {trio('debt_capacity_usd'):>29}  {roce:>23}"
        )
    return "\n".join(lines)
