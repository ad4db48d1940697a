"""``hashspark ledger restate CORRECTIONS --config CONFIG --reason TEXT``: book corrections.

Reads a corrections file (``controller.app.corrections``), finds the site's intervals each row
corrects, re-settles each with the core's ``settle`` under the config's terms
(``controller.accounting.restatement``) and books the differences as one append-only batch
of restatements, with the reason, the source and when. All or nothing: any problem (a row
whose span holds no interval of the ledger, another currency, an interval the config's terms
do not reproduce) refuses the whole file, one line per problem, exit 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from bisect import bisect_left
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from adapters.ledger.restatements import Restatements, Standing
from adapters.ledger.sqlite import LEDGER_FILE, SqliteLedger
from controller.accounting.money import MONEY_COMPONENTS, usd_text
from controller.accounting.restatement import Amounts, NotReproduced, Restated, restate
from controller.app.assemble import site_model
from controller.app.cli_support import EXIT_USAGE, time_arg
from controller.app.corrections import CorrectionRow, read_corrections
from controller.config import ConfigError, SiteConfig, load_config
from controller.domain import iso
from controller.records import IntervalRecord
from controller.site_model import SiteModel

#: At most this many problems are printed (then how many more there were).
MAX_PROBLEMS = 50


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``ledger restate`` arguments."""
    p.add_argument("corrections", type=Path, metavar="CORRECTIONS", help="the corrections CSV")
    p.add_argument(
        "--config",
        type=Path,
        required=True,
        metavar="CONFIG",
        help="the config that settled the intervals: its site's terms settle the corrections",
    )
    p.add_argument("--state-dir", type=Path, help="default: daemon.state_dir of --config")
    p.add_argument("--site", help="the site corrected (default: the config's only site)")
    p.add_argument("--reason", required=True, help="why the intervals are restated")
    p.add_argument("--source", help="where the corrections come from (default: the file)")
    p.add_argument("--from", dest="start", type=time_arg, metavar="T", help="rows from T")
    p.add_argument("--to", dest="end", type=time_arg, metavar="T", help="rows before T")
    p.add_argument("--dry-run", action="store_true", help="show the corrections, book nothing")


@dataclass(slots=True)
class _Plan:
    corrections: list[Restated]
    unchanged: int  # intervals already at the file's inputs
    down: int  # down intervals in the rows' spans: no price settled them, left alone
    before: dict[str, int]  # the corrected intervals' money as they stand, micro-dollars
    problems: list[str]


def run(args: argparse.Namespace) -> int:
    """Read, check, settle and book the corrections (or print every problem, exit 2)."""
    for flag, value in (("--reason", args.reason), ("--source", args.source)):
        if value is not None and not value.strip():
            raise ConfigError([f"{flag} is empty: say why, and from what, the books change"])
    loaded = load_config(args.config)
    site = _site(loaded.config.sites, args.site, args.config)
    state = args.state_dir if args.state_dir is not None else loaded.config.daemon.state_dir
    ledger = SqliteLedger.open_for_restatement(state / LEDGER_FILE)
    with closing(ledger):
        book = ledger.restatements
        planned_after = book.last_id()
        start = args.start.timestamp() if args.start else None
        end = args.end.timestamp() if args.end else None
        corrections = read_corrections(
            args.corrections, currency=book.currency(), start=start, end=end
        )
        plan = _plan(ledger, book, site, corrections.rows, args.corrections)
        problems = [*corrections.problems, *plan.problems]
        if not corrections.rows and not problems:
            problems.append(f"{args.corrections.name}: no row in the range given")
        if problems:
            for line in problems[:MAX_PROBLEMS]:
                print(f"hashspark: error: {line}", file=sys.stderr)
            if len(problems) > MAX_PROBLEMS:
                print(
                    f"hashspark: error: ... and {len(problems) - MAX_PROBLEMS} more problems",
                    file=sys.stderr,
                )
            print("hashspark: nothing was booked", file=sys.stderr)
            return EXIT_USAGE
        source = args.source or f"{args.corrections.name} (sha256 {corrections.digest})"
        print(_report(site.site_id, plan, args.reason, source))
        if not plan.corrections:
            print("nothing to restate: every interval already stands at these inputs")
            return 0
        if args.dry_run:
            print("dry run: nothing booked")
            return 0
        batch = book.book(
            plan.corrections,
            reason=args.reason,
            source=source,
            booked_at=time.time(),
            config_version=loaded.version,
            planned_after=planned_after,
        )
        print(f"booked as restatement batch {batch}")
    return 0


