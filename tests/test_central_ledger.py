"""The central PostgreSQL ledger, on a real cluster of the tests' own (tests/pg_kit.py).

Shipping exactly once (a resend, a lost watermark, a conflicting entry), exact sums, the
schema's migrations and append-only triggers, the multi-site views, a wrong connection
string at start; and the acceptance run: two site daemons on simulated fleets shipping to
one database through a PostgreSQL outage and a SIGKILLed shipper.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from adapters.ledger.central import CentralError, CentralLedger
from adapters.ledger.journal import Journal, money
from adapters.ledger.shipper import SHIP_STATE_FILE, Shipper
from adapters.ledger.sqlite import LedgerError, SqliteLedger
from controller.app.cli import main
from controller.config import ConfigError, load_config, render
from controller.records import COMPONENTS, IntervalRecord
from tests.central_kit import (
    DSN_ENV,
    central_keys,
    central_totals,
    grafana_sql,
    local_keys,
    local_totals,
)
from tests.daemon_kit import ROOT, free_port, wait_for
from tests.pg_kit import PASSWORD, Cluster, cluster
from tests.scenario_kit import T0

_names = (f"db{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    """One cluster for the module; each test takes a database of its own."""
    with cluster() as c:
        yield c


@pytest.fixture
def dsn(pg: Cluster) -> str:
    """A fresh, empty database."""
    return pg.create_database(next(_names))


def rec(site: str, k: int, net: float) -> IntervalRecord:
    """Interval ``k`` (15 minutes) of ``site`` with amounts whose float sums drift."""
    comps = tuple(0.1 * (i + 1) + k * 1e-3 for i in range(len(COMPONENTS) - 1))
    return IntervalRecord(
        site_id=site,
        start=T0 + 900 * k,
        end=T0 + 900 * (k + 1),
        price_usd_per_mwh=42.17,
        price_source="p.csv",
        hashprice_usd_per_ph_day=50.3,
        hashprice_source="h.csv",
        running_mw=1.5,
        running_ph=60.0,
        nominal_mw=2.0,
        model_running_mw=(1.5,),
        model_running_ph=(60.0,),
        failsafe=None,
        components=(*comps, net),
        instruments=(("call-1", "call_premium_usd", 0.01),),
    )


def site_ledger(state: Path, site: str, n: int, net: float = 0.1) -> Path:
    """A state directory whose ledger holds ``n`` intervals of ``site``."""
    ledger = SqliteLedger.open(
        state / "ledger.sqlite3", run_id=f"run-{site}", config_version="v1", started_at=T0
    )
    for k in range(n):
        ledger.append(rec(site, k, net))
    ledger.close()
    return state


def ship_dir(state: Path, dsn: str, batch: int = 7) -> int:
    journal = Journal.open(state / "ledger.sqlite3")
    shipper = Shipper(journal, state / SHIP_STATE_FILE, dsn, batch)
    try:
        return shipper.ship_once()
    finally:
        shipper.close()
        journal.close()


def test_two_ledgers_ship_once_each_and_the_sums_are_exact(tmp_path: Path, dsn: str) -> None:
    a = site_ledger(tmp_path / "a", "site-a", 40)
    b = site_ledger(tmp_path / "b", "site-b", 25)
    assert ship_dir(a, dsn) == 40
    assert ship_dir(b, dsn) == 25
    # The same batches again: nothing new, from the watermark or without it.
    assert ship_dir(a, dsn) == 0
    (b / SHIP_STATE_FILE).unlink()
    assert ship_dir(b, dsn) == 0

    keys = central_keys(dsn)
    assert len(keys) == len(set(keys)) == 65
    assert set(keys) == local_keys(a, b)
    assert central_totals(dsn) == local_totals(a, b)
    # 65 intervals of 0.1 USD net: PostgreSQL says 6.5 exactly; floats drift off it.
    assert central_totals(dsn)["net_usd"] == Decimal("6.5")
    assert sum([0.1] * 65) != 6.5
    with psycopg.connect(dsn) as conn:
        flows = conn.execute("SELECT count(*), sum(usd) FROM instrument_flows").fetchone()
    assert flows == (65, Decimal("0.65"))


def test_an_entry_already_there_with_other_values_is_refused(tmp_path: Path, dsn: str) -> None:
    ship_dir(site_ledger(tmp_path / "a", "site-a", 5), dsn)
    other = site_ledger(tmp_path / "other", "site-a", 6, net=0.2)  # same keys, other amounts
    with pytest.raises(CentralError, match=r"site site-a interval .* different values: refused"):
        ship_dir(other, dsn)
    assert not (other / SHIP_STATE_FILE).exists()  # nothing acknowledged
    assert len(central_keys(dsn)) == 5


def test_the_books_are_append_only_and_migrations_apply_once(tmp_path: Path, dsn: str) -> None:
    ship_dir(site_ledger(tmp_path / "a", "site-a", 3), dsn)
    central = CentralLedger.connect(dsn)  # again: nothing to migrate
    central.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall() == [
            (1,),
            (2,),
        ]
        for sql in ("UPDATE intervals SET net_usd = 0", "DELETE FROM runs", "TRUNCATE corrections"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
        conn.execute("UPDATE schema_migrations SET sha256 = 'edited' WHERE version = 2")
    with pytest.raises(LedgerError, match=r"migration 0002 .* differs"):
        CentralLedger.connect(dsn)


def _book_correction(state: Path) -> None:
    """A restatement in the site ledger's corrections table, as the local side books it."""
    conn = sqlite3.connect(state / "ledger.sqlite3")
    comps = ", ".join(f"{c} REAL" for c in COMPONENTS)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS corrections (site_id TEXT, start_s REAL, correction_id TEXT,"
        f" booked_utc TEXT, reason TEXT, source TEXT, currency TEXT, inputs TEXT, {comps})"
    )
    deltas = [0.0] * (len(COMPONENTS) - 1) + [-1.25]
    conn.execute(
        f"INSERT INTO corrections VALUES ({', '.join('?' * (8 + len(COMPONENTS)))})",
        (
            "site-a",
            T0 + 900,
            "ercot-repub-1",
            "2026-01-05T10:00:00Z",
            "ERCOT re-published the price",
            "spp.csv",
            "USD",
            '{"price_usd_per_mwh": 51.0}',
            *deltas,
        ),
    )
    conn.commit()
    conn.close()


