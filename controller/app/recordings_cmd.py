"""``hashspark recordings import``: market exports into canonical price recordings.

See docs/markets.md. Everything the user can fix (an unknown ISO, location or market, a
currency that contradicts the file, two prices for one interval) is one line and exit 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from adapters.recordings.importer import ImportRequest, run_import
from adapters.recordings.meta import MARKET_KINDS, MetaError
from adapters.recordings.sources import Selection, SourceError
from controller.app.cli_support import EXIT_OK, EXIT_USAGE

_PROGRESS_FROM_BYTES = 1_000_000  # smaller files are read before anyone would wait
_UNITS = {"s": 1, "min": 60, "m": 60, "h": 3600}


def _interval(text: str) -> int:
    """``300``, ``300s``, ``5min``, ``1h`` -> seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*(s|min|m|h)?\s*", text)
    if m is None or int(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an interval (e.g. 300, 5min, 1h)")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``recordings import``."""
    rec = sub.add_parser("recordings", help="import market price exports into recordings")
    actions = rec.add_subparsers(dest="recordings_command", required=True, metavar="ACTION")
    imp = actions.add_parser(
        "import",
        help="a gridstatus (CSV/Parquet) or EIA export into a canonical price recording",
        description="Read one location's prices from a gridstatus-shaped CSV or Parquet "
        "export, a wide 'timestamp,<location>...' file or an EIA wholesale-market download, "
        "and write a canonical recording (UTC interval starts) with its .meta.json and "
        ".SOURCE.txt. Gaps and repeated intervals are reported, never filled.",
    )
    imp.add_argument("source", type=Path, help="the export (.csv, .csv.gz or .parquet)")
    imp.add_argument(
        "--out", type=Path, required=True, help="the recording to write: NAME.csv or NAME.csv.gz"
    )
    imp.add_argument("--location", help="location (gridstatus Location, or the column name)")
    imp.add_argument("--iso", help="ISO (CAISO, ERCOT, ISONE, MISO, NYISO, PJM, SPP) or SDAC")
    imp.add_argument(
        "--market",
        help="gridstatus Market (REAL_TIME_5_MIN, DAY_AHEAD_HOURLY) "
        f"or a kind ({', '.join(MARKET_KINDS)})",
    )
    imp.add_argument(
        "--column", help="price column (default LMP, else SPP; or Energy, Congestion, Loss)"
    )
    imp.add_argument("--timezone", help="zone of naive local times (e.g. America/Chicago)")
    imp.add_argument("--currency", help="the prices' currency (checked against the file)")
    imp.add_argument("--interval", type=_interval, help="interval length (checked)")
    imp.add_argument(
        "--on-repeat",
        choices=("error", "first", "last"),
        default="error",
        help="an interval with two different prices: stop (default) or keep one",
    )
    imp.add_argument(
        "--source-note",
        type=Path,
        help="the export's SOURCE note (default: NAME.SOURCE.txt beside it)",
    )
    imp.add_argument("--quiet", action="store_true", help="no progress on long files")


def _progress(done: int, total: int) -> None:
    print(f"  read {done / total:4.0%} of the file ({done:,} bytes)", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Import and print what was found; exit 2 with one line on anything to fix."""
    market = None
    if args.market is not None and args.market.lower().replace("_", "-") in MARKET_KINDS:
        market = args.market.lower().replace("_", "-")
    req = ImportRequest(
        source=args.source,
        out=args.out,
        selection=Selection(
            location=args.location,
            iso=args.iso,
            market=args.market,
            column=args.column,
            timezone=args.timezone,
        ),
        currency=args.currency,
        market=market,
        interval_s=args.interval,
        on_repeat=args.on_repeat,
        source_note=args.source_note,
    )
    try:
        big = args.source.is_file() and args.source.stat().st_size >= _PROGRESS_FROM_BYTES
        report = run_import(req, None if args.quiet or not big else _progress)
    except (SourceError, MetaError) as exc:
        print(f"hashspark: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(report.lines()))
    return EXIT_OK
