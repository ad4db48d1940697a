"""``hashspark ledger ship`` and ``ledger summary|export --central``: the central ledger.

The shipper is a companion process beside the daemon rather than a task inside it: the
control loop never waits on a remote database, the shipper can be stopped, restarted,
upgraded or run once by hand (a backfill) without touching the miners, and it needs the
state directory and the connection string only, not the sites' secrets.

The connection string comes from the ``[central]`` table of ``--config`` (a secret:
``{ env = ... }`` or ``{ file = ... }``), else from ``HASHSPARK_CENTRAL_DSN``; never from
the command line, where ``ps`` would show it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import os
import signal
import sys
import threading
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from pydantic import SecretStr

from adapters.ledger.journal import Journal
from adapters.ledger.sqlite import LEDGER_FILE, LedgerError
from controller.config import ConfigError, DaemonConfig
from controller.config.central import CENTRAL_DSN_ENV, CentralConfig
from controller.config.load import load_central_settings
from controller.records import COMPONENTS
from controller.runtime import logs

if TYPE_CHECKING:
    from adapters.ledger.central import CentralLedger

EXIT_UNREACHABLE = 1  #: ``ship --once`` could not reach the central ledger: nothing lost


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the local ledger is, where the central one is, and the shipping pace."""

    state_dir: Path
    dsn: str
    pace: CentralConfig | None  # None: from the environment, with the defaults


