"""``hashspark ledger summary|export --csv``: the ledger for finance (``--central``: every
site's, from the central PostgreSQL ledger ``ledger ship`` feeds; see ``central_cmd``).

The state directory is ``--state-dir``, else the ``daemon.state_dir`` of ``--config``, else
``/var/lib/hashspark``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from contextlib import closing
from pathlib import Path
from typing import TextIO

from adapters.ledger.sqlite import LEDGER_FILE, SqliteLedger
from controller.accounting.coverage import coverage
from controller.app import central_cmd
from controller.app.cli_support import time_arg
from controller.config import DaemonConfig, load_daemon_settings
from controller.domain import iso
from controller.records import COMPONENTS

#: Components a down interval does not book (unknown: what the miners did, unobserved prices).
UNKNOWN_WHEN_DOWN = frozenset(COMPONENTS) - {"power_cost_usd", "call_premium_usd", "net_usd"}
#: Per-instrument flows a down interval books (premiums accrue whether or not prices came).
_KNOWN_WHEN_DOWN = frozenset({"call_premium_usd", "option_premium_usd"})


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``ledger summary`` and ``ledger export``."""
    led = sub.add_parser("ledger", help="read the P&L ledger")
    led_sub = led.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    for name, text in (
        ("summary", "totals per site and instrument"),
        ("export", "every interval as CSV"),
    ):
        p = led_sub.add_parser(name, help=text)
        p.add_argument(
            "--state-dir",
            type=Path,
            help="the daemon's state directory (default: daemon.state_dir of --config, "
            "else /var/lib/hashspark)",
        )
        p.add_argument(
            "--config",
            type=Path,
            metavar="CONFIG",
            help="the daemon's config file: its daemon.state_dir (only [daemon] is read)",
        )
        p.add_argument("--site", help="one site only")
        central_cmd.add_central_flag(p)
        p.add_argument("--from", dest="start", type=time_arg, metavar="T")
        p.add_argument("--to", dest="end", type=time_arg, metavar="T")
        if name == "export":
            p.add_argument(
                "--csv", action="store_true", required=True, help="CSV (the only format)"
            )
            p.add_argument("--out", type=Path, help="write here instead of standard output")
    central_cmd.add_ship_parser(led_sub)


def run(args: argparse.Namespace) -> int:
    """Dispatch the ledger sub-command."""
    if args.ledger_command == "ship":
        return central_cmd.run_ship(args)
    if args.central:
        return central_cmd.run_central(args)
    ledger = SqliteLedger.open_readonly(state_dir(args.state_dir, args.config) / LEDGER_FILE)
    start = args.start.timestamp() if args.start else None
    end = args.end.timestamp() if args.end else None
    with closing(ledger):
        sites = [args.site] if args.site else ledger.sites()
        if args.ledger_command == "summary":
            print(summary(ledger, sites, start, end))
            return 0
        if args.out is None:
            export_csv(ledger, sites, start, end, sys.stdout)
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("w", newline="", encoding="utf-8") as handle:
                export_csv(ledger, sites, start, end, handle)
    return 0


def state_dir(given: Path | None, config: Path | None) -> Path:
    """``--state-dir``, else the config's ``daemon.state_dir``, else the default."""
    if given is not None:
        return given
    return (load_daemon_settings(config) if config is not None else DaemonConfig()).state_dir


def summary(ledger: SqliteLedger, sites: list[str], start: float | None, end: float | None) -> str:
    """Coverage, totals per site and per instrument, as text."""
    if not sites:
        return "the ledger holds no intervals yet"
    lines: list[str] = []
    for site in sites:
        t = ledger.totals(site, start, end)
        cov = coverage(ledger.spans(site, start, end), start, end)
        lines.append(f"site {site}: {t['intervals']:,} intervals, {t['hours']:,.2f} h")
        lines.append(
            f"  coverage {cov.fraction:.2%}: {cov.booked_h:,.4f} h booked of {cov.wall_h:,.4f} h "
            f"wall ({iso(cov.start)} .. {iso(cov.end)}), {cov.down_h:,.4f} h down, "
            f"{len(cov.gaps)} gaps"
        )
        lines.extend(f"  gap {iso(a)} .. {iso(b)} ({b - a:,.1f} s)" for a, b in cov.gaps)
        lines.extend(f"  {name:<24} {t[name]:>16,.2f}" for name in COMPONENTS)
        for (inst, comp), usd in ledger.instrument_totals(site, start, end).items():
            lines.append(f"  {inst + ' ' + comp:<40} {usd:>16,.2f}")
    return "\n".join(lines)


def export_csv(
    ledger: SqliteLedger, sites: list[str], start: float | None, end: float | None, out: TextIO
) -> None:
    """Every interval as a CSV row, instruments as ``<id>.<component>`` columns."""
    records = [r for site in sites for r in ledger.records(site, start, end)]
    inst_cols = sorted({(i, c) for r in records for i, c, _ in r.instruments})
    writer = csv.writer(out)
    writer.writerow(
        [
            "site_id",
            "start_utc",
            "end_utc",
            "price_usd_per_mwh",
            "hashprice_usd_per_ph_day",
            "opportunity_cost_usd_per_mwh",
            "running_mw",
            "running_ph",
            "nominal_mw",
            "miners_running",
            "miners_curtailed",
            "kind",
            "failsafe",
            *COMPONENTS,
            *(f"{i}.{c}" for i, c in inst_cols),
        ]
    )
    for r in records:
        flows = {(i, c): usd for i, c, usd in r.instruments}
        if r.kind == "down":  # what the miners did and the prices are unknown: left empty
            writer.writerow(
                [
                    r.site_id,
                    iso(r.start),
                    iso(r.end),
                    *("",) * 5,  # prices, opportunity cost, load, hashrate
                    r.nominal_mw,
                    "",
                    "",
                    r.kind,
                    "",
                    *(
                        "" if name in UNKNOWN_WHEN_DOWN else r.component(name)
                        for name in COMPONENTS
                    ),
                    *(
                        flows.get((i, c), 0.0) if c in _KNOWN_WHEN_DOWN else ""
                        for i, c in inst_cols
                    ),
                ]
            )
            continue
        writer.writerow(
            [
                r.site_id,
                iso(r.start),
                iso(r.end),
                r.price_usd_per_mwh,
                r.hashprice_usd_per_ph_day,
                "" if r.opportunity_cost_usd_per_mwh is None else r.opportunity_cost_usd_per_mwh,
                r.running_mw,
                r.running_ph,
                r.nominal_mw,
                r.miners_running,
                r.miners_curtailed,
                r.kind,
                r.failsafe or "",
                *r.components,
                *(flows.get(k, 0.0) for k in inst_cols),
            ]
        )
