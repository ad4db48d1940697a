"""The SQLite ledger's schema, its version, and the numbered migrations that bring an older
ledger file up to it in place.

Over 300 lines: the DDL of five tables and their append-only triggers, two migrations, and the
read-only views of older versions are one file format.

Versions (``PRAGMA user_version``):

1. ``runs``, ``intervals``, ``instrument_flows``; money as REAL dollars.
2. adds ``intervals.kind`` (``settled`` | ``down``).
3. money as INTEGER micro-dollars (``controller.accounting.money``): every ``<name>_usd``
   column of ``intervals`` becomes ``<name>_micro_usd`` and ``instrument_flows.usd`` becomes
   ``micro_usd``, each value rounded once (to the nearest micro-dollar, ties to even);
   adds ``ledger_meta`` (currency and money unit), the append-only ``restatements`` and
   ``restatement_flows``, and triggers that refuse to update or delete a booked amount.

An older ledger opened for writing is migrated in one transaction: every step, the foreign
key check and the new version number commit together or not at all (a failure leaves the file
as it was, and says why). Opened read-only (``hashspark ledger summary|export`` while a
daemon of the previous release still runs), an older ledger is read through temporary views
in the current shape; the file is not touched.

Plain numbered steps rather than a migration tool: the ledger is one local SQLite file with
one writer, the steps are a few statements each, and SQLite runs DDL inside a transaction,
which is all a migration needs here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from adapters.ledger.errors import LedgerError
from controller.accounting.money import (
    CURRENCY,
    MICRO_PER_USD,
    MONEY_COMPONENTS,
    to_micro_usd,
)
from controller.records import COMPONENTS

SCHEMA_VERSION = 3  #: see the module docstring for what each version added

#: A money component's column in ``intervals``: ``net_usd`` -> ``net_micro_usd``.
MONEY_COLUMN = {c: c.removesuffix("_usd") + "_micro_usd" for c in MONEY_COMPONENTS}
#: A money component's column in ``restatements``: ``net_usd`` -> ``net_delta_micro_usd``.
DELTA_COLUMN = {c: c.removesuffix("_usd") + "_delta_micro_usd" for c in MONEY_COMPONENTS}

#: An interval's inputs (prices, opportunity cost, load, hashrate): the same column names in
#: the local and central ``intervals`` and in ``ledger export``'s CSV.
INPUT_COLUMNS = (
    "price_usd_per_mwh",
    "hashprice_usd_per_ph_day",
    "opportunity_cost_usd_per_mwh",
    "running_mw",
    "running_ph",
    "nominal_mw",
)

#: ``intervals``' columns in the order the ledger writes them (components in COMPONENTS order).
INTERVAL_COLUMNS = (
    "site_id",
    "start_s",
    "end_s",
    "start_utc",
    "end_utc",
    "run_id",
    "config_version",
    INPUT_COLUMNS[0],
    "price_source",
    INPUT_COLUMNS[1],
    "hashprice_source",
    *INPUT_COLUMNS[2:],
    "miners_running",
    "miners_curtailed",
    "model_running_mw",
    "model_running_ph",
    "failsafe",
    *(MONEY_COLUMN.get(c, c) for c in COMPONENTS),
    "kind",
)

#: What ``ledger_meta`` states about the amounts (finance reads it, so does the shipper).
META = {
    "currency": CURRENCY,
    "money_unit": "micro_usd",
    "micro_per_unit": str(MICRO_PER_USD),
    "rounding": "nearest micro-dollar of the settled amount, ties to even, once when booked",
}

_KIND = "kind TEXT NOT NULL DEFAULT 'settled' CHECK (kind IN ('settled', 'down'))"
#: What a booked interval may never change: its span, its inputs and its amounts.
_FROZEN = (
    "start_s",
    "end_s",
    "price_usd_per_mwh",
    "hashprice_usd_per_ph_day",
    "running_mw",
    "running_ph",
    "nominal_mw",
    "mined_mwh",
    "curtailed_mwh",
)

# The SQL function the migration and the read-only views convert dollars with.
_SQL_MICRO = "hs_micro_usd"


def _sql_micro(usd: float | None) -> int | None:
    return None if usd is None else to_micro_usd(usd)


def register_functions(conn: sqlite3.Connection) -> None:
    """Make ``hs_micro_usd(REAL)`` (the same rounding as the ledger's writes) available."""
    conn.create_function(_SQL_MICRO, 1, _sql_micro, deterministic=True)


def micro_sql(column: str) -> str:
    """SQL giving REAL dollars in ``column`` as micro-dollars by the ledger's rounding rule.

    A call into Python per value costs a year's migration half a minute, so SQLite rounds
    itself wherever the answer cannot differ: below a million dollars the product
    ``column * 1e6`` is within 1e-4 micro-dollar of the exact value, so where it lies more
    than 1e-3 from a half, SQLite's ``ROUND`` (halves away from zero) and the rule (the
    exact value, ties to even) give the same integer. Near a half, or above a million,
    ``hs_micro_usd`` (``to_micro_usd``) decides.
    """
    p = f"({column} * 1000000.0)"
    return (
        f"CASE WHEN ABS({column}) < 1000000.0 AND ABS(ABS({p} - ROUND({p})) - 0.5) > 0.001 "
        f"THEN CAST(ROUND({p}) AS INTEGER) ELSE {_SQL_MICRO}({column}) END"
    )


def _runs_ddl() -> str:
    return (
        "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, "
        "started_utc TEXT NOT NULL, config_version TEXT NOT NULL)"
    )


def _intervals_ddl(name: str) -> str:
    components = ", ".join(
        f"{MONEY_COLUMN[c]} INTEGER NOT NULL" if c in MONEY_COLUMN else f"{c} REAL NOT NULL"
        for c in COMPONENTS
    )
    return f"""CREATE TABLE IF NOT EXISTS {name} (
    site_id TEXT NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL CHECK (end_s > start_s),
    start_utc TEXT NOT NULL,
    end_utc TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    config_version TEXT NOT NULL,
    price_usd_per_mwh REAL NOT NULL,
    price_source TEXT NOT NULL,
    hashprice_usd_per_ph_day REAL NOT NULL,
    hashprice_source TEXT NOT NULL,
    opportunity_cost_usd_per_mwh REAL,
    running_mw REAL NOT NULL,
    running_ph REAL NOT NULL,
    nominal_mw REAL NOT NULL,
    miners_running INTEGER NOT NULL,
    miners_curtailed INTEGER NOT NULL,
    model_running_mw TEXT NOT NULL,
    model_running_ph TEXT NOT NULL,
    failsafe TEXT,
    {components},
    {_KIND},
    PRIMARY KEY (site_id, start_s)
)"""


def _flows_ddl(name: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {name} (
    site_id TEXT NOT NULL,
    start_s REAL NOT NULL,
    instrument_id TEXT NOT NULL,
    component TEXT NOT NULL,
    micro_usd INTEGER NOT NULL,
    PRIMARY KEY (site_id, start_s, instrument_id, component),
    FOREIGN KEY (site_id, start_s) REFERENCES intervals(site_id, start_s)
)"""


def _restatement_ddl(*, temp: bool = False) -> list[str]:
    """``restatements`` (one row per corrected interval and correction) and its flows.

    A row holds the inputs the interval settles on after the correction and, per money
    component, the difference to what the interval stood at before it (integer deltas, so
    original + sum of deltas = corrected, exactly).
    """
    table = "CREATE TEMP TABLE" if temp else "CREATE TABLE IF NOT EXISTS"
    fk = "" if temp else ", FOREIGN KEY (site_id, start_s) REFERENCES intervals(site_id, start_s)"
    ref = "" if temp else " REFERENCES restatements(restatement_id)"
    deltas = ", ".join(f"{DELTA_COLUMN[c]} INTEGER NOT NULL" for c in MONEY_COMPONENTS)
    return [
        f"""{table} restatements (
    restatement_id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    start_s REAL NOT NULL,
    booked_utc TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason <> ''),
    source TEXT NOT NULL CHECK (source <> ''),
    config_version TEXT NOT NULL,
    price_usd_per_mwh REAL NOT NULL,
    hashprice_usd_per_ph_day REAL NOT NULL,
    {deltas}{fk}
)""",
        f"""{table} restatement_flows (
    restatement_id INTEGER NOT NULL{ref},
    instrument_id TEXT NOT NULL,
    component TEXT NOT NULL,
    delta_micro_usd INTEGER NOT NULL,
    PRIMARY KEY (restatement_id, instrument_id, component)
)""",
    ]


def _append_only(table: str, when: str = "UPDATE") -> str:
    event = when.split(maxsplit=1)[0].lower()
    return (
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{event} BEFORE {when} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} are append-only: book a restatement'); END"
    )


def _current_ddl() -> list[str]:
    """Every statement of the current schema (idempotent: ``IF NOT EXISTS``)."""
    frozen = ", ".join((*_FROZEN, *MONEY_COLUMN.values()))
    return [
        _runs_ddl(),
        _intervals_ddl("intervals"),
        _flows_ddl("instrument_flows"),
        "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        *_restatement_ddl(),
        "CREATE INDEX IF NOT EXISTS restatements_interval ON restatements(site_id, start_s)",
        _append_only("intervals", f"UPDATE OF {frozen}"),
        _append_only("intervals", "DELETE"),
        _append_only("instrument_flows"),
        _append_only("instrument_flows", "DELETE"),
        _append_only("restatements"),
        _append_only("restatements", "DELETE"),
        _append_only("restatement_flows"),
        _append_only("restatement_flows", "DELETE"),
    ]


class MigrationError(LedgerError):
    """A ledger that cannot be brought to the current schema (the file is left unchanged)."""


def stored_version(conn: sqlite3.Connection) -> int:
    """The file's schema version; 0 for an empty database (a new ledger)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version:
        return version
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "intervals" not in tables:
        return 0
    return 2 if "kind" in _columns(conn, "intervals") else 1


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}


