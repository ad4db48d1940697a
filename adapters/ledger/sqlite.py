"""The durable P&L ledger: SQLite in WAL mode, one transaction per settled interval.

Over 300 lines: the checks on open, the writes and the reads are one file format (the
schema and its migrations are in ``schema.py``, restatements in ``restatements.py``).

One row per site and interval with every settlement component, the inputs that produced
them, the config version and the run id, and its kind: ``settled``, or ``down`` for time the
daemon settled nothing (only the fixed costs and premiums are booked on it). Per-instrument
amounts go to a child table in the same transaction. Money is stored as integer
micro-dollars, rounded once here (``controller.accounting.money``); totals are integer sums.
An interval that overlaps one already stored is refused, so a restarted daemon can never
count an interval twice; it resumes from ``last_end``.

A ledger that is there but damaged (emptied to 0 bytes, a page corrupted, not a database)
is refused at open with SQLite's own words (``PRAGMA quick_check``) and what to do: never
replaced by a fresh one, never written to. Only a missing file is created.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Literal

from adapters.ledger.errors import LedgerError
from adapters.ledger.restatements import Restatements
from adapters.ledger.schema import (
    INTERVAL_COLUMNS,
    MONEY_COLUMN,
    SCHEMA_VERSION,
    MigrationError,
    current_shape_views,
    migrate,
)
from controller.accounting.money import MONEY_COMPONENTS, from_micro_usd, to_micro_usd
from controller.domain import EpochS, iso
from controller.records import COMPONENTS, IntervalRecord

LEDGER_FILE = "ledger.sqlite3"  #: the ledger's name inside the state directory

__all__ = ["LEDGER_FILE", "SCHEMA_VERSION", "LedgerError", "SqliteLedger"]


def _reason(exc: sqlite3.Error) -> str:
    """SQLite's message with its error name, e.g. ``database or disk is full (SQLITE_FULL)``."""
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)


def _damaged(path: Path, detail: str) -> LedgerError:
    """The one-line refusal of a damaged ledger, with what the operator can do."""
    return LedgerError(
        f"{path}: the ledger is damaged ({detail}): hashspark will neither write to it nor "
        f"start a fresh one over it; stop, keep a copy, then restore it from a backup or "
        f"recover it (sqlite3 {path} .recover | sqlite3 recovered.sqlite3) and put the result "
        f"in its place"
    )


