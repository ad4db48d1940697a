"""``hashspark compare SCENARIO``: one scenario under several supply and hedge books."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from controller.app.capital_args import add_capital_args, capital_inputs
from controller.app.cli_support import EXIT_OK, require_report_extra, window_args
from controller.app.replay.capital_view import capex_rows, capital_view, format_capital
from controller.app.replay.compare import compare
from controller.app.replay.runner import prepare, replay
from controller.app.replay.summary import format_comparison
from controller.config import load_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``compare``."""
    cmp_ = sub.add_parser(
        "compare", help="replay a scenario under several supply and hedge books side by side"
    )
    cmp_.add_argument("scenario", type=Path)
    window_args(cmp_)
    cmp_.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write report.html (charts embedded), its PNGs, report.json and comparison.json "
        "into DIR",
    )
    cmp_.add_argument(
        "--capital",
        action="store_true",
        help="print the capital view: volatility by horizon, cash flow at risk, debt "
        "capacity, ROCE and present value per book (assumptions below)",
    )
    add_capital_args(cmp_)


def run(args: argparse.Namespace) -> int:
    """Print the strategy table; with ``--report``, write the HTML report beside it."""
    if args.report is not None:
        require_report_extra()
    loaded = load_config(args.scenario)
    inputs = prepare(loaded, site_id=args.site, start=args.start, end=args.end, window=args.window)
    began = time.perf_counter()
    assumptions = capital_inputs(args)
    capex_rows(inputs.model.fleet, assumptions)  # a bad --capex stops before any replay
    comparison = compare(inputs)
    view = capital_view(comparison, inputs.model.fleet, assumptions)
    compare_s = time.perf_counter() - began
    print(format_comparison(comparison, inputs, compare_s))
    if args.capital:
        print(format_capital(view))
    if args.report is not None:
        from controller.app.replay.html_report import write_report  # noqa: PLC0415 (matplotlib: slow)

        began = time.perf_counter()
        result = replay(inputs, engine="fast")
        r = result.typed_report
        meta = {
            "scenario": r.scenario,
            "config_file": r.config_file,
            "config_version": r.config_version,
            "site": r.site,
            "window": r.window.as_dict(),
        }
        print(
            f"  writing the report: charts and {len(comparison.results)} books' interval and "
            "daily series (about 1 s a book over a year)",
            file=sys.stderr,
            flush=True,
        )
        data = {**comparison.to_json(meta), "capital": view.to_json()}
        files = write_report(args.report, inputs, result, comparison, data)
        print(f"\n  report      {files.html}  ({time.perf_counter() - began:.2f} s)")
    return EXIT_OK
