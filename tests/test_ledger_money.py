"""Exact money in the SQLite ledger: integer micro-dollars, and older ledgers migrated in place.

The rounding is checked against an independent arithmetic: ``fractions.Fraction`` holds a
float's exact binary value, and ``round`` on a Fraction rounds half to even.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from adapters.ledger.schema import MONEY_COLUMN, micro_sql, register_functions
from adapters.ledger.sqlite import SCHEMA_VERSION, LedgerError, SqliteLedger
from controller.accounting.money import MONEY_COMPONENTS, to_micro_usd, usd_text
from controller.app.ledger_cmd import summary
from controller.records import COMPONENTS, IntervalRecord
from tests.test_ledger import rec

FIXTURE = Path(__file__).parent / "fixtures" / "ledger_v2.sql"
T0 = 1_724_112_000.0  # 2024-08-20T00:00:00Z, where the fixture starts


def micro(usd: float) -> int:
    """The independent rule: the float's exact value in micro-dollars, ties to even."""
    return round(Fraction(usd) * 1_000_000)


def old_ledger(path: Path, version: int = 2) -> Path:
    """The version 2 fixture written to ``path`` (version 1: without ``kind``, as 1 wrote)."""
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text())
    if version == 1:
        conn.execute("ALTER TABLE intervals DROP COLUMN kind")
        conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    return path


def _v2_rows(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    money = ", ".join(MONEY_COMPONENTS)
    intervals = conn.execute(
        f"SELECT site_id, start_s, mined_mwh, curtailed_mwh, {money} FROM intervals ORDER BY 2"
    ).fetchall()
    flows = conn.execute("SELECT * FROM instrument_flows ORDER BY 1, 2, 3, 4").fetchall()
    conn.close()
    return intervals, flows


# --- The acceptance table: amounts whose float sum drifts; the ledger's totals are exact. ---

DRIFT_CASES = [
    # (case, the amounts of successive intervals (USD), how many times the pattern repeats)
    ("ten cents", [0.1], 400),  # sum([0.1] * 400) is 40.0000000000003
    ("a cent", [0.01], 300),
    ("a micro-dollar", [0.000001], 200),
    ("cancelling", [0.1, 0.2, -0.3], 100),  # exactly 0; the float sum is not
    ("worked example mining", [50 * 0.98 * 0.2 * 0.25 / 24], 300),  # 0.1020833...: rounds
    ("mixed signs", [1234.567891, -0.000003, 0.07, -1234.5], 60),
]


@pytest.mark.parametrize(
    ("case", "pattern", "repeat"), DRIFT_CASES, ids=[c[0] for c in DRIFT_CASES]
)
def test_totals_are_exact_where_a_float_sum_drifts(
    tmp_path: Path, case: str, pattern: list[float], repeat: int
) -> None:
    amounts = pattern * repeat
    ledger = SqliteLedger.open(
        tmp_path / "ledger.sqlite3",
        run_id="r",
        config_version="v",
        started_at=T0,
        synchronous="normal",
    )
    index = COMPONENTS.index("net_usd")
    for k, usd in enumerate(amounts):
        r = rec(T0 + 300 * k, T0 + 300 * (k + 1))
        comps = list(r.components)
        comps[index] = usd
        ledger.append(replace(r, components=tuple(comps), instruments=(("fwd", "f_usd", usd),)))

    expected = sum(micro(a) for a in amounts)  # integers: exact whatever the order
    exact = sum(Fraction(a) for a in amounts)
    float_sum = 0.0
    for a in amounts:
        float_sum += a
    if case in ("ten cents", "a cent", "cancelling"):  # the premise: a float sum drifts here
        assert Fraction(float_sum) != Fraction(expected, 1_000_000)
    # Rounding each interval once moves the total by at most half a micro-dollar each.
    assert abs(Fraction(expected, 1_000_000) - exact) <= Fraction(len(amounts), 2_000_000)

    assert ledger.money_totals("s1")["net_usd"] == expected
    assert ledger.instrument_money_totals("s1") == {("fwd", "f_usd"): expected}
    assert ledger.totals("s1")["net_usd"] == expected / 1_000_000
    # The report and a SQL query over the file agree to the micro-dollar.
    conn = sqlite3.connect(tmp_path / "ledger.sqlite3")
    (sql,) = conn.execute("SELECT SUM(net_micro_usd) FROM intervals").fetchone()
    conn.close()
    assert sql == expected
    net_line = next(
        line for line in summary(ledger, ["s1"], None, None).splitlines() if "net_usd" in line
    )
    assert net_line.split()[-1] == usd_text(expected)
    ledger.close()


def test_rounding_is_to_the_nearest_micro_dollar_ties_to_even() -> None:
    assert to_micro_usd(0.1020833333) == 102083
    assert to_micro_usd(-0.1020836) == -102084
    assert to_micro_usd(2.5e-6) == micro(2.5e-6)  # the float is just off the tie
    assert [to_micro_usd(x) for x in (0.5e-6 * 2**-40, 0.0)] == [0, 0]
    assert usd_text(-1_234_567_890) == "-1,234.567890"
    assert usd_text(5, sign=True) == "+0.000005"
    for bad in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="not a finite number"):
            to_micro_usd(bad)


