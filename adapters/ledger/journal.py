"""What the shipper reads from a site's SQLite ledger: the one module that knows its columns.

The SQLite ledger stays the site's journal and its source of truth; ``hashspark ledger ship``
only reads it (read-only, beside the daemon writing it in WAL mode) and copies what it has
not had acknowledged yet. Everything the central ledger needs from the local file goes
through here, converted once at this edge: times to UTC datetimes, money and energy to
``Decimal`` (``money``), each entry with a digest of every value it ships, by which the
central ledger tells a resend (changes nothing) from a different entry under the same key
(refused). A change to the local schema is adapted here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.ledger.sqlite import LedgerError, SqliteLedger
from controller.records import COMPONENTS

#: The currency every amount of the local ledger is in (its columns are ``*_usd``).
LEDGER_CURRENCY = "USD"

_INPUTS = (
    "price_usd_per_mwh",
    "hashprice_usd_per_ph_day",
    "opportunity_cost_usd_per_mwh",
    "running_mw",
    "running_ph",
    "nominal_mw",
)
_COLS = ", ".join(
    (
        "site_id, start_s, end_s, kind, run_id, config_version, price_source, hashprice_source",
        "miners_running, miners_curtailed, failsafe",
        *_INPUTS,
        *COMPONENTS,
    )
)
# Fixed column names; the values are bound.
_SELECT = f"SELECT {_COLS} FROM intervals WHERE site_id = ? AND start_s > ?"  # noqa: S608
#: The local corrections table, when the ledger has one: (rowid, site, interval start, id,
#: booked, reason, source, currency, restated inputs as JSON, then each component's difference).
_CORRECTION_COLS = ", ".join(
    (
        "rowid, site_id, start_s, correction_id, booked_utc, reason, source, currency, inputs",
        *COMPONENTS,
    )
)
_CORRECTIONS = f"SELECT {_CORRECTION_COLS} FROM corrections WHERE rowid > ?"  # noqa: S608


def money(value: float | int | None, exponent: int = 0) -> Decimal | None:
    """An amount as the ledger stores it, exactly: a float by its shortest round-trip decimal
    (``0.1`` is ``Decimal('0.1')``, not its binary expansion); an integer count of a minor
    unit scaled by that unit's ``exponent`` (``money(123, -2)`` is ``Decimal('1.23')``)."""
    if value is None:
        return None
    if isinstance(value, int):
        return Decimal(value).scaleb(exponent)
    return Decimal(repr(float(value)))


def _amount(value: float | int) -> Decimal:
    amount = money(value)
    assert amount is not None
    return amount


def utc(epoch_s: float) -> datetime:
    """An epoch second as an aware UTC datetime (PostgreSQL keeps microseconds)."""
    return datetime.fromtimestamp(epoch_s, UTC)


def _digest(values: Iterable[object]) -> str:
    text = json.dumps([v if isinstance(v, int | str) or v is None else str(v) for v in values])
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """One settled interval, as shipped: ``row`` in the central ``intervals`` column order."""

    site_id: str
    start_s: float  #: the local key, the shipper's watermark
    run_id: str
    row: tuple[object, ...]  #: ``CENTRAL_COLUMNS`` less the digest
    flows: tuple[tuple[str, str, Decimal], ...]  #: (instrument id, component, amount)
    digest: str


#: The central ``intervals`` columns a shipped entry fills, in ``Entry.row`` order + digest.
CENTRAL_COLUMNS = (
    "site_id",
    "start_utc",
    "end_utc",
    "kind",
    "run_id",
    "config_version",
    "currency",
    "price_source",
    "hashprice_source",
    "miners_running",
    "miners_curtailed",
    "failsafe",
    *_INPUTS,
    *COMPONENTS,
    "digest",
)


@dataclass(frozen=True, slots=True)
class Correction:
    """One restatement of an interval, as shipped (``row`` in ``CORRECTION_COLUMNS`` order)."""

    seq: int  #: its local order, the shipper's watermark for corrections
    site_id: str
    row: tuple[object, ...]
    digest: str


