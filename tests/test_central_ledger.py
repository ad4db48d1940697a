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
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from adapters.ledger.central import CentralError, CentralLedger
from adapters.ledger.journal import Journal, money
from adapters.ledger.shipper import SHIP_STATE_FILE, Shipper, Watermark
from adapters.ledger.sqlite import LEDGER_FILE, LedgerError, SqliteLedger
from controller.accounting.money import MONEY_COMPONENTS
from controller.accounting.restatement import Amounts, Restated
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
from tests.test_ledger_money import old_ledger
from tests.test_ledger_restate import (
    DAY1,
    DAY2,
    END,
    REASON,
    book_two_days,
    column,
    republished,
    ts,
    write_corrections,
)

#: (from, to) windows the corrected totals are compared over: the restated day, the other
#: day, everything.
WINDOWS = ((DAY1, DAY2), (DAY2, END), (None, None))
Money = tuple[dict[str, int], dict[tuple[str, str], int]]

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
        currencies = conn.execute("SELECT DISTINCT currency FROM intervals").fetchall()
    assert flows == (65, Decimal("0.65"))
    assert currencies == [("USD",)]  # the ledgers' ledger_meta.currency


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
            (3,),
        ]
        for sql in (
            "UPDATE intervals SET net_usd = 0",
            "DELETE FROM runs",
            "TRUNCATE corrections, correction_flows",
            "TRUNCATE correction_flows",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
        conn.execute("UPDATE schema_migrations SET sha256 = 'edited' WHERE version = 2")
    with pytest.raises(LedgerError, match=r"migration 0002 .* differs"):
        CentralLedger.connect(dsn)


def _book_correction(state: Path) -> str:
    """A restatement of site-a's second interval, booked in the site ledger as ``ledger
    restate`` books one (net -1.25 USD, the call's premium -0.01 of it); its batch id."""
    ledger = SqliteLedger.open_for_restatement(state / "ledger.sqlite3")
    deltas = dict.fromkeys(MONEY_COMPONENTS, 0) | {
        "call_premium_usd": -10_000,
        "net_usd": -1_250_000,
    }
    flows = {("call-1", "call_premium_usd"): -10_000}
    one = Restated("site-a", T0 + 900, T0 + 1800, 51.0, 50.3, Amounts(deltas, flows))
    try:
        return ledger.restatements.book(
            [one],
            reason="ERCOT re-published the price",
            source="spp.csv",
            booked_at=T0 + 86_400,
            config_version="v1",
            planned_after=ledger.restatements.last_id(),
        )
    finally:
        ledger.close()


def test_summary_and_export_show_sites_and_corrections(
    tmp_path: Path, dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = site_ledger(tmp_path / "a", "site-a", 8)
    b = site_ledger(tmp_path / "b", "site-b", 4)
    batch = _book_correction(a)
    assert ship_dir(a, dsn) == 9  # 8 intervals and the correction
    assert ship_dir(b, dsn) == 4
    assert ship_dir(a, dsn) == 0  # the correction too is shipped once
    with psycopg.connect(dsn, autocommit=True) as conn:  # times still read in UTC
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET TimeZone = 'America/Chicago'")
    monkeypatch.setenv("HASHSPARK_CENTRAL_DSN", dsn)

    assert main(["ledger", "summary", "--central", "--site", "site-a"]) == 0
    out = capsys.readouterr().out
    figures = {" ".join(line.split()[:-3]): line.split()[-3:] for line in out.splitlines()}
    # original, correction, corrected
    assert figures["net_usd"] == ["0.800000", "-1.250000", "-0.450000"]
    assert figures["call-1 call_premium_usd"] == ["0.080000", "-0.010000", "0.070000"]
    assert (
        f"correction {batch} booked 2024-06-02T05:00:00Z: 1 intervals 2024-06-01T05:15:00Z .. "
        "2024-06-01T05:30:00Z, net -1.250000 USD; reason: ERCOT re-published the price; "
        "source: spp.csv"
    ) in out
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
    assert [row[2] for row in results[3]] == [batch]


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


def _corrected(ledger: SqliteLedger, site: str, start: float | None, end: float | None) -> Money:
    """The site ledger's money as corrected, in micro-dollars: booked + restatements."""
    booked, deltas = (
        ledger.money_totals(site, start, end),
        ledger.restatements.totals(site, start, end),
    )
    flows = ledger.instrument_money_totals(site, start, end)
    flow_deltas = ledger.restatements.flow_totals(site, start, end)
    return (
        {c: booked[c] + deltas[c] for c in MONEY_COMPONENTS},
        {k: flows.get(k, 0) + flow_deltas.get(k, 0) for k in {*flows, *flow_deltas}},
    )


def _central_corrected(
    central: CentralLedger, site: str, start: str | None, end: str | None
) -> Money:
    """The central ledger's money as corrected, in micro-dollars (refusing a fraction of one)."""
    window = tuple(None if x is None else datetime.fromisoformat(x) for x in (start, end))
    t, c = central.totals(site, *window), central.correction_totals(site, *window)
    flows = central.instrument_totals(site, *window)
    flow_deltas = central.correction_flow_totals(site, *window)

    def micro(usd: Decimal) -> int:
        scaled = usd.scaleb(6)
        assert scaled == scaled.to_integral_value(), usd  # whole micro-dollars
        return int(scaled)

    return (
        {n: micro(t[n] + c[n]) for n in MONEY_COMPONENTS},
        {
            k: micro(flows.get(k, Decimal(0)) + flow_deltas.get(k, Decimal(0)))
            for k in {*flows, *flow_deltas}
        },
    )


def test_a_restatement_by_ledger_restate_ships_as_a_correction_to_the_micro_dollar(
    tmp_path: Path, dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two days booked by the site loop's accrual, shipped; ``hashspark ledger restate``
    books a day's re-published prices, then a pool true-up of the same day: each batch ships
    as corrections with its reason and source, nothing else is shipped again, and the central
    corrected totals (components and instrument flows, the day and both days) equal the
    SQLite ledger's integer sums exactly."""
    config, state = book_two_days(tmp_path)
    assert ship_dir(state, dsn, batch=50) == 192
    prices = write_corrections(tmp_path / "rtm_2024-08-20_republished.csv", republished(DAY1, DAY2))
    hashprice = write_corrections(tmp_path / "pool-true-up.csv", [(DAY1, "44.0")], "usd_per_ph_day")
    restate = ["ledger", "restate", "--config", str(config), "--state-dir", str(state)]
    assert main([*restate, str(prices), "--reason", REASON]) == 0
    assert ship_dir(state, dsn, batch=50) == 96  # one correction per restated interval
    assert main([*restate, str(hashprice), "--reason", "pool true-up", "--to", DAY2]) == 0
    assert ship_dir(state, dsn, batch=50) == 96
    assert ship_dir(state, dsn, batch=50) == 0
    (state / SHIP_STATE_FILE).unlink()
    assert ship_dir(state, dsn, batch=50) == 0  # everything offered again: nothing twice
    capsys.readouterr()

    ledger = SqliteLedger.open_readonly(state / LEDGER_FILE)
    (site,) = ledger.sites()
    batches = ledger.restatements.batches(site)
    local = {
        w: _corrected(ledger, site, *(None if x is None else ts(x) for x in w)) for w in WINDOWS
    }
    ledger.close()
    central = CentralLedger.connect(dsn)
    try:
        assert {w: _central_corrected(central, site, *w) for w in WINDOWS} == local
        shipped = central.corrections(site, None, None)
        assert central.correction_totals(site, None, None)["corrections"] == 192
    finally:
        central.close()
    assert all(b.net_delta_micro_usd for b in batches)  # both changed the day's net
    assert [(b.correction_id, b.reason, b.source, b.intervals) for b in shipped] == [
        (b.batch_id, b.reason, b.source, 96) for b in batches
    ]
    assert [b.reason for b in shipped] == [REASON, "pool true-up"]
    assert shipped[0].source.startswith("rtm_2024-08-20_republished.csv (sha256 ")
    assert [b.net_usd.scaleb(6) for b in shipped] == [b.net_delta_micro_usd for b in batches]

    # The site's summary and the central one print the same figures, digit for digit.
    assert main(["ledger", "summary", "--state-dir", str(state), "--from", DAY1, "--to", DAY2]) == 0
    here = capsys.readouterr().out
    monkeypatch.setenv("HASHSPARK_CENTRAL_DSN", dsn)
    assert main(["ledger", "summary", "--central", "--from", DAY1, "--to", DAY2]) == 0
    there = capsys.readouterr().out
    for c in MONEY_COMPONENTS:
        original, corrected, _ = column(here, c)
        assert column(there, c)[0::2] == [original, corrected], c
    assert f"reason: {REASON}; source: rtm_2024-08-20_republished.csv (sha256 " in there


def test_a_ledger_of_an_older_schema_is_refused_in_one_line_and_left_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon migrates its ledger when it opens it; the shipper never does (the daemon
    may have the file open) and ships no amount the file does not hold yet."""
    state = tmp_path / "state"
    state.mkdir()
    path = old_ledger(state / LEDGER_FILE)
    before = path.read_bytes()
    monkeypatch.setenv(
        "HASHSPARK_CENTRAL_DSN", f"postgresql://u:{PASSWORD}@127.0.0.1:{free_port()}/db"
    )
    assert main(["ledger", "ship", "--state-dir", str(state), "--once"]) == 2
    out, err = capsys.readouterr()
    (line,) = err.strip().splitlines()
    assert line == (
        f"hashspark: error: {path}: ledger schema version 2, the shipper reads version 3 only: "
        "start this hashspark's daemon on it (it migrates the ledger when it opens it), then ship"
    )
    assert PASSWORD not in out + err
    assert path.read_bytes() == before
    assert not (state / SHIP_STATE_FILE).exists()


def test_a_correction_waits_for_its_interval_to_be_acknowledged(tmp_path: Path) -> None:
    """An interval booked and restated after this pass shipped the intervals: its correction
    (and every one booked after it) waits for the next pass, which ships the interval first
    (the central ledger's foreign key would refuse it)."""
    state = site_ledger(tmp_path / "a", "site-a", 3)
    _book_correction(state)
    journal = Journal.open(state / LEDGER_FILE)
    try:
        (c,) = journal.corrections(0, 10)
    finally:
        journal.close()
    waiting = Watermark(central="x", sites={"site-a": T0})  # the first interval acknowledged
    assert Shipper._acknowledged([c], waiting) == []
    assert Shipper._acknowledged([c], Watermark(central="x", sites={"site-a": T0 + 900})) == [c]


def test_a_correction_already_there_with_other_values_is_refused(tmp_path: Path, dsn: str) -> None:
    state = site_ledger(tmp_path / "a", "site-a", 3)
    _book_correction(state)
    assert ship_dir(state, dsn) == 4
    journal = Journal.open(state / LEDGER_FILE)
    try:
        (c,) = journal.corrections(0, 10)
    finally:
        journal.close()
    central = CentralLedger.connect(dsn)
    try:
        assert central.ship_corrections([c, c]) == 0  # a resend, even twice in one batch
        with pytest.raises(CentralError, match=r"correction .* different values: refused"):
            central.ship_corrections([replace(c, digest="other")])
        assert central.correction_totals(None, None, None)["corrections"] == 1
    finally:
        central.close()


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