def test_a_non_finite_amount_is_refused_not_stored(tmp_path: Path) -> None:
    ledger = SqliteLedger.open(tmp_path / "l.sqlite3", run_id="r", config_version="v", started_at=0)
    comps = list(rec(T0, T0 + 900).components)
    comps[COMPONENTS.index("net_usd")] = float("inf")
    with pytest.raises(LedgerError, match="not written: amount inf USD is not a finite number"):
        ledger.append(replace(rec(T0, T0 + 900), components=tuple(comps)))
    assert list(ledger.records()) == []


# --- Migration of older ledger files, in place. ---


def test_a_version_2_ledger_migrates_in_place_to_integer_micro_dollars(tmp_path: Path) -> None:
    path = old_ledger(tmp_path / "ledger.sqlite3")
    before_intervals, before_flows = _v2_rows(path)
    assert len(before_intervals) == 24
    assert len(before_flows) == 72

    ledger = SqliteLedger.open(path, run_id="after", config_version="v3", started_at=T0)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    money = ", ".join(MONEY_COLUMN[c] for c in MONEY_COMPONENTS)
    after = conn.execute(
        f"SELECT site_id, start_s, mined_mwh, curtailed_mwh, {money} FROM intervals ORDER BY 2"
    ).fetchall()
    # Every amount rounded once, by the independent rule; energy and keys untouched.
    assert after == [(*row[:4], *(micro(v) for v in row[4:])) for row in before_intervals]
    assert all(isinstance(v, int) for row in after for v in row[4:])
    flows = conn.execute("SELECT * FROM instrument_flows ORDER BY 1, 2, 3, 4").fetchall()
    assert flows == [(*f[:4], micro(f[4])) for f in before_flows]
    assert conn.execute("SELECT value FROM ledger_meta WHERE key = 'currency'").fetchone() == (
        "USD",
    )
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2  # the old run kept
    # Totals are the sums of the converted amounts, exactly.
    net_index = 4 + MONEY_COMPONENTS.index("net_usd")
    assert ledger.money_totals("hb-south")["net_usd"] == sum(
        micro(r[net_index]) for r in before_intervals
    )
    ledger.close()
    conn.close()
    # Opening it again changes nothing.
    SqliteLedger.open(path, run_id="again", config_version="v3", started_at=T0).close()
    conn = sqlite3.connect(path)
    assert conn.execute(f"SELECT {money} FROM intervals ORDER BY start_s").fetchall() == [
        r[4:] for r in after
    ]


def test_an_unmigrated_ledger_reads_as_the_migration_would_without_being_touched(
    tmp_path: Path,
) -> None:
    old = old_ledger(tmp_path / "old.sqlite3")
    new = old_ledger(tmp_path / "new.sqlite3")
    SqliteLedger.open(new, run_id="m", config_version="v", started_at=T0).close()
    reader = SqliteLedger.open_readonly(old)
    migrated = SqliteLedger.open_readonly(new)
    assert list(reader.records()) == list(migrated.records())
    assert reader.money_totals("hb-south") == migrated.money_totals("hb-south")
    assert summary(reader, ["hb-south"], None, None) == summary(migrated, ["hb-south"], None, None)
    reader.close()
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_version_1_ledger_migrates_and_its_intervals_read_as_settled(tmp_path: Path) -> None:
    path = old_ledger(tmp_path / "ledger.sqlite3", version=1)
    reader = SqliteLedger.open_readonly(path)
    assert {r.kind for r in reader.records()} == {"settled"}
    reader.close()
    ledger = SqliteLedger.open(path, run_id="r2", config_version="v", started_at=T0)
    records = list(ledger.records())
    assert len(records) == 24
    assert {r.kind for r in records} == {"settled"}
    end = records[-1].end
    down = replace(records[0], start=end, end=end + 900, kind="down", instruments=())
    ledger.append(down)
    assert ledger.totals("hb-south")["down_hours"] == pytest.approx(0.25)