def test_summary_and_export_show_sites_and_corrections(
    tmp_path: Path, dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = site_ledger(tmp_path / "a", "site-a", 8)
    b = site_ledger(tmp_path / "b", "site-b", 4)
    _book_correction(a)
    assert ship_dir(a, dsn) == 9  # 8 intervals and the correction
    assert ship_dir(b, dsn) == 4
    assert ship_dir(a, dsn) == 0  # the correction too is shipped once
    monkeypatch.setenv("HASHSPARK_CENTRAL_DSN", dsn)

    assert main(["ledger", "summary", "--central", "--site", "site-a"]) == 0
    out = capsys.readouterr().out
    net = next(line for line in out.splitlines() if line.strip().startswith("net_usd"))
    assert net.split() == ["net_usd", "0.80", "-1.25", "-0.45"]  # original, correction, corrected
    assert "correction ercot-repub-1 of 2024-" in out
    assert "ERCOT re-published the price (spp.csv), net_usd -1.25" in out
    assert PASSWORD not in out

    assert main(["ledger", "summary", "--central", "--from", "2024-01-01"]) == 0
    out = capsys.readouterr().out
    assert "site site-b: 4 intervals" in out
    assert "all sites: 12 intervals" in out

    csv_path = tmp_path / "month.csv"
    assert main(["ledger", "export", "--central", "--csv", "--out", str(csv_path)]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["kind"] for r in rows].count("correction") == 1
    assert sum(Decimal(r["net_usd"]) for r in rows) == Decimal("0.8") + Decimal("0.4") - Decimal(
        "1.25"
    )
    with psycopg.connect(dsn) as conn:
        day = conn.execute(
            "SELECT original_net_usd, correction_net_usd, net_usd, corrections "
            "FROM finance_daily WHERE site_id = 'site-a'"
        ).fetchall()
    assert day == [(Decimal("0.8"), Decimal("-1.25"), Decimal("-0.45"), 1)]

    # The finance dashboard's panels, as Grafana would send them, for both sites and the day.
    board = json.loads((ROOT / "deploy/grafana/dashboards/hashspark-finance.json").read_text())
    results = {}
    with psycopg.connect(dsn) as conn:
        for panel in board["panels"]:
            sql = grafana_sql(
                panel["targets"][0]["rawSql"], ["site-a", "site-b"], "2024-01-01", "2030-01-01"
            )
            results[panel["id"]] = conn.execute(sql.encode()).fetchall()
    assert all(results.values())  # every panel has rows
    books = {row[0]: row for row in results[2]}  # site -> (..., as booked, corrections, corrected)
    assert books["site-a"][-3:] == (Decimal("0.8"), Decimal("-1.25"), Decimal("-0.45"))
    assert books["site-b"][-1] == Decimal("0.4")
    assert [row[2] for row in results[3]] == ["ercot-repub-1"]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("password", "password authentication failed"),
        ("database", 'database "nowhere" does not exist'),
        ("malformed", "connection string is malformed"),
    ],
)
def test_a_wrong_connection_string_fails_at_start_without_the_password(
    tmp_path: Path,
    pg: Cluster,
    how: str,
    expected: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = site_ledger(tmp_path / "a", "site-a", 1)
    wrong = {
        "password": pg.dsn("postgres", password="Wrong-" + PASSWORD),
        "database": pg.dsn("nowhere"),
        "malformed": f"host=127.0.0.1 password={PASSWORD} port",
    }[how]
    monkeypatch.setenv("HASHSPARK_CENTRAL_DSN", wrong)
    assert main(["ledger", "ship", "--state-dir", str(state)]) == 2  # following: fails at once
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hashspark: error: central ledger")
    assert expected in lines[0]
    assert PASSWORD not in err + out
    assert not (state / SHIP_STATE_FILE).exists()


def test_a_following_shipper_rides_out_an_outage(tmp_path: Path, pg: Cluster, dsn: str) -> None:
    """The chaos run, short (the two-daemon acceptance run with a minute's outage, a
    SIGKILLed shipper and daemon, is in test_central_ledger_slow.py): the site's ledger grows
    while a shipper follows it; PostgreSQL is stopped for 2 s and restarted; then everything
    is shipped twice more. Every interval is there exactly once, to the unit."""
    state = tmp_path / "state"
    ledger = SqliteLedger.open(
        state / "ledger.sqlite3", run_id="run-a", config_version="v1", started_at=T0
    )
    k = itertools.count()

    def book(n: int) -> None:
        for _ in range(n):
            ledger.append(rec("site-a", next(k), 0.1))

    book(10)
    stop = threading.Event()

    def follow() -> None:  # what `hashspark ledger ship` runs, in a thread of this process
        journal = Journal.open(state / "ledger.sqlite3")
        shipper = Shipper(journal, state / SHIP_STATE_FILE, dsn, batch_size=3)
        try:
            shipper.follow(stop, 0.05, 0.5)
        finally:
            shipper.close()
            journal.close()

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        wait_for(lambda: len(central_keys(dsn)) == 10, 30, "the first ten shipped")
        pg.stop()  # the daemon goes on booking; the shipper waits
        book(10)
        time.sleep(2)
        pg.start()
        book(10)
        wait_for(lambda: len(central_keys(dsn)) == 30, 30, "every interval shipped")
    finally:
        stop.set()
        follower.join(10)
        ledger.close()
    # The same batch twice: from the watermark, then without it (all offered again).
    assert ship_dir(state, dsn) == 0
    (state / SHIP_STATE_FILE).unlink()
    assert ship_dir(state, dsn) == 0

    keys = central_keys(dsn)
    assert len(keys) == len(set(keys))  # none twice
    assert set(keys) == local_keys(state)  # none lost
    assert central_totals(dsn) == local_totals(state)


def test_a_central_ledger_away_at_start_is_not_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens on the port: ``--once`` exits 1 (ship again later), not 2, and the
    watermark stays where it was."""
    state = site_ledger(tmp_path / "a", "site-a", 2)
    monkeypatch.setenv(
        "HASHSPARK_CENTRAL_DSN", f"postgresql://u:{PASSWORD}@127.0.0.1:{free_port()}/db"
    )
    assert main(["ledger", "ship", "--state-dir", str(state), "--once"]) == 1
    out, err = capsys.readouterr()
    assert "unreachable" in err
    assert "nothing lost" in err
    assert PASSWORD not in out + err
    assert not (state / SHIP_STATE_FILE).exists()


def test_the_connection_string_is_a_secret_in_the_config(
    baseline_toml: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = f"host=db.example user=shipper password={PASSWORD} dbname=books"
    monkeypatch.setenv(DSN_ENV, dsn)
    path = tmp_path / "site.toml"
    path.write_text(baseline_toml + f'\n[central]\ndsn = {{ env = "{DSN_ENV}" }}\n')
    rendered = json.dumps(render(load_config(path).config))
    assert PASSWORD not in rendered
    assert '"dsn": "**********"' in rendered
    path.write_text(baseline_toml + f'\n[central]\ndsn = "{dsn}"\n')  # inline: refused
    with pytest.raises(ConfigError, match=r"central\.dsn: secrets are not written in config"):
        load_config(path)


def test_the_cli_works_without_the_central_extra(tmp_path: Path) -> None:
    """psycopg is the optional ``central`` extra: without it the site's own ledger commands
    work and ``ledger ship`` says which extra to install (exit 2), in one line."""
    state = site_ledger(tmp_path / "a", "site-a", 2)
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from controller.app.cli import main\n"
        f"assert main(['ledger', 'summary', '--state-dir', {str(state)!r}]) == 0\n"
        f"sys.exit(main(['ledger', 'ship', '--state-dir', {str(state)!r}, '--once']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "HASHSPARK_CENTRAL_DSN": "postgresql://u@127.0.0.1:1/x"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "site site-a: 2 intervals" in done.stdout
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("hashspark: error: the central ledger needs psycopg (")
    assert line.endswith("): pip install 'hashspark[central]'")


@pytest.mark.parametrize(
    ("stored", "exponent", "exact"),
    [
        (0.1, 0, "0.1"),  # the shortest decimal that reads back as the stored float
        (0.1 + 0.2, 0, "0.30000000000000004"),  # a float sum's error is kept, not hidden
        (1e-05, 0, "0.00001"),
        (-1234.5678, 0, "-1234.5678"),
        (12345, -2, "123.45"),  # an integer amount of a minor unit (cents)
        (-7, -6, "-0.000007"),
        (42, 0, "42"),
    ],
)
def test_an_amount_crosses_the_edge_exactly(stored: float, exponent: int, exact: str) -> None:
    assert money(stored, exponent) == Decimal(exact)
    assert money(None) is None
