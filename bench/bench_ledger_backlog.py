"""Benchmark: what a ledger backlog costs (a full disk, then space again).

Prints the memory that ``daemon.ledger_max_unwritten`` held intervals take (each with four
models and two instrument flows, as the accumulator settles them), and the time to write them
into a SQLite ledger once space returns (``synchronous=full``: one fsync each), with the
number of cycles the site loop spreads that over (``LEDGER_CATCH_UP_S`` of writes a cycle).
Then what the integrity check at open (``PRAGMA quick_check``) costs on a year of 5-minute
intervals.

    .venv/bin/python bench/bench_ledger_backlog.py [--intervals N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import tempfile
import time
import tracemalloc
from pathlib import Path

from adapters.ledger.sqlite import LEDGER_FILE, SqliteLedger
from controller.records import COMPONENTS, IntervalRecord
from controller.runtime.site_loop import DEFAULT_MAX_UNWRITTEN, LEDGER_CATCH_UP_S

T0 = 1_717_218_000.0


def record(i: int) -> IntervalRecord:
    """A settled 5-minute interval like the loop's: four models, two instrument flows."""
    return IntervalRecord(
        site_id="west-1",
        start=T0 + 300.0 * i,
        end=T0 + 300.0 * (i + 1),
        price_usd_per_mwh=20.0 + i % 97,
        price_source="mqtt:hashspark/west-1/price",
        hashprice_usd_per_ph_day=50.0,
        hashprice_source="chain:mempool.space",
        running_mw=10.0 + (i % 7) * 0.1,
        running_ph=400.0,
        nominal_mw=12.0,
        model_running_mw=(2.5, 2.5, 2.5, 2.5 + (i % 7) * 0.1),
        model_running_ph=(100.0, 100.0, 100.0, 100.0),
        failsafe=None,
        components=tuple(float(i % 13) + k for k in range(len(COMPONENTS))),
        instruments=(
            ("call-200", "call_premium_usd", 0.25),
            ("fwd-1", "forward_settlement_usd", 1.0),
        ),
        opportunity_cost_usd_per_mwh=20.0 + i % 97,
        miners_running=3000,
        miners_curtailed=600,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=int, default=DEFAULT_MAX_UNWRITTEN)
    parser.add_argument("--dir", type=Path, default=None, help="where the ledger goes (a disk)")
    args = parser.parse_args()
    n = args.intervals

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    held = [record(i) for i in range(n)]
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(f"{n:,} held intervals: {used / 1e6:.1f} MB ({used / n:.0f} B each)")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        ledger = SqliteLedger.open(
            Path(tmp) / LEDGER_FILE, run_id="bench", config_version="v", started_at=T0
        )
        began = time.perf_counter()
        for r in held:
            ledger.append(r)
        took = time.perf_counter() - began
        ledger.close()
    per = took / n
    cycles = math.ceil(took / LEDGER_CATCH_UP_S)
    print(
        f"written back in {took:.2f} s ({per * 1e3:.2f} ms each, synchronous=full): "
        f"{cycles:,} cycles at {LEDGER_CATCH_UP_S} s of writes each, "
        f"{cycles * 15 / 60:.0f} min at the default cycle_s of 15 s"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / LEDGER_FILE
        rows = year_ledger(path)
        began = time.perf_counter()
        SqliteLedger.open(path, run_id="bench2", config_version="v", started_at=T0).close()
        took = time.perf_counter() - began
        size = path.stat().st_size / 1e6
    print(f"open with PRAGMA quick_check, {rows:,} intervals ({size:.0f} MB): {took:.2f} s")


def year_ledger(path: Path) -> int:
    """A ledger of a year of 5-minute intervals, copied in SQL from one appended row."""
    ledger = SqliteLedger.open(path, run_id="bench", config_version="v", started_at=T0)
    ledger.append(record(0))
    ledger.close()
    n = 365 * 288
    conn = sqlite3.connect(path)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(intervals)")]
    shifted = ", ".join(f"{c} + 300.0 * n" if c in ("start_s", "end_s") else c for c in cols)
    copies = f"WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < {n - 1})"
    conn.execute(
        f"{copies} INSERT INTO intervals ({', '.join(cols)}) SELECT {shifted} FROM intervals, k"
    )
    conn.execute(
        f"{copies} INSERT INTO instrument_flows SELECT site_id, start_s + 300.0 * n, "
        "instrument_id, component, micro_usd FROM instrument_flows, k"
    )
    conn.commit()
    conn.close()
    return n


if __name__ == "__main__":
    main()