def _to_2(conn: sqlite3.Connection) -> None:
    """1 -> 2: every interval a version 1 ledger holds was settled."""
    if "kind" not in _columns(conn, "intervals"):
        conn.execute(f"ALTER TABLE intervals ADD COLUMN {_KIND}")


def _to_3(conn: sqlite3.Connection) -> None:
    """2 -> 3: money as integer micro-dollars (rebuilt tables), and the restatement tables."""
    _check_convertible(conn)
    select = ", ".join(
        micro_sql(_component_of(c)) if c in MONEY_COLUMN.values() else c for c in INTERVAL_COLUMNS
    )
    conn.execute(_intervals_ddl("intervals_v3"))
    conn.execute(
        f"INSERT INTO intervals_v3 ({', '.join(INTERVAL_COLUMNS)}) "  # noqa: S608
        f"SELECT {select} FROM intervals"
    )
    conn.execute(_flows_ddl("instrument_flows_v3"))
    conn.execute(
        "INSERT INTO instrument_flows_v3 SELECT site_id, start_s, instrument_id, component, "  # noqa: S608
        f"{micro_sql('usd')} FROM instrument_flows"
    )
    conn.execute("DROP TABLE instrument_flows")
    conn.execute("DROP TABLE intervals")
    conn.execute("ALTER TABLE intervals_v3 RENAME TO intervals")
    conn.execute("ALTER TABLE instrument_flows_v3 RENAME TO instrument_flows")