CORRECTION_COLUMNS = (
    "site_id",
    "start_utc",
    "correction_id",
    "booked_utc",
    "reason",
    "source",
    "currency",
    "inputs",
    *COMPONENTS,
    "digest",
)


@dataclass(frozen=True, slots=True)
class Run:
    """A daemon run the shipped intervals name."""

    run_id: str
    started_utc: str
    config_version: str


class Journal:
    """A site ledger opened read-only for shipping. Open with ``Journal.open(path)``."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open ``path`` read-only, after the ledger's own checks (damaged, foreign, missing)."""
        SqliteLedger.open_readonly(path).close()
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
        return cls(conn, path)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def _query(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: {exc}") from None

    def sites(self) -> list[str]:
        """Site ids with intervals in the ledger."""
        return [str(r[0]) for r in self._query("SELECT DISTINCT site_id FROM intervals", ())]

    def pending(self, site_id: str, after_start_s: float, limit: int) -> list[Entry]:
        """Up to ``limit`` of the site's intervals starting after ``after_start_s``, in order."""
        rows = self._query(_SELECT + " ORDER BY start_s LIMIT ?", (site_id, after_start_s, limit))
        flows: dict[float, list[tuple[str, str, Decimal]]] = {}
        if rows:
            for start_s, inst, comp, usd in self._query(
                "SELECT start_s, instrument_id, component, usd FROM instrument_flows "
                "WHERE site_id = ? AND start_s > ? AND start_s <= ? "
                "ORDER BY start_s, instrument_id, component",
                (site_id, after_start_s, rows[-1][1]),
            ):
                flows.setdefault(float(start_s), []).append((str(inst), str(comp), _amount(usd)))
        return [self._entry(row, tuple(flows.get(float(row[1]), ()))) for row in rows]

    @staticmethod
    def _entry(row: tuple[Any, ...], flows: tuple[tuple[str, str, Decimal], ...]) -> Entry:
        site_id, start_s, end_s, kind, run_id, version, p_src, hp_src, running, curtailed = row[:10]
        failsafe = row[10]
        amounts = [money(v) for v in row[11:]]
        values = (
            site_id,
            utc(float(start_s)),
            utc(float(end_s)),
            kind,
            run_id,
            version,
            LEDGER_CURRENCY,
            p_src,
            hp_src,
            running,
            curtailed,
            failsafe,
            *amounts,
        )
        digest = _digest((*values, *(x for flow in flows for x in flow)))
        return Entry(str(site_id), float(start_s), str(run_id), values, flows, digest)

    def runs(self, run_ids: Iterable[str]) -> list[Run]:
        """The runs named (each at most once)."""
        wanted = sorted(set(run_ids))
        if not wanted:
            return []
        marks = ", ".join("?" for _ in wanted)
        rows = self._query(
            f"SELECT run_id, started_utc, config_version FROM runs WHERE run_id IN ({marks})",  # noqa: S608
            tuple(wanted),
        )
        return [Run(str(a), str(b), str(c)) for a, b, c in rows]

    def corrections(self, after_seq: int, limit: int) -> list[Correction]:
        """Restatements booked after ``after_seq``, in booking order (none while the ledger
        has no corrections table)."""
        exists = self._query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'corrections'", ()
        )
        if not exists:
            return []
        out: list[Correction] = []
        for row in self._query(_CORRECTIONS + " ORDER BY rowid LIMIT ?", (after_seq, limit)):
            seq, site_id, start_s, cid, booked, reason, source, currency, inputs = row[:9]
            values = (
                site_id,
                utc(float(start_s)),
                cid,
                datetime.fromisoformat(str(booked).replace("Z", "+00:00")),
                reason,
                source,
                currency,
                json.loads(str(inputs or "{}")),
                *(money(v) for v in row[9:]),
            )
            digest = _digest((*values[:7], json.dumps(values[7], sort_keys=True), *values[8:]))
            out.append(Correction(int(seq), str(site_id), values, digest))
        return out