def test_a_failed_migration_changes_nothing_and_names_the_interval(tmp_path: Path) -> None:
    path = old_ledger(tmp_path / "ledger.sqlite3")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE intervals SET net_usd = 9e999 WHERE start_utc = '2024-08-20T03:00:00Z'")
    conn.commit()
    before = conn.execute("SELECT * FROM intervals ORDER BY start_s").fetchall()
    conn.close()
    with pytest.raises(LedgerError) as err:
        SqliteLedger.open(path, run_id="r", config_version="v", started_at=T0)
    message = str(err.value)
    assert "from schema version 2 to 3 failed" in message
    assert "nothing was changed" in message
    assert "interval 2024-08-20T03:00:00Z of site hb-south: net_usd = inf" in message
    with pytest.raises(LedgerError, match="2024-08-20T03:00:00Z of site hb-south: net_usd = inf"):
        SqliteLedger.open_readonly(path)  # the reader refuses it the same way
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert conn.execute("SELECT * FROM intervals ORDER BY start_s").fetchall() == before
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"runs", "intervals", "instrument_flows"}


def test_a_newer_ledger_is_refused(tmp_path: Path) -> None:
    path = old_ledger(tmp_path / "ledger.sqlite3")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=4")
    conn.commit()
    conn.close()
    openers: list[Callable[[], SqliteLedger]] = [
        lambda: SqliteLedger.open(path, run_id="r", config_version="v", started_at=T0),
        lambda: SqliteLedger.open_readonly(path),
    ]
    for opener in openers:
        with pytest.raises(LedgerError, match="schema version 4, this hashspark reads up to 3"):
            opener()


def test_booked_amounts_cannot_be_changed_or_deleted(tmp_path: Path) -> None:
    ledger = SqliteLedger.open(tmp_path / "l.sqlite3", run_id="r", config_version="v", started_at=0)
    ledger.append(rec(T0, T0 + 900))
    ledger.close()
    conn = sqlite3.connect(tmp_path / "l.sqlite3")
    for statement in (
        "UPDATE intervals SET net_micro_usd = 0",
        "UPDATE intervals SET price_usd_per_mwh = 1",
        "UPDATE intervals SET running_ph = 0",
        "DELETE FROM intervals",
        "UPDATE instrument_flows SET micro_usd = 0",
        "DELETE FROM instrument_flows",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only: book a restatement"):
            conn.execute(statement)
    assert conn.execute("SELECT net_micro_usd FROM intervals").fetchall() == [(1_000_000,)]


def test_a_record_reads_back_as_booked(tmp_path: Path) -> None:
    ledger = SqliteLedger.open(tmp_path / "l.sqlite3", run_id="r", config_version="v", started_at=0)
    r = rec(T0, T0 + 900, net=0.1 + 0.2)  # 0.30000000000000004
    ledger.append(r)
    (back,) = ledger.records()
    assert back.component("net_usd") == 0.3
    assert back.components[:2] == r.components[:2]  # energy is not money: kept as is
    assert isinstance(back, IntervalRecord)


def test_the_migrations_sql_rounding_is_the_ledgers_rule() -> None:
    """``micro_sql`` (SQLite's ROUND away from halves, Python near them) = ``to_micro_usd``."""
    rng = random.Random(20)
    values = [rng.uniform(-5000, 5000) for _ in range(4000)]
    values += [rng.randrange(-(10**9), 10**9) / 1e6 for _ in range(2000)]  # whole micro-dollars
    values += [(rng.randrange(-(10**9), 10**9) + 0.5) / 1e6 for _ in range(2000)]  # near ties
    values += [2.5e-6, -2.5e-6, 0.5e-6, -0.5e-6, 1.5e-6, 0.0, 1234567.8912345, -9e11 - 0.1]
    conn = sqlite3.connect(":memory:")
    register_functions(conn)
    conn.execute("CREATE TABLE t (i INTEGER PRIMARY KEY, usd REAL)")
    conn.executemany("INSERT INTO t (usd) VALUES (?)", [(v,) for v in values])
    got = [r[0] for r in conn.execute(f"SELECT {micro_sql('usd')} FROM t ORDER BY i")]
    assert got == [to_micro_usd(v) for v in values]
    assert got[-2:] == [micro(values[-2]), micro(values[-1])]
