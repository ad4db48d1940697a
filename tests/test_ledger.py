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

from adapters.ledger.sqlite import SCHEMA_VERSION, LedgerError, SqliteLedger
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
    return SqliteLedger.open(
        tmp_path / "ledger.sqlite3", run_id=run, config_version="abc", started_at=T0
    )


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
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


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


def test_a_run_records_when_it_started(tmp_path: Path) -> None:
    open_ledger(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert conn.execute("SELECT run_id, started_utc FROM runs").fetchall() == [
        ("run1", "2024-06-01T05:00:00Z")
    ]


def _down(start: float, end: float) -> IntervalRecord:
    comps = dict.fromkeys(COMPONENTS, 0.0) | {
        "power_cost_usd": 45.0,
        "call_premium_usd": 3.5,
        "net_usd": -41.5,
    }
    return replace(
        rec(start, end),
        price_usd_per_mwh=0.0,
        hashprice_usd_per_ph_day=0.0,
        running_mw=0.0,
        running_ph=0.0,
        model_running_mw=(0.0, 0.0),
        model_running_ph=(0.0, 0.0),
        components=tuple(comps[name] for name in COMPONENTS),
        instruments=(("call-1", "call_premium_usd", 3.5),),
        miners_running=0,
        miners_curtailed=0,
        kind="down",
    )


def test_summary_shows_coverage_down_hours_and_gaps(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    ledger.append(rec(T0, T0 + 900))
    ledger.append(_down(T0 + 900, T0 + 2700))  # half an hour down
    ledger.append(rec(T0 + 3600, T0 + 4500))  # a 15-minute hole before it
    ledger.close()
    exe = str(Path(sys.executable).parent / "hashspark")
    out = subprocess.run(
        [exe, "ledger", "summary", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "coverage 80.00%: 1.0000 h booked of 1.2500 h wall" in out
    assert "0.5000 h down, 1 gaps" in out
    assert "gap 2024-06-01T05:45:00Z .. 2024-06-01T06:00:00Z (900.0 s)" in out
    # A window clips the intervals it cuts: 05:10 to 05:40 is all booked, 25 of 30 min down.
    window = subprocess.run(
        [
            exe,
            "ledger",
            "summary",
            "--state-dir",
            str(tmp_path),
            "--from",
            "2024-06-01T05:10:00Z",
            "--to",
            "2024-06-01T05:40:00Z",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "coverage 100.00%: 0.5000 h booked of 0.5000 h wall" in window
    assert "0.4167 h down, 0 gaps" in window


def test_export_leaves_what_a_down_interval_does_not_know_empty(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path)
    ledger.append(rec(T0, T0 + 900))
    ledger.append(_down(T0 + 900, T0 + 2700))
    out = io.StringIO()
    export_csv(ledger, ["s1"], None, None, out)
    settled, down = csv.DictReader(io.StringIO(out.getvalue()))
    assert (settled["kind"], down["kind"]) == ("settled", "down")
    assert float(down["power_cost_usd"]) == 45.0
    assert float(down["call-1.call_premium_usd"]) == 3.5
    assert float(down["nominal_mw"]) == 2.0
    for unknown in ("price_usd_per_mwh", "running_mw", "mining_revenue_usd", "mined_mwh"):
        assert down[unknown] == "", unknown
    assert down["resale_revenue_usd"] == down["fwd.forward_settlement_usd"] == ""


def test_ledger_finds_the_state_dir_in_the_config_and_state_dir_wins(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ledger = open_ledger(state)
    ledger.append(rec(T0, T0 + 900))
    ledger.close()
    config = tmp_path / "site.toml"
    # Only [daemon] is read: a site whose secrets this reader cannot see does not matter.
    config.write_text(
        f'[daemon]\nstate_dir = "{state}"\n\n[[sites]]\nid = "x"\n'
        'broker = { password = { env = "HASHSPARK_NOT_SET_HERE" } }\n'
    )
    exe = str(Path(sys.executable).parent / "hashspark")

    def summary(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, "ledger", "summary", *args], capture_output=True, text=True, check=False
        )

    found = summary("--config", str(config))
    assert found.returncode == 0, found.stderr
    assert "site s1: 1 intervals" in found.stdout
    wins = summary("--config", str(config), "--state-dir", str(tmp_path / "elsewhere"))
    assert wins.returncode == 2
    assert "elsewhere" in wins.stderr
    config.write_text("[daemon]\nstate_dirr = 1\n")
    bad = summary("--config", str(config))
    assert bad.returncode == 2
    assert "daemon.state_dirr: unknown key" in bad.stderr
