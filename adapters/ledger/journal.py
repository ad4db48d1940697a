"""What the shipper reads from a site's SQLite ledger: the one module that knows its columns.

Over 300 lines: intervals, runs and restatements are read and converted here, once, so the
mapping of the local schema to the central one stays in one place.

The SQLite ledger stays the site's journal and its source of truth; ``hashspark ledger ship``
only reads it (read-only, beside the daemon writing it in WAL mode) and copies what it has
not had acknowledged yet. Everything the central ledger needs from the local file goes
through here, converted once at this edge: times to UTC datetimes; money, booked as integer
micro-dollars (schema version 3), to ``Decimal`` dollars exactly (``money(n, -6)``: the
central ``NUMERIC`` sums equal the local integer sums to the micro-dollar); energy and the
inputs, stored as REAL, to the shortest decimal that reads back as the stored float. Each
entry carries a digest of every value it ships, by which the central ledger tells a resend
(changes nothing) from a different entry under the same key (refused). The currency and the
money unit are the ledger's own (``ledger_meta``). A change to the local schema is adapted
here and nowhere else.

Only a version 3 ledger is shipped. An older one is refused in one line (the daemon migrates
it when it next opens it); the shipper never migrates a file the daemon may have open, and
does not ship amounts the file itself does not hold yet.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.ledger.schema import (
    DELTA_COLUMN,
    INPUT_COLUMNS,
    MONEY_COLUMN,
    SCHEMA_VERSION,
    stored_version,
)
from adapters.ledger.sqlite import LedgerError, SqliteLedger
from controller.accounting.money import MONEY_COMPONENTS
from controller.records import COMPONENTS

#: The energy components: REAL MWh in the local ledger, never restated.
ENERGY_COMPONENTS = tuple(c for c in COMPONENTS if c not in MONEY_COMPONENTS)
_COLS = ", ".join(
    (
        "site_id, start_s, end_s, kind, run_id, config_version, price_source, hashprice_source",
        "miners_running, miners_curtailed, failsafe",
        *INPUT_COLUMNS,
        *(MONEY_COLUMN.get(c, c) for c in COMPONENTS),
    )
)
# Fixed column names; the values are bound.
_SELECT = f"SELECT {_COLS} FROM intervals WHERE site_id = ? AND start_s > ?"  # noqa: S608
#: The local restatements: (id, site, interval start, batch, booked, reason, source, config
#: version, restated price and hashprice, then each money component's difference).
_RESTATEMENT_COLS = ", ".join(
    (
        "restatement_id, site_id, start_s, batch_id, booked_utc, reason, source, config_version",
        "price_usd_per_mwh, hashprice_usd_per_ph_day",
        *(DELTA_COLUMN[c] for c in MONEY_COMPONENTS),
    )
)
_RESTATEMENTS = f"SELECT {_RESTATEMENT_COLS} FROM restatements WHERE restatement_id > ?"  # noqa: S608
_CURRENCY = re.compile(r"[A-Z]{3}")


def money(value: float | int | None, exponent: int = 0) -> Decimal | None:
    """An amount as the ledger stores it, exactly: an integer count of a minor unit scaled by
    that unit's ``exponent`` (``money(123, -2)`` is ``Decimal('1.23')``, ``money(7, -6)``
    is ``Decimal('0.000007')``); a float by its shortest round-trip decimal (``0.1`` is
    ``Decimal('0.1')``, not its binary expansion)."""
    if value is None:
        return None
    if isinstance(value, int):
        return Decimal(value).scaleb(exponent)
    return Decimal(repr(float(value)))


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
    *INPUT_COLUMNS,
    *COMPONENTS,
    "digest",
)


@dataclass(frozen=True, slots=True)
class Correction:
    """One restatement of an interval, as shipped (``row`` in ``CORRECTION_COLUMNS`` order):
    a row of the local ``restatements``, its ``restatement_flows`` as ``flows``."""

    seq: int  #: its local ``restatement_id``, the shipper's watermark for corrections
    site_id: str
    start_s: float  #: the corrected interval's local key
    row: tuple[object, ...]
    flows: tuple[tuple[str, str, Decimal], ...]  #: (instrument id, component, difference)
    digest: str


#: The central ``corrections`` columns a shipped correction fills (``correction_id`` is the
#: local batch id: one ``ledger restate`` call), in ``Correction.row`` order + digest.
CORRECTION_COLUMNS = (
    "site_id",
    "start_utc",
    "correction_id",
    "booked_utc",
    "reason",
    "source",
    "currency",
    "inputs",
    "config_version",
    "restatement_id",
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

    def __init__(self, conn: sqlite3.Connection, path: Path, currency: str, exponent: int) -> None:
        self._conn = conn
        self.path = path
        self.currency = currency  #: what every amount is in (``ledger_meta.currency``)
        self._exp = exponent  #: the stored money unit's power of ten (-6: micro-dollars)

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open ``path`` read-only, after the ledger's own checks (damaged, foreign, missing);
        refuse, in one line, a ledger at another schema version or with a money unit or
        currency the central ledger cannot take."""
        SqliteLedger.open_readonly(path).close()
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
        try:
            currency, exponent = _meta(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, currency, exponent)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def _query(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: {exc}") from None

    def _money(self, stored: int) -> Decimal:
        return Decimal(stored).scaleb(self._exp)

    def sites(self) -> list[str]:
        """Site ids with intervals in the ledger."""
        return [str(r[0]) for r in self._query("SELECT DISTINCT site_id FROM intervals", ())]

    def pending(self, site_id: str, after_start_s: float, limit: int) -> list[Entry]:
        """Up to ``limit`` of the site's intervals starting after ``after_start_s``, in order."""
        rows = self._query(_SELECT + " ORDER BY start_s LIMIT ?", (site_id, after_start_s, limit))
        flows: dict[float, list[tuple[str, str, Decimal]]] = {}
        if rows:
            for start_s, inst, comp, micro in self._query(
                "SELECT start_s, instrument_id, component, micro_usd FROM instrument_flows "
                "WHERE site_id = ? AND start_s > ? AND start_s <= ? "
                "ORDER BY start_s, instrument_id, component",
                (site_id, after_start_s, rows[-1][1]),
            ):
                flows.setdefault(float(start_s), []).append(
                    (str(inst), str(comp), self._money(int(micro)))
                )
        return [self._entry(row, tuple(flows.get(float(row[1]), ()))) for row in rows]

    def _entry(self, row: tuple[Any, ...], flows: tuple[tuple[str, str, Decimal], ...]) -> Entry:
        site_id, start_s, end_s, kind, run_id, version, p_src, hp_src, running, curtailed = row[:10]
        failsafe = row[10]
        inputs = [money(v) for v in row[11 : 11 + len(INPUT_COLUMNS)]]
        amounts = [
            self._money(int(v)) if name in MONEY_COLUMN else money(float(v))
            for name, v in zip(COMPONENTS, row[11 + len(INPUT_COLUMNS) :], strict=True)
        ]
        values = (
            site_id,
            utc(float(start_s)),
            utc(float(end_s)),
            kind,
            run_id,
            version,
            self.currency,
            p_src,
            hp_src,
            running,
            curtailed,
            failsafe,
            *inputs,
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
        """Restatements booked after ``after_seq`` (a ``restatement_id``), in booking order,
        each with its per-instrument differences. The energy components are never restated
        (a restatement re-settles the booked energy on new prices): their differences are 0."""
        rows = self._query(_RESTATEMENTS + " ORDER BY restatement_id LIMIT ?", (after_seq, limit))
        flows: dict[int, list[tuple[str, str, Decimal]]] = {}
        if rows:
            for rid, inst, comp, micro in self._query(
                "SELECT restatement_id, instrument_id, component, delta_micro_usd "
                "FROM restatement_flows WHERE restatement_id > ? AND restatement_id <= ? "
                "ORDER BY restatement_id, instrument_id, component",
                (after_seq, rows[-1][0]),
            ):
                flows.setdefault(int(rid), []).append(
                    (str(inst), str(comp), self._money(int(micro)))
                )
        out: list[Correction] = []
        for row in rows:
            rid, site_id, start_s, batch, booked, reason, source, version, price, hp = row[:10]
            deltas = dict(zip(MONEY_COMPONENTS, row[10:], strict=True))
            inputs = {"price_usd_per_mwh": price, "hashprice_usd_per_ph_day": hp}
            values = (
                site_id,
                utc(float(start_s)),
                batch,
                datetime.fromisoformat(str(booked).replace("Z", "+00:00")),
                reason,
                source,
                self.currency,
                inputs,
                version,
                int(rid),
                *(self._money(int(deltas[c])) if c in deltas else Decimal(0) for c in COMPONENTS),
            )
            own = tuple(flows.get(int(rid), ()))
            digest = _digest(
                (
                    *values[:7],
                    json.dumps(inputs, sort_keys=True),
                    *values[8:],
                    *(x for flow in own for x in flow),
                )
            )
            out.append(Correction(int(rid), str(site_id), float(start_s), values, own, digest))
        return out


def _meta(conn: sqlite3.Connection, path: Path) -> tuple[str, int]:
    """The ledger's currency and its money unit's power of ten, from ``ledger_meta``."""
    try:
        version = stored_version(conn)
        if version != SCHEMA_VERSION:
            newer = version > SCHEMA_VERSION
            raise LedgerError(
                f"{path}: ledger schema version {version}, the shipper reads version "
                f"{SCHEMA_VERSION} only: "
                + (
                    "ship it with the hashspark that wrote it"
                    if newer
                    else "start this hashspark's daemon on it (it migrates the ledger when it "
                    "opens it), then ship"
                )
            )
        meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM ledger_meta")}
    except sqlite3.Error as exc:
        raise LedgerError(f"{path}: {exc}") from None
    currency = meta.get("currency", "")
    if not _CURRENCY.fullmatch(currency):
        raise LedgerError(f"{path}: ledger_meta.currency {currency!r} is not an ISO 4217 code")
    unit = meta.get("micro_per_unit", "")
    if not re.fullmatch(r"10*", unit):
        raise LedgerError(
            f"{path}: ledger_meta.micro_per_unit {unit!r} is not a power of ten: "
            "the amounts cannot be converted exactly"
        )
    return currency, -(len(unit) - 1)