def _site(sites: Sequence[SiteConfig], wanted: str | None, path: Path) -> SiteModel:
    """The site corrected: ``--site``, or the config's only one."""
    ids = ", ".join(s.id for s in sites)
    if wanted is None and len(sites) == 1:
        return site_model(sites[0])
    if wanted is None:
        raise ConfigError([f"{path}: several sites ({ids}): say which with --site"])
    for s in sites:
        if s.id == wanted:
            return site_model(s)
    raise ConfigError([f"{path}: no site {wanted!r} (sites: {ids})"])


def _plan(
    ledger: SqliteLedger,
    book: Restatements,
    site: SiteModel,
    rows: tuple[CorrectionRow, ...],
    path: Path,
) -> _Plan:
    """The correction of every interval the rows cover, or the problems."""
    plan = _Plan([], 0, 0, dict.fromkeys(MONEY_COMPONENTS, 0), [])
    if not rows:
        return plan
    records = list(ledger.records(site.site_id, rows[0].start, rows[-1].end))
    starts = [r.start for r in records]  # in time order
    standing = book.standing(site.site_id, starts)
    for row in rows:
        covered = records[bisect_left(starts, row.start) : bisect_left(starts, row.end)]
        if not covered:
            plan.problems.append(
                f"{row.where(path)}: no interval of site {site.site_id} starts in "
                f"{iso(row.start)} .. {iso(row.end)}: not in the ledger"
            )
        for record in covered:
            if record.kind == "down":  # no price settled it: nothing to restate
                plan.down += 1
                continue
            result = _one(record, row, site, standing.get(record.start))
            if isinstance(result, str):
                plan.problems.append(f"{row.where(path)}: interval {iso(record.start)}: {result}")
            elif result is None:
                plan.unchanged += 1
            else:
                plan.corrections.append(result)
                now = _now(record, standing.get(record.start))
                for c in MONEY_COMPONENTS:
                    plan.before[c] += now.components[c]
    return plan


def _now(record: IntervalRecord, standing: Standing | None) -> Amounts:
    booked = Amounts.of(record)
    return booked if standing is None else booked.plus(standing.deltas)


def _one(
    record: IntervalRecord, row: CorrectionRow, site: SiteModel, standing: Standing | None
) -> Restated | str | None:
    """The interval's correction; None when it already stands at these inputs; or why not."""
    price = record.price_usd_per_mwh
    hashprice = record.hashprice_usd_per_ph_day
    if standing is not None:
        price = standing.price_usd_per_mwh if standing.price_usd_per_mwh is not None else price
        if standing.hashprice_usd_per_ph_day is not None:
            hashprice = standing.hashprice_usd_per_ph_day
    new_price = price if row.price_usd_per_mwh is None else row.price_usd_per_mwh
    new_hashprice = (
        hashprice if row.hashprice_usd_per_ph_day is None else row.hashprice_usd_per_ph_day
    )
    if (new_price, new_hashprice) == (price, hashprice):
        return None
    result = restate(record, site, _now(record, standing), price=new_price, hashprice=new_hashprice)
    if isinstance(result, NotReproduced):
        return f"{result.reason}: not restated (was it settled under other terms?)"
    return result


def _report(site_id: str, plan: _Plan, reason: str, source: str) -> str:
    """What is (or would be) booked: the intervals and each money component's change."""
    if not plan.corrections:
        return (
            f"site {site_id}: {plan.unchanged} intervals already at these inputs, "
            f"{plan.down} down intervals left alone"
        )
    first = min(r.start for r in plan.corrections)
    last = max(r.end for r in plan.corrections)
    lines = [
        f"site {site_id}: {len(plan.corrections)} intervals restated"
        f" ({plan.unchanged} unchanged, {plan.down} down left alone), "
        f"{iso(first)} .. {iso(last)}",
        f"  reason: {reason}",
        f"  source: {source}",
        f"  {'':<24} {'before':>18} {'corrected':>18} {'difference':>18}",
    ]
    for c in MONEY_COMPONENTS:
        delta = sum(r.deltas.components[c] for r in plan.corrections)
        lines.append(
            f"  {c:<24} {usd_text(plan.before[c]):>18} {usd_text(plan.before[c] + delta):>18} "
            f"{usd_text(delta, sign=True):>18}"
        )
    return "\n".join(lines)
