"""``hashspark markets A.toml B.toml ...``: one fleet and book replayed over several markets."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from controller.app.cli_support import EXIT_OK, require_report_extra, time_arg
from controller.app.replay.markets import compare_markets
from controller.app.replay.markets_report import format_markets
from controller.config import load_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``markets``."""
    p = sub.add_parser(
        "markets",
        help="replay one fleet and book over several markets' prices and compare them",
        description="The first scenario gives the fleet, the book and the policy; every "
        "scenario gives its market (price recording, currency and rate, market kind). All "
        "replay on the fast path over their common window (docs/replay.md).",
    )
    p.add_argument("scenarios", type=Path, nargs="+", metavar="SCENARIO")
    p.add_argument("--from", dest="start", type=time_arg, help="narrow the common window")
    p.add_argument("--to", dest="end", type=time_arg, help="narrow the common window")
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write markets.html (each market's charts side by side), its PNGs and "
        "markets.json into DIR",
    )


def run(args: argparse.Namespace) -> int:
    """Print the per-market table; with ``--report``, write the HTML page."""
    if args.report is not None:
        require_report_extra()
    loaded = [load_config(path) for path in args.scenarios]
    began = time.perf_counter()
    comparison = compare_markets(loaded, args.start, args.end)
    print(format_markets(comparison, time.perf_counter() - began))
    if args.report is not None:
        from controller.app.replay.markets_report import write  # noqa: PLC0415

        began = time.perf_counter()
        files = write(args.report, comparison)
        print(f"\n  report      {files.html}  ({time.perf_counter() - began:.2f} s)")
    return EXIT_OK