def add_ship_parser(led_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``ledger ship``."""
    p = led_sub.add_parser("ship", help="copy the ledger to the central PostgreSQL ledger")
    p.add_argument("--config", type=Path, metavar="CONFIG", help="its [daemon] and [central]")
    p.add_argument("--state-dir", type=Path, help="the daemon's state directory")
    p.add_argument("--once", action="store_true", help="ship what there is, then exit")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def add_central_flag(p: argparse.ArgumentParser) -> None:
    """``--central`` on ``ledger summary|export``."""
    p.add_argument(
        "--central",
        action="store_true",
        help=f"read the central ledger ([central] of --config, else ${CENTRAL_DSN_ENV})",
    )


def _central_extra() -> None:
    """Fail as a usage error if the optional ``central`` extra (psycopg) is not installed:
    the rest of ``hashspark`` does without it."""
    try:
        importlib.import_module("psycopg")
    except ImportError as exc:
        raise LedgerError(
            f"the central ledger needs psycopg ({exc}): pip install 'hashspark[central]'"
        ) from None


def settings(config: Path | None, state_dir: Path | None) -> Settings:
    """The state directory and connection string from ``--config`` or the environment."""
    daemon, central = (
        load_central_settings(config) if config is not None else (DaemonConfig(), None)
    )
    if central is not None:
        dsn = central.dsn.get_secret_value()
    else:
        dsn = os.environ.get(CENTRAL_DSN_ENV, "")
        if not dsn:
            where = f"{config} has no [central] table and " if config is not None else ""
            raise ConfigError(
                [
                    f"no central ledger: {where}{CENTRAL_DSN_ENV} is not set (a libpq URI or "
                    "key=value connection string)"
                ]
            )
    _central_extra()
    from adapters.ledger.central import register_dsn  # noqa: PLC0415 (the optional extra)

    register_dsn(dsn)
    return Settings(state_dir or daemon.state_dir, dsn, central)


def run_ship(args: argparse.Namespace) -> int:
    """Ship once, or follow the ledger until SIGTERM/SIGINT."""
    s = settings(args.config, args.state_dir)
    from adapters.ledger.central import CentralUnavailableError  # noqa: PLC0415 (the extra)
    from adapters.ledger.shipper import SHIP_STATE_FILE, Shipper  # noqa: PLC0415 (the extra)

    logs.configure(args.log_level)
    pace = s.pace or CentralConfig.model_construct(dsn=SecretStr(s.dsn))
    with closing(Journal.open(s.state_dir / LEDGER_FILE)) as journal:
        shipper = Shipper(journal, s.state_dir / SHIP_STATE_FILE, s.dsn, pace.batch_size)
        with closing(shipper):
            if args.once:
                try:
                    new = shipper.ship_once()
                except CentralUnavailableError as exc:
                    print(f"hashspark: {exc}: nothing lost, ship again later", file=sys.stderr)
                    return EXIT_UNREACHABLE
                print(f"shipped {new} new entries to {shipper.connect().where}")
                return 0
            # A connection string that cannot work fails here (exit 2); a server away at
            # start is waited for by follow().
            with contextlib.suppress(CentralUnavailableError):
                shipper.connect()
            stop = threading.Event()

            def _stop(signum: int, frame: FrameType | None) -> None:
                stop.set()

            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            shipper.follow(stop, pace.ship_interval_s, pace.retry_cap_s)
    return 0


def run_central(args: argparse.Namespace) -> int:
    """``ledger summary|export --central``."""
    s = settings(args.config, args.state_dir)
    from adapters.ledger.central import CentralLedger  # noqa: PLC0415 (the optional extra)

    with closing(CentralLedger.connect(s.dsn)) as central:
        if args.ledger_command == "summary":
            print(summary(central, args.site, args.start, args.end))
            return 0
        if args.out is None:
            export_csv(central, args.site, args.start, args.end, sys.stdout)
            return 0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="", encoding="utf-8") as handle:
            export_csv(central, args.site, args.start, args.end, handle)
    return 0


def _money(value: Decimal) -> str:
    """Exactly as stored: six decimals (the site ledgers' whole micro-dollars), grouped."""
    return f"{value:>18,.6f}"


def summary(
    central: CentralLedger, site: str | None, start: datetime | None, end: datetime | None
) -> str:
    """Per site, then over all: each component as booked, its corrections, as corrected; per
    site each instrument's likewise and one line per batch of corrections with its reason."""
    sites = [site] if site else central.sites()
    if not sites:
        return f"the central ledger ({central.where}) holds no intervals yet"
    lines = [f"central ledger {central.where}"]
    for sid in [*sites, None] if len(sites) > 1 else sites:
        t = central.totals(sid, start, end)
        c = central.correction_totals(sid, start, end)
        name = f"site {sid}" if sid else "all sites"
        lines.append(
            f"{name}: {t['intervals']:,} intervals, {t['hours']:,.2f} h, "
            f"{c['corrections']:,} corrections"
        )
        lines.append(f"  {'':<40} {'original':>18} {'corrections':>18} {'corrected':>18}")
        lines.extend(_three(n, t[n], c[n]) for n in COMPONENTS)
        if sid is None:
            continue
        flows = central.instrument_totals(sid, start, end)
        deltas = central.correction_flow_totals(sid, start, end)
        lines.extend(
            _three(
                f"{i} {comp}", flows.get((i, comp), Decimal(0)), deltas.get((i, comp), Decimal(0))
            )
            for i, comp in dict.fromkeys((*flows, *deltas))
        )
        lines.extend(
            f"  correction {b.correction_id} booked {b.booked_utc:%Y-%m-%dT%H:%M:%SZ}: "
            f"{b.intervals} intervals {b.first_start:%Y-%m-%dT%H:%M:%SZ} .. "
            f"{b.last_end:%Y-%m-%dT%H:%M:%SZ}, net {b.net_usd:+,.6f} {b.currency}; "
            f"reason: {b.reason}; source: {b.source}"
            for b in central.corrections(sid, start, end)
        )
    return "\n".join(lines)


def _three(name: str, original: Decimal, correction: Decimal) -> str:
    return f"  {name:<40} {_money(original)} {_money(correction)} {_money(original + correction)}"


def export_csv(
    central: CentralLedger,
    site: str | None,
    start: datetime | None,
    end: datetime | None,
    out: TextIO,
) -> None:
    """Every interval, then each correction as a row of its own (``kind`` = correction, the
    differences in the component columns): a column's sum is the corrected total."""
    writer = csv.writer(out)
    writer.writerow(
        [
            "site_id",
            "start_utc",
            "end_utc",
            "kind",
            "correction_id",
            "reason",
            "currency",
            "price_usd_per_mwh",
            "hashprice_usd_per_ph_day",
            "running_mw",
            *COMPONENTS,
        ]
    )
    for row in central.rows(site, start, end):
        a, b = row[1], row[2]
        writer.writerow(
            [
                row[0],
                f"{a:%Y-%m-%dT%H:%M:%SZ}",
                f"{b:%Y-%m-%dT%H:%M:%SZ}",
                *("" if v is None else v for v in row[3:]),
            ]
        )
