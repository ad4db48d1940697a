"""The SQLite ledger: round trip, refusal of double counting, read-only access, CLI."""

from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.ledger.sqlite import LedgerError, SqliteLedger
from controller.app.ledger_cmd import export_csv
from controller.records import COMPONENTS, IntervalRecord
from tests.scenario_kit import T0


def rec(start: float, end: float, net: float = 1.0, site: str = "s1") -> IntervalRecord:
    comps = (*tuple(float(i) for i in range(len(COMPONENTS) - 1)), net)
    return IntervalRecord(
        site_id=site,
        start=start,
        end=end,
        price_usd_per_mwh=42.0,
        price_source="p.csv",
        hashprice_usd_per_ph_day=50.0,
        hashprice_source="h.csv",
        running_mw=1.5,
        running_ph=60.0,
        nominal_mw=2.0,
        model_running_mw=(1.0, 0.5),
        model_running_ph=(40.0, 20.0),
        failsafe=None,
        components=comps,
        instruments=(("call-1", "call_premium_usd", 0.25), ("fwd", "forward_settlement_usd", -3.0)),
        opportunity_cost_usd_per_mwh=42.0,
        miners_running=3,
        miners_curtailed=1,
    )


def open_ledger(tmp_path: Path, run: str = "run1") -> SqliteLedger:
    return SqliteLedger.open(tmp_path / "ledger.sqlite3", run_id=run, config_version="abc")


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    records = [rec(T0, T0 + 900), rec(T0 + 900, T0 + 1800, net=-2.5)]
    for r in records:
        ledger.append(r)
    assert list(ledger.records()) == records
    assert ledger.last_end("s1") == T0 + 1800
    assert ledger.last_end("other") is None
    ledger.close()


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    open_ledger(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_an_interval_is_never_counted_twice(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    ledger.append(rec(T0, T0 + 900))
    with pytest.raises(LedgerError, match="count twice"):
        ledger.append(rec(T0, T0 + 900))
    with pytest.raises(LedgerError, match="overlaps"):
        ledger.append(rec(T0 + 600, T0 + 1200))
    ledger.close()
    # A new run (a restart) sees the same end and refuses the same way.
    again = open_ledger(tmp_path, run="run2")
    with pytest.raises(LedgerError):
        again.append(rec(T0, T0 + 900))
    again.append(rec(T0 + 900, T0 + 1800))
    assert again.totals("s1")["intervals"] == 2


def test_sites_are_independent(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    ledger.append(rec(T0, T0 + 900, site="a"))
    ledger.append(rec(T0, T0 + 900, site="b"))
    assert ledger.sites() == ["a", "b"]


def test_totals_and_instrument_totals(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    ledger.append(rec(T0, T0 + 900, net=1.0))
    ledger.append(rec(T0 + 900, T0 + 2700, net=2.0))
    t = ledger.totals("s1")
    assert t["intervals"] == 2
    assert t["hours"] == pytest.approx(0.75)
    assert t["net_usd"] == pytest.approx(3.0)
    assert ledger.totals("s1", start=T0 + 900)["net_usd"] == pytest.approx(2.0)
    assert ledger.instrument_totals("s1") == {
        ("call-1", "call_premium_usd"): pytest.approx(0.5),
        ("fwd", "forward_settlement_usd"): pytest.approx(-6.0),
    }


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    bad = replace(rec(T0, T0 + 900), instruments=(("x", "c", 1.0), ("x", "c", 2.0)))
    with pytest.raises(LedgerError):
        ledger.append(
            bad
        )  # the duplicate instrument row violates the key: whole interval rolled back
    assert list(ledger.records()) == []
    ledger.append(rec(T0, T0 + 900))
    assert ledger.totals("s1")["intervals"] == 1


def test_readonly_refuses_a_missing_or_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger"):
        SqliteLedger.open_readonly(tmp_path / "nope.sqlite3")
    (tmp_path / "x.sqlite3").write_bytes(b"not a database at all")
    with pytest.raises(LedgerError, match="not a hashspark ledger"):
        SqliteLedger.open_readonly(tmp_path / "x.sqlite3")


def test_export_csv_has_a_column_per_instrument(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    ledger.append(rec(T0, T0 + 900))
    out = io.StringIO()
    export_csv(ledger, ["s1"], None, None, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 1
    assert rows[0]["start_utc"] == "2024-06-01T05:00:00Z"
    assert float(rows[0]["fwd.forward_settlement_usd"]) == -3.0
    assert float(rows[0]["net_usd"]) == 1.0


def test_ledger_cli_summary_and_errors(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    ledger.append(rec(T0, T0 + 900))
    ledger.close()
    exe = str(Path(sys.executable).parent / "hashspark")
    ok = subprocess.run(
        [exe, "ledger", "summary", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "site s1: 1 intervals" in ok.stdout
    assert "call-1 call_premium_usd" in ok.stdout
    missing = subprocess.run(
        [exe, "ledger", "summary", "--state-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("hashspark: error:")
    assert "Traceback" not in missing.stderr
