"""Central ledger shipping throughput: a site's intervals into a PostgreSQL of its own.

    .venv/bin/python bench/bench_central_ship.py [--intervals N] [--batch N]

Books N intervals in a fresh SQLite ledger, starts a throwaway cluster (initdb + pg_ctl, as
the tests do), ships them once with ``Shipper.ship_once`` (batches of ``--batch``, one
transaction each), then offers all of them again without the watermark (the resend path:
every entry checked by its digest, none stored); then books one restatement of every
interval (one batch, as ``ledger restate`` books it, with a per-instrument difference) and
ships those as corrections. Prints entries per second for each; a year of one site's 15-minute
intervals is 35,040. Not in bench/suite.py: it needs the PostgreSQL server binaries.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.ledger.journal import Journal
from adapters.ledger.shipper import SHIP_STATE_FILE, Shipper
from adapters.ledger.sqlite import SqliteLedger
from controller.accounting.money import MONEY_COMPONENTS
from controller.accounting.restatement import Amounts, Restated
from tests.pg_kit import cluster
from tests.test_central_ledger import site_ledger


def _restate_all(state: Path) -> int:
    """One batch restating every interval of the ledger (net -1 micro-dollar each)."""
    ledger = SqliteLedger.open_for_restatement(state / "ledger.sqlite3")
    try:
        deltas = Amounts(
            dict.fromkeys(MONEY_COMPONENTS, 0) | {"net_usd": -1, "call_premium_usd": -1},
            {("call-1", "call_premium_usd"): -1},
        )
        rows = [Restated(r.site_id, r.start, r.end, 43.0, 50.0, deltas) for r in ledger.records()]
        book = ledger.restatements
        book.book(
            rows,
            reason="bench",
            source="bench",
            booked_at=0.0,
            config_version="v1",
            planned_after=book.last_id(),
        )
        return len(rows)
    finally:
        ledger.close()


def _ship(state: Path, dsn: str, batch: int) -> tuple[int, float]:
    journal = Journal.open(state / "ledger.sqlite3")
    shipper = Shipper(journal, state / SHIP_STATE_FILE, dsn, batch)
    start = time.perf_counter()
    try:
        return shipper.ship_once(), time.perf_counter() - start
    finally:
        shipper.close()
        journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with cluster() as pg, tempfile.TemporaryDirectory() as tmp:
        dsn = pg.create_database("bench")
        state = site_ledger(Path(tmp) / "site", "site-a", args.intervals)
        new, first_s = _ship(state, dsn, args.batch)
        (state / SHIP_STATE_FILE).unlink()
        again, resend_s = _ship(state, dsn, args.batch)
        restated = _restate_all(state)
        corrections, corrections_s = _ship(state, dsn, args.batch)
    assert new == args.intervals
    assert again == 0
    assert corrections == restated == args.intervals
    print(
        f"ship {new:,} intervals, batches of {args.batch}: {first_s:.2f} s, "
        f"{new / first_s:,.0f} intervals/s"
    )
    print(
        f"resend all {args.intervals:,} (none stored): {resend_s:.2f} s, "
        f"{args.intervals / resend_s:,.0f} intervals/s"
    )
    print(
        f"ship {corrections:,} corrections (restatements with a flow each): "
        f"{corrections_s:.2f} s, {corrections / corrections_s:,.0f} corrections/s"
    )


if __name__ == "__main__":
    main()
