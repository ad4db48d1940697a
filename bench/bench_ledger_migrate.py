"""How long the schema 2 -> 3 migration (money to integer micro-dollars) holds a ledger.

A year of 5-minute intervals (105,120, three instrument flows each) in the version 2 shape,
copied in SQL from the test fixture's first interval, then opened by this hashspark: the
migration rewrites both tables in one transaction at the first open. Prints the figures;
asserts nothing about speed.

    .venv/bin/python bench/bench_ledger_migrate.py
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from adapters.ledger.sqlite import SqliteLedger

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ledger_v2.sql"
N = 365 * 288


def version_2_year(path: Path) -> None:
    """The fixture, its first interval (and flows) repeated every 5 minutes for a year."""
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text())
    first = conn.execute("SELECT MIN(start_s) FROM intervals").fetchone()[0]
    conn.execute("DELETE FROM instrument_flows WHERE start_s <> ?", (first,))
    conn.execute("DELETE FROM intervals WHERE start_s <> ?", (first,))
    cols = [r[1] for r in conn.execute("PRAGMA table_info(intervals)")]
    shifted = ", ".join(f"{c} + 300.0 * n" if c in ("start_s", "end_s") else c for c in cols)
    copies = f"WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < {N - 1})"
    conn.execute(f"{copies} INSERT INTO intervals SELECT {shifted} FROM intervals, k")
    conn.execute(
        f"{copies} INSERT INTO instrument_flows SELECT site_id, start_s + 300.0 * n, "
        "instrument_id, component, usd FROM instrument_flows, k"
    )
    conn.commit()
    conn.close()


def main() -> None:
    """Build the year, migrate it, print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite3"
        version_2_year(path)
        size_mb = path.stat().st_size / 1e6
        began = time.perf_counter()
        ledger = SqliteLedger.open(path, run_id="bench", config_version="v", started_at=0.0)
        migrated_s = time.perf_counter() - began
        began = time.perf_counter()
        totals = ledger.money_totals("hb-south")
        sum_s = time.perf_counter() - began
        ledger.close()
        began = time.perf_counter()
        SqliteLedger.open(path, run_id="bench2", config_version="v", started_at=0.0).close()
        reopen_s = time.perf_counter() - began
        print(f"version 2 ledger: {N:,} intervals, {size_mb:.1f} MB")
        print(f"first open (integrity check and migration to 3): {migrated_s:.2f} s")
        print(f"second open (integrity check only): {reopen_s:.2f} s")
        net = totals["net_usd"]
        print(f"exact totals over the year: {sum_s * 1e3:.0f} ms, net {net:,} micro-USD")


if __name__ == "__main__":
    main()
