"""``hashspark stress SCENARIO``: the compared books in a stressed world, and a seeded
bootstrap of their months."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from adapters.feeds.recorded import HASHPRICE_COLUMN, load_recording
from controller.accounting.stress import Spike, Stress
from controller.app.capital_args import add_capital_args, capital_inputs
from controller.app.cli_support import (
    EXIT_OK,
    bounded,
    time_arg,
    window_args,
    write_json_atomic,
)
from controller.app.replay.capital_view import format_capital
from controller.app.replay.runner import ReplayError, prepare
from controller.app.replay.stress_run import format_stress, run_stress
from controller.config import load_config

MAX_DRAWS = 100_000


_number = bounded(float, lambda v: abs(v) < 1e7, "is out of range")


def _scale(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a factor from 0 to 100")
    return value


def _count(limit: int) -> Callable[[str], int]:
    return bounded(int, lambda v: 1 <= v <= limit, f"must be 1 to {limit:,}", noun="a whole number")


_seed = bounded(int, lambda v: 0 <= v < 2**63, "must be 0 or more", noun="a whole number")


def _spike(text: str) -> Spike:
    """``T/HOURS@PRICE``: the power price forced to PRICE for HOURS from T."""
    when, _, rest = text.partition("/")
    hours, _, price = rest.partition("@")
    if not hours or not price:
        raise argparse.ArgumentTypeError(f"{text!r} is not T/HOURS@PRICE")
    start: datetime = time_arg(when)
    h, p = _number(hours), _number(price)
    if not 0 < h <= 24 * 366:
        raise argparse.ArgumentTypeError(f"{text!r}: {hours!r} hours must be positive")
    end = start + timedelta(hours=h)
    return Spike(start.timestamp(), end.timestamp(), p)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``stress``."""
    p = sub.add_parser(
        "stress",
        help="replay the compared books with stressed prices and bootstrap their months: "
        "a distribution of net and of the capital figures per book",
    )
    p.add_argument("scenario", type=Path)
    window_args(p)
    g = p.add_argument_group("stress (defaults change nothing)")
    g.add_argument("--hashprice-scale", type=_scale, default=1.0, help="multiply hashprice")
    g.add_argument(
        "--hashprice-shift", type=_number, default=0.0, help="add USD/PH/day to hashprice"
    )
    g.add_argument(
        "--fee-scale",
        type=_scale,
        help="scale the transaction fees' part of hashprice (0: subsidy only); needs "
        "--subsidy-hashprice",
    )
    g.add_argument(
        "--subsidy-hashprice",
        type=Path,
        metavar="CSV",
        help="the subsidy-only hashprice recording, e.g. "
        "simulators/recordings/btc_hashprice_daily_2024-05_2025-04.csv",
    )
    g.add_argument("--power-scale", type=_scale, default=1.0, help="multiply the power price")
    g.add_argument("--power-shift", type=_number, default=0.0, help="add USD/MWh to power")
    g.add_argument(
        "--spike",
        type=_spike,
        action="append",
        default=[],
        metavar="T/HOURS@PRICE",
        help="force the power price to PRICE for HOURS from T, e.g. 2024-07-15T20:00Z/3@5000 "
        "(repeatable)",
    )
    b = p.add_argument_group("bootstrap")
    b.add_argument("--draws", type=_count(MAX_DRAWS), default=1000, help="(default %(default)s)")
    b.add_argument(
        "--months", type=_count(120), default=12, help="months per draw (default %(default)s)"
    )
    b.add_argument("--seed", type=_seed, default=1, help="generator seed (default %(default)s)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the run as JSON here")
    add_capital_args(p)


def run(args: argparse.Namespace) -> int:
    """Print the stressed capital view and the bootstrap's distribution per book."""
    if args.fee_scale is not None and args.subsidy_hashprice is None:
        raise ReplayError("--fee-scale needs --subsidy-hashprice CSV (the subsidy-only hashprice)")
    subsidy = None
    if args.subsidy_hashprice is not None:
        subsidy = load_recording(args.subsidy_hashprice, HASHPRICE_COLUMN)
    loaded = load_config(args.scenario)
    inputs = prepare(loaded, site_id=args.site, start=args.start, end=args.end, window=args.window)
    stress = Stress(
        hashprice_scale=args.hashprice_scale,
        hashprice_shift_usd_per_ph_day=args.hashprice_shift,
        fee_scale=args.fee_scale,
        power_scale=args.power_scale,
        power_shift_usd_per_mwh=args.power_shift,
        spikes=tuple(args.spike),
    )
    began = time.perf_counter()
    result = run_stress(
        inputs,
        stress,
        capital_inputs(args),
        subsidy=subsidy,
        draws=args.draws,
        months_per_draw=args.months,
        seed=args.seed,
    )
    print(
        f"hashspark stress: {args.scenario.name} (site {inputs.site.id}, "
        f"{time.perf_counter() - began:.2f} s)"
    )
    print(format_capital(result.view))
    print()
    print(format_stress(result))
    if args.json is not None:
        write_json_atomic(args.json, result.to_json())
        print(f"\n  json        {args.json}")
    return EXIT_OK