def _is_damaged(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorname", None) == "SQLITE_CORRUPT" or "malformed" in str(exc)


def _is_foreign(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorname", None) == "SQLITE_NOTADB"


def _check_not_emptied(path: Path) -> None:
    """Refuse a ledger file emptied to 0 bytes (SQLite would take it as a new database).

    A first run killed before its first checkpoint leaves the file empty and its content in
    the write-ahead log beside it: that one is fine.
    """
    try:
        if path.stat().st_size > 0:
            return
    except FileNotFoundError:
        return  # a first start: created
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        return
    raise _damaged(path, "the file is empty, 0 bytes: truncated")


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """``PRAGMA quick_check`` (every page and index, not the values' cross-checks)."""
    rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
    if rows == ["ok"]:
        return
    # One problem a line, under a "*** in database main ***" heading: one line for the error.
    problems = [
        " ".join(line.split())
        for row in rows
        for line in row.splitlines()
        if line.strip() and not line.startswith("***")
    ] or ["not ok"]
    more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
    raise _damaged(path, f"SQLite integrity check: {problems[0]}{more}")


def _probe_writable(directory: Path) -> None:
    """Fail at start-up, with the OS's reason, on a state directory we cannot write.

    SQLite alone says "unable to open database file" on a read-only file system; a probe
    file names the cause (read-only file system, permission denied, no space left).
    """
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".hashspark-probe-"):
            pass
    except OSError as exc:
        raise LedgerError(f"{directory}: state directory not writable: {exc.strerror}") from None


def _connect_rw(path: Path, synchronous: Literal["full", "normal"]) -> sqlite3.Connection:
    """A read-write connection to the ledger at ``path``, checked and at the current schema."""
    conn: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _probe_writable(path.parent)
        _check_not_emptied(path)
        fresh = not path.exists()
        conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        if not fresh:
            _check_integrity(conn, path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn, path)
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        if _is_damaged(exc):
            raise _damaged(path, _reason(exc)) from None
        if _is_foreign(exc):
            raise LedgerError(
                f"{path}: not a hashspark ledger ({exc}): hashspark will not write over it; "
                "check --state-dir (or daemon.state_dir), or move the file aside"
            ) from None
        raise LedgerError(f"{path}: {_reason(exc)}") from None
    except OSError as exc:
        raise LedgerError(f"{path}: {exc.strerror}") from None
    except LedgerError:
        if conn is not None:
            conn.close()
        raise
    return conn


class SqliteLedger:
    """A ``Ledger`` on SQLite. Open with ``SqliteLedger.open(path, ...)``; close when done."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, run_id: str, config_version: str
    ) -> None:
        self._conn = conn
        self.path = path
        self.run_id = run_id
        self.config_version = config_version
        self._last_end: dict[str, float] = {}
        #: The append-only corrections of this ledger's intervals.
        self.restatements = Restatements(conn, path)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        run_id: str,
        config_version: str,
        started_at: EpochS,
        synchronous: Literal["full", "normal"] = "full",
    ) -> SqliteLedger:
        """Open (creating if needed, migrating an older schema) the ledger and register this
        run, started at ``started_at`` (wall time)."""
        conn = _connect_rw(path, synchronous)
        try:
            conn.execute(
                "INSERT OR IGNORE INTO runs VALUES (?, ?, ?)",
                (run_id, iso(started_at), config_version),
            )
        except sqlite3.Error as exc:
            conn.close()
            raise LedgerError(f"{path}: {_reason(exc)}") from None
        return cls(conn, path, run_id, config_version)

    @classmethod
    def open_for_restatement(cls, path: Path) -> SqliteLedger:
        """Open an existing ledger to book restatements (migrating an older schema); no run
        is registered and no interval may be appended through it."""
        if not path.is_file():
            raise LedgerError(f"{path}: no ledger here (is --state-dir right?)")
        return cls(_connect_rw(path, "full"), path, run_id="", config_version="")

    @classmethod
    def open_readonly(cls, path: Path) -> SqliteLedger:
        """Open an existing ledger for reading only (the daemon may be writing to it).

        An older schema is read through temporary views in the current shape."""
        if not path.is_file():
            raise LedgerError(f"{path}: no ledger here (is --state-dir right?)")
        _check_not_emptied(path)
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
            _check_integrity(conn, path)
            conn.execute("SELECT 1 FROM intervals LIMIT 1").fetchall()
            current_shape_views(conn)
        except MigrationError as exc:
            raise LedgerError(f"{path}: {exc}") from None
        except sqlite3.Error as exc:
            if _is_damaged(exc):
                raise _damaged(path, _reason(exc)) from None
            raise LedgerError(f"{path}: not a hashspark ledger ({exc})") from None
        return cls(conn, path, run_id="", config_version="")

    def close(self) -> None:
        """Close the connection (every committed interval is already on disk)."""
        self._conn.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A read that meets a damaged page raises ``LedgerError``, not SQLite's error."""
        try:
            yield
        except sqlite3.Error as exc:
            if _is_damaged(exc):
                raise _damaged(self.path, _reason(exc)) from None
            raise LedgerError(f"{self.path}: {_reason(exc)}") from None

    def last_end(self, site_id: str) -> EpochS | None:
        """End of the site's last committed interval: where a restart resumes."""
        with self._reading():
            row = self._conn.execute(
                "SELECT MAX(end_s) FROM intervals WHERE site_id = ?", (site_id,)
            ).fetchone()
            return None if row[0] is None else float(row[0])

    def append(self, record: IntervalRecord) -> None:
        """Store one settled interval and its instrument flows in one transaction."""
        last = self._last_end.get(record.site_id)
        if last is None:
            last = self.last_end(record.site_id)
        if last is not None and record.start < last - 1e-6:
            raise LedgerError(
                f"interval {iso(record.start)}..{iso(record.end)} of site {record.site_id} "
                f"overlaps the ledger, which ends at {iso(last)}: refused (it would count twice)"
            )
        try:  # the one place a settled amount becomes whole micro-dollars
            amounts = [
                to_micro_usd(v) if name in MONEY_COMPONENTS else v
                for name, v in zip(COMPONENTS, record.components, strict=True)
            ]
            flows = [(i, c, to_micro_usd(usd)) for i, c, usd in record.instruments]
        except ValueError as exc:
            raise LedgerError(
                f"interval {iso(record.start)}..{iso(record.end)} of site {record.site_id} "
                f"not written: {exc}"
            ) from None
        values = (
            record.site_id,
            record.start,
            record.end,
            iso(record.start),
            iso(record.end),
            self.run_id,
            self.config_version,
            record.price_usd_per_mwh,
            record.price_source,
            record.hashprice_usd_per_ph_day,
            record.hashprice_source,
            record.opportunity_cost_usd_per_mwh,
            record.running_mw,
            record.running_ph,
            record.nominal_mw,
            record.miners_running,
            record.miners_curtailed,
            json.dumps(record.model_running_mw),
            json.dumps(record.model_running_ph),
            record.failsafe,
            *amounts,
            record.kind,
        )
        insert = (  # fixed column names, values bound: no injection
            f"INSERT INTO intervals ({', '.join(INTERVAL_COLUMNS)}) "  # noqa: S608
            f"VALUES ({', '.join('?' for _ in INTERVAL_COLUMNS)})"
        )
        try:
            with closing(self._conn.cursor()) as cur:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    cur.execute(insert, values)
                    cur.executemany(
                        "INSERT INTO instrument_flows VALUES (?, ?, ?, ?, ?)",
                        [(record.site_id, record.start, i, c, micro) for i, c, micro in flows],
                    )
                    cur.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back already (a full disk at COMMIT does):
                    # a second ROLLBACK would replace the cause with "no transaction".
                    if self._conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            cur.execute("ROLLBACK")
                    raise
        except sqlite3.IntegrityError as exc:
            raise LedgerError(
                f"interval {iso(record.start)} of site {record.site_id}: {exc}"
            ) from None
        except sqlite3.Error as exc:
            raise LedgerError(
                f"{self.path}: interval {iso(record.start)}..{iso(record.end)} of site "
                f"{record.site_id} not written: {_reason(exc)}"
            ) from None
        self._last_end[record.site_id] = record.end

    def records(
        self, site_id: str | None = None, start: EpochS | None = None, end: EpochS | None = None
    ) -> Iterator[IntervalRecord]:
        """Stored intervals in time order, optionally for one site and a window."""
        with self._reading():
            where, args = _window(site_id, start, end)
            flows: dict[tuple[str, float], list[tuple[str, str, float]]] = {}
            for sid, s, inst, comp, micro in self._conn.execute(
                "SELECT site_id, start_s, instrument_id, component, micro_usd "  # noqa: S608
                f"FROM instrument_flows{where}"
                " ORDER BY site_id, start_s, instrument_id, component",
                args,
            ):
                flows.setdefault((sid, s), []).append((inst, comp, from_micro_usd(micro)))
            cols = ", ".join(INTERVAL_COLUMNS)
            query = f"SELECT {cols} FROM intervals{where} ORDER BY site_id, start_s"  # noqa: S608
            for row in self._conn.execute(query, args):
                r = dict(zip(INTERVAL_COLUMNS, row, strict=True))
                yield IntervalRecord(
                    site_id=r["site_id"],
                    start=r["start_s"],
                    end=r["end_s"],
                    price_usd_per_mwh=r["price_usd_per_mwh"],
                    price_source=r["price_source"],
                    hashprice_usd_per_ph_day=r["hashprice_usd_per_ph_day"],
                    hashprice_source=r["hashprice_source"],
                    running_mw=r["running_mw"],
                    running_ph=r["running_ph"],
                    nominal_mw=r["nominal_mw"],
                    model_running_mw=tuple(json.loads(r["model_running_mw"])),
                    model_running_ph=tuple(json.loads(r["model_running_ph"])),
                    failsafe=r["failsafe"],
                    components=tuple(
                        from_micro_usd(r[MONEY_COLUMN[c]]) if c in MONEY_COLUMN else r[c]
                        for c in COMPONENTS
                    ),
                    instruments=tuple(flows.get((r["site_id"], r["start_s"]), ())),
                    opportunity_cost_usd_per_mwh=r["opportunity_cost_usd_per_mwh"],
                    miners_running=r["miners_running"],
                    miners_curtailed=r["miners_curtailed"],
                    kind=r["kind"],
                )

    def sites(self) -> list[str]:
        """Site ids present in the ledger."""
        with self._reading():
            return [
                r[0]
                for r in self._conn.execute("SELECT DISTINCT site_id FROM intervals ORDER BY 1")
            ]

    def totals(
        self, site_id: str, start: EpochS | None = None, end: EpochS | None = None
    ) -> dict[str, float]:
        """Sums of every component (and interval count, hours and down hours) for one site;
        money in USD from the exact integer sums (``money_totals``)."""
        counts, energy, money = self._sums(site_id, start, end)
        return counts | energy | {c: from_micro_usd(v) for c, v in money.items()}

    def money_totals(
        self, site_id: str, start: EpochS | None = None, end: EpochS | None = None
    ) -> dict[str, int]:
        """Each money component summed exactly, in micro-dollars, as booked (before any
        restatement: ``restatements.totals`` holds their differences)."""
        return self._sums(site_id, start, end)[2]

    def _sums(
        self, site_id: str, start: EpochS | None, end: EpochS | None
    ) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
        with self._reading():
            where, args = _window(site_id, start, end)
            sums = ", ".join(f"COALESCE(SUM({MONEY_COLUMN.get(c, c)}), 0)" for c in COMPONENTS)
            row = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(end_s - start_s), 0) / 3600.0, "  # noqa: S608
                "COALESCE(SUM(CASE WHEN kind = 'down' THEN end_s - start_s END), 0) / 3600.0, "
                f"{sums} FROM intervals{where}",
                args,
            ).fetchone()
        values = dict(zip(COMPONENTS, row[3:], strict=True))
        counts = {"intervals": int(row[0]), "hours": float(row[1]), "down_hours": float(row[2])}
        energy = {c: float(v) for c, v in values.items() if c not in MONEY_COLUMN}
        return counts, energy, {c: int(v) for c, v in values.items() if c in MONEY_COLUMN}

    def spans(
        self, site_id: str, start: EpochS | None = None, end: EpochS | None = None
    ) -> list[tuple[EpochS, EpochS, bool]]:
        """(start, end, down) of the site's intervals that overlap ``[start, end)``, in time
        order: what coverage reads (it clips them to the range)."""
        with self._reading():
            return [
                (float(a), float(b), kind == "down")
                for a, b, kind in self._conn.execute(
                    "SELECT start_s, end_s, kind FROM intervals WHERE site_id = ? AND end_s > ? "
                    "AND start_s < ? ORDER BY start_s",
                    (
                        site_id,
                        float("-inf") if start is None else start,
                        float("inf") if end is None else end,
                    ),
                )
            ]

    def instrument_totals(
        self, site_id: str, start: EpochS | None = None, end: EpochS | None = None
    ) -> dict[tuple[str, str], float]:
        """Sums per (instrument id, component) for one site, in USD."""
        return {
            k: from_micro_usd(v)
            for k, v in self.instrument_money_totals(site_id, start, end).items()
        }

    def instrument_money_totals(
        self, site_id: str, start: EpochS | None = None, end: EpochS | None = None
    ) -> dict[tuple[str, str], int]:
        """Exact sums per (instrument id, component) for one site, in micro-dollars."""
        with self._reading():
            where, args = _window(site_id, start, end)
            return {
                (inst, comp): int(micro)
                for inst, comp, micro in self._conn.execute(
                    "SELECT instrument_id, component, SUM(micro_usd) "  # noqa: S608
                    f"FROM instrument_flows{where} GROUP BY instrument_id, component ORDER BY 1, 2",
                    args,
                )
            }


def _window(
    site_id: str | None, start: EpochS | None, end: EpochS | None
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    if site_id is not None:
        clauses.append("site_id = ?")
        args.append(site_id)
    if start is not None:
        clauses.append("start_s >= ?")
        args.append(start)
    if end is not None:
        clauses.append("start_s < ?")
        args.append(end)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args
