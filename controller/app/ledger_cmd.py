"""``hashspark ledger summary|export --csv|restate``: the ledger for finance (``--central``:
every site's, from the central PostgreSQL ledger ``ledger ship`` feeds; see ``central_cmd``).

Money is printed exactly as booked, in dollars with six decimals (whole micro-dollars), so a
summary and a SQL ``SUM`` over the ledger agree to the unit. Restatements (``ledger restate``,
``restate_cmd``) show in the summary as the original, the corrected and the difference, and as
one line per batch of corrections with its reason.

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

from adapters.ledger.schema import INPUT_COLUMNS
from adapters.ledger.sqlite import LEDGER_FILE, SqliteLedger
from controller.accounting.coverage import coverage
from controller.accounting.money import MONEY_COMPONENTS, to_micro_usd, usd_text
from controller.app import central_cmd, restate_cmd
from controller.app.cli_support import time_arg
from controller.config import DaemonConfig, load_daemon_settings
from controller.domain import iso
from controller.records import COMPONENTS

#: Components a down interval does not book (unknown: what the miners did, unobserved prices).
UNKNOWN_WHEN_DOWN = frozenset(COMPONENTS) - {"power_cost_usd", "call_premium_usd", "net_usd"}
#: Per-instrument flows a down interval books (premiums accrue whether or not prices came).
_KNOWN_WHEN_DOWN = frozenset({"call_premium_usd", "option_premium_usd"})


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``ledger summary``, ``ledger export`` and ``ledger restate``."""
    led = sub.add_parser("ledger", help="read the P&L ledger, book restatements")
    led_sub = led.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    restate_cmd.add_arguments(
        led_sub.add_parser("restate", help="book corrections of settled intervals")
    )
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
    if args.ledger_command == "restate":
        return restate_cmd.run(args)
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
        lines.extend(_amounts(ledger, site, start, end))
    return "\n".join(lines)


def _amounts(ledger: SqliteLedger, site: str, start: float | None, end: float | None) -> list[str]:
    """Each component's total, and each instrument's; with restatements, the original, the
    corrected and the difference, and one line per batch of corrections."""
    t = ledger.totals(site, start, end)
    money = ledger.money_totals(site, start, end)
    flows = ledger.instrument_money_totals(site, start, end)
    book = ledger.restatements
    batches = book.batches(site, start, end)
    energy = [f"  {n:<24} {t[n]:>18,.6f}" for n in COMPONENTS if n not in MONEY_COMPONENTS]
    if not batches:
        return [
            *energy,
            *(f"  {n:<24} {usd_text(money[n]):>18}" for n in MONEY_COMPONENTS),
            *(f"  {i + ' ' + c:<40} {usd_text(v):>18}" for (i, c), v in flows.items()),
        ]
    deltas = book.totals(site, start, end)
    flow_deltas = book.flow_totals(site, start, end)
    lines = [
        *energy,
        f"  {'':<40} {'original':>18} {'corrected':>18} {'difference':>18}",
        *(_three(n, money[n], deltas[n]) for n in MONEY_COMPONENTS),
        *(
            _three(f"{i} {c}", flows.get((i, c), 0), flow_deltas.get((i, c), 0))
            for i, c in dict.fromkeys((*flows, *flow_deltas))
        ),
        f"  corrections: {len(batches)}",
    ]
    lines.extend(
        f"  correction {b.booked_utc}: {b.intervals} intervals {iso(b.first_start)} .. "
        f"{iso(b.last_end)}, net {usd_text(b.net_delta_micro_usd, sign=True)} USD; "
        f"reason: {b.reason}; source: {b.source}"
        for b in batches
    )
    return lines


def _three(name: str, original: int, delta: int) -> str:
    return (
        f"  {name:<40} {usd_text(original):>18} {usd_text(original + delta):>18} "
        f"{usd_text(delta, sign=True):>18}"
    )


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
            *INPUT_COLUMNS,
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
                        "" if name in UNKNOWN_WHEN_DOWN else _cell(name, r.component(name))
                        for name in COMPONENTS
                    ),
                    *(
                        _cell(c, flows.get((i, c), 0.0)) if c in _KNOWN_WHEN_DOWN else ""
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
                *(_cell(name, v) for name, v in zip(COMPONENTS, r.components, strict=True)),
                *(_cell(c, flows.get((i, c), 0.0)) for i, c in inst_cols),
            ]
        )


def _cell(component: str, value: float) -> str | float:
    """An amount as its exact decimal (six places: whole micro-dollars); energy as is."""
    if component in MONEY_COMPONENTS or component.endswith("_usd"):
        return usd_text(to_micro_usd(value), grouping=False)
    return value