def _component_of(column: str) -> str:
    """The version 2 column a version 3 column comes from (``net_micro_usd`` -> ``net_usd``)."""
    for component, money in MONEY_COLUMN.items():
        if column == money:
            return component
    return column


def _check_convertible(conn: sqlite3.Connection) -> None:
    """Refuse, naming the interval, an amount that is not a finite number of micro-dollars."""
    limit = 9.2e12  # USD: a signed 64-bit count of micro-dollars
    bad = " OR ".join(f"NOT ABS({c}) < {limit}" for c in MONEY_COMPONENTS)
    row = conn.execute(
        f"SELECT site_id, start_utc, {', '.join(MONEY_COMPONENTS)} FROM intervals "  # noqa: S608
        f"WHERE {bad} LIMIT 1"
    ).fetchone()
    if row is not None:
        name, value = next(
            (c, v) for c, v in zip(MONEY_COMPONENTS, row[2:], strict=True) if not abs(v) < limit
        )
        raise MigrationError(
            f"interval {row[1]} of site {row[0]}: {name} = {value!r} is not a finite amount "
            "of micro-dollars"
        )
    row = conn.execute(
        "SELECT site_id, start_s, instrument_id, component, usd FROM instrument_flows "  # noqa: S608
        f"WHERE NOT ABS(usd) < {limit} LIMIT 1"
    ).fetchone()
    if row is not None:
        raise MigrationError(
            f"instrument flow {row[2]} {row[3]} of site {row[0]} at {row[1]}: {row[4]!r} is "
            "not a finite amount of micro-dollars"
        )


