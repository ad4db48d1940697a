"""The capital view's assumptions as command-line options (``compare --capital``, ``stress``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from controller.app.cli_support import bounded
from controller.app.replay import capital_view as cv

_fraction = bounded(float, lambda v: 0.0 <= v <= 1.0, "must be a fraction from 0 to 1 (0.1 = 10%)")
_positive = bounded(float, lambda v: 0.0 < v < 1e12, "must be a positive number")


def _percentile(text: str) -> float:
    value = _positive(text)
    if value >= 100.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a percentile between 0 and 100")
    return value


_months = bounded(
    int, lambda v: 1 <= v <= 600, "must be 1 to 600 months", noun="a whole number of months"
)


def _pair(kind: str) -> Callable[[str], tuple[str, float]]:
    def parse_pair(text: str) -> tuple[str, float]:
        name, sep, number = text.rpartition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}=NUMBER")
        try:
            value = float(number)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {number!r} is not a number") from None
        if not 0.0 <= value < 1e12:
            raise argparse.ArgumentTypeError(f"{text!r}: {number!r} must be 0 or more")
        return name, value

    return parse_pair


def add_capital_args(p: argparse.ArgumentParser) -> None:
    """The assumptions, each with its default (docs/economics.md, "Capital")."""
    g = p.add_argument_group("capital view assumptions")
    g.add_argument(
        "--coverage-ratio",
        type=_positive,
        default=cv.DEFAULT_COVERAGE_RATIO,
        help="debt-service coverage ratio a lender sizes on CFaR (default %(default)s)",
    )
    g.add_argument(
        "--debt-rate",
        type=_fraction,
        default=cv.DEFAULT_DEBT_RATE,
        help="annual interest rate, monthly instalments (default %(default)s)",
    )
    g.add_argument(
        "--tenor-months",
        type=_months,
        default=cv.DEFAULT_TENOR_MONTHS,
        help="loan term in months (default %(default)s)",
    )
    g.add_argument(
        "--cfar-percentile",
        type=_percentile,
        default=cv.DEFAULT_CFAR_PERCENTILE,
        help="cash flow at risk: this percentile of whole-month net (default %(default)s)",
    )
    g.add_argument(
        "--capex-usd-per-th",
        type=_positive,
        default=cv.DEFAULT_CAPEX_USD_PER_TH,
        help="capex per TH/s of nameplate for models without --capex (default %(default)s)",
    )
    g.add_argument(
        "--capex",
        type=_pair("MODEL"),
        action="append",
        default=[],
        metavar="MODEL=USD",
        help="capex per miner of one model, e.g. 'Antminer S21=3000' (repeatable)",
    )
    g.add_argument(
        "--asset-life-years",
        type=_positive,
        default=cv.DEFAULT_ASSET_LIFE_YEARS,
        help="straight-line depreciation and the PV-over-life horizon (default %(default)s)",
    )
    g.add_argument(
        "--discount-rate",
        type=_fraction,
        default=cv.DEFAULT_DISCOUNT_RATE,
        help="annual discount rate of every book's PV (default %(default)s)",
    )
    g.add_argument(
        "--book-discount-rate",
        type=_pair("BOOK"),
        action="append",
        default=[],
        metavar="BOOK=RATE",
        help="one book's discount rate, e.g. 'ppa+forward+call=0.10' (repeatable)",
    )


def capital_inputs(args: argparse.Namespace) -> cv.CapitalInputs:
    """The assumptions from parsed options."""
    rates = dict(args.book_discount_rate)
    bad = [(b, r) for b, r in rates.items() if r > 1.0]
    if bad:
        raise cv.CapitalInputError(
            f"--book-discount-rate {bad[0][0]}={bad[0][1]:g}: a rate is a fraction from 0 to 1"
        )
    return cv.CapitalInputs(
        coverage_ratio=args.coverage_ratio,
        debt_rate=args.debt_rate,
        tenor_months=args.tenor_months,
        cfar_percentile=args.cfar_percentile,
        capex_usd_per_th=args.capex_usd_per_th,
        capex_usd_per_miner=dict(args.capex),
        asset_life_years=args.asset_life_years,
        discount_rate=args.discount_rate,
        discount_rates=rates,
    )