#: ``MIGRATIONS[v]`` takes a version ``v`` ledger to ``v + 1``.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _to_2, 2: _to_3}


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the ledger at ``conn`` (autocommit mode) to ``SCHEMA_VERSION`` in one transaction.

    A new database gets the current schema. Returns the version the file had. Raises
    ``MigrationError`` (nothing changed) when a step fails or the file is newer than this
    hashspark.
    """
    register_functions(conn)
    version = stored_version(conn)
    if version > SCHEMA_VERSION:
        raise MigrationError(
            f"{path}: schema version {version}, this hashspark reads up to {SCHEMA_VERSION}: "
            "use the hashspark that wrote it"
        )
    if version == SCHEMA_VERSION:
        return version
    conn.execute("PRAGMA foreign_keys=OFF")  # tables are rebuilt; checked before the commit
    try:
        conn.execute("BEGIN IMMEDIATE")
        version = stored_version(conn)  # another process may have migrated it meanwhile
        step = version
        try:
            if version:
                while step < SCHEMA_VERSION:
                    MIGRATIONS[step](conn)
                    step += 1
            for statement in _current_ddl():
                conn.execute(statement)
            conn.executemany("INSERT OR IGNORE INTO ledger_meta VALUES (?, ?)", META.items())
            broken = conn.execute("PRAGMA foreign_key_check").fetchone()
            if broken is not None:
                raise MigrationError(f"a row of {broken[0]} refers to a missing {broken[2]}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except (sqlite3.Error, MigrationError, ValueError) as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if version == 0:
                raise
            raise MigrationError(
                f"{path}: migrating the ledger from schema version {version} to "
                f"{SCHEMA_VERSION} failed at step {step} -> {step + 1}, nothing was changed: "
                f"{exc}"
            ) from None
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
    return version


def current_shape_views(conn: sqlite3.Connection) -> None:
    """On a read-only connection to an older ledger: temporary views and tables in the
    current shape (money converted as the migration would), shadowing the stored ones."""
    register_functions(conn)
    version = stored_version(conn)
    if version > SCHEMA_VERSION:
        raise MigrationError(
            f"schema version {version}, this hashspark reads up to {SCHEMA_VERSION}"
        )
    if version == SCHEMA_VERSION:
        return
    _check_convertible(conn)  # as the migration would refuse it, naming the interval
    kind = "kind" if version >= 2 else "'settled' AS kind"
    select = ", ".join(
        f"{micro_sql(_component_of(c))} AS {c}"
        if c in MONEY_COLUMN.values()
        else (kind if c == "kind" else c)
        for c in INTERVAL_COLUMNS
    )
    # Fixed column names (this module's), no value from outside: no injection.
    conn.execute(f"CREATE TEMP VIEW intervals AS SELECT {select} FROM main.intervals")  # noqa: S608
    conn.execute(
        "CREATE TEMP VIEW instrument_flows AS SELECT site_id, start_s, instrument_id, "  # noqa: S608
        f"component, {micro_sql('usd')} AS micro_usd FROM main.instrument_flows"
    )
    for statement in _restatement_ddl(temp=True):
        conn.execute(statement)
    conn.execute("CREATE TEMP TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.executemany("INSERT INTO temp.ledger_meta VALUES (?, ?)", META.items())
