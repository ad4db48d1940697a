"""The central PostgreSQL ledger: every site's books in one database.

Over 300 lines: its writes and its multi-site reads share the connection, the mapping of
driver errors to the two kinds below, and the schema's column lists.

Sites write it only through ``ship_intervals`` and ``ship_corrections``, which are
idempotent: an entry's key is (site, interval start) (and the correction id for a
correction); a key already there with the same digest is a resend and changes nothing, a key
already there with a different digest is refused (the books are append-only: a change is a
correction). Readers (``ledger summary|export --central``, Grafana) use the query methods
and the ``finance_daily`` view.

Errors come out as two kinds: ``CentralError`` (a ``LedgerError``: the command exits 2 with
one line) for what waiting will not fix (a wrong password, a missing database, a malformed
connection string, a conflicting entry), and ``CentralUnavailableError`` for what it may (the
server down or restarting, the network away): the shipper waits and retries those. The
password never appears in either: messages name ``user@host:port/db`` and are scrubbed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from adapters.ledger.journal import CENTRAL_COLUMNS, CORRECTION_COLUMNS, Correction, Entry, Run
from adapters.ledger.migrate import migrate
from adapters.ledger.sqlite import LedgerError
from controller.records import COMPONENTS
from controller.runtime.config_base import one_line
from controller.runtime.redact import register_secret, register_url, scrub

#: Words of libpq's and the server's messages for what retrying will not fix.
_PERMANENT = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "invalid",
    "permission denied",
    "password is missing",
    "no password supplied",
)
#: ... and, at start, for what it may: the server down, restarting, or out of slots.
_TRANSIENT_AT_START = (
    "Connection refused",
    "timeout expired",
    "the database system is",
    "too many clients",
    "Connection reset",
    "server closed the connection",
)


@dataclass(frozen=True, slots=True)
class CorrectionBatch:
    """One site's batch of corrections (one ``ledger restate`` call), as the summary lists it."""

    site_id: str
    correction_id: str
    booked_utc: datetime
    reason: str
    source: str
    intervals: int
    first_start: datetime
    last_end: datetime
    net_usd: Decimal
    currency: str


class CentralError(LedgerError):
    """The central ledger cannot be used as configured, or refused an entry (permanent)."""


class CentralUnavailableError(Exception):
    """The central ledger cannot be reached now (the server or the network is away)."""


def target(dsn: str) -> str:
    """``user@host:port/dbname`` of a connection string: where, never the password."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "an unparsable connection string"
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"{user}{info.get('host') or 'localhost'}{port}/{info.get('dbname') or ''}"


def register_dsn(dsn: str) -> None:
    """Mask the connection string, its password (URI or key=value) and its URI credentials."""
    register_secret(dsn)
    if "://" in dsn:
        register_url(dsn)
    with contextlib.suppress(psycopg.Error):  # refused by connect() with its own message
        register_secret(str(conninfo_to_dict(dsn).get("password") or "") or None)


def _reason(exc: BaseException) -> str:
    """The driver's message on one line, scrubbed, without libpq's "connection failed:"."""
    text = " ".join(str(exc).split()).removeprefix("connection failed: ")
    return scrub(one_line(text)) or type(exc).__name__


def _classify(exc: psycopg.Error, where: str, at_start: bool) -> Exception:
    reason = _reason(exc)
    transient = isinstance(exc, psycopg.OperationalError) and not any(
        p in reason for p in _PERMANENT
    )
    if transient and (not at_start or any(t in reason for t in _TRANSIENT_AT_START)):
        return CentralUnavailableError(f"central ledger {where} unreachable: {reason}")
    return CentralError(f"central ledger {where}: {reason}")


class CentralLedger:
    """A connection to the central ledger. Open with ``CentralLedger.connect(dsn)``."""

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]], where: str) -> None:
        self._conn = conn
        self.where = where

    @classmethod
    def connect(
        cls, dsn: str, *, at_start: bool = True, migrate_schema: bool = True
    ) -> CentralLedger:
        """Connect and bring the schema up to date; raises ``CentralError`` (fix the config)
        or ``CentralUnavailableError`` (wait and retry). ``at_start``: a host that does not
        resolve counts as a wrong connection string rather than a network away."""
        register_dsn(dsn)
        where = target(dsn)
        try:
            conninfo_to_dict(dsn)
        except psycopg.Error:
            raise CentralError(
                "central ledger connection string is malformed (libpq cannot parse it): write "
                "a URI postgresql://user@host:port/dbname or key=value pairs"
            ) from None
        try:
            conn = psycopg.connect(
                dsn, connect_timeout=10, application_name="hashspark", autocommit=True
            )
        except psycopg.Error as exc:
            raise _classify(exc, where, at_start) from None
        ledger = cls(conn, where)
        with ledger._errors():
            # Times come back in UTC whatever the server's TimeZone: reports print them with Z.
            conn.execute("SET TIME ZONE 'UTC'")
            if migrate_schema:
                migrate(conn)
        return ledger

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise _classify(exc, self.where, at_start=False) from None

    def identity(self) -> str:
        """This central ledger's id (a shipper pointed at another one starts over)."""
        with self._errors():
            row = self._conn.execute("SELECT id::text FROM ledger_identity").fetchone()
        assert row is not None
        return str(row[0])

    def ship_intervals(self, site_id: str, entries: Sequence[Entry], runs: Sequence[Run]) -> int:
        """Store one site's entries (and the runs they name) in one transaction; how many
        were new. A resend is skipped; an entry whose key holds different values is refused."""
        if not entries:
            return 0
        cols = ", ".join(CENTRAL_COLUMNS)
        marks = ", ".join(["%s"] * len(CENTRAL_COLUMNS))
        with self._errors(), self._conn.transaction(), self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO runs (run_id, started_utc, config_version) VALUES (%s, %s, %s) "
                "ON CONFLICT (run_id) DO NOTHING",
                [(r.run_id, r.started_utc, r.config_version) for r in runs],
            )
            have = dict(
                cur.execute(
                    "SELECT start_utc, digest FROM intervals "
                    "WHERE site_id = %s AND start_utc = ANY(%s)",
                    (site_id, [e.row[1] for e in entries]),
                ).fetchall()
            )
            for e in entries:
                if e.row[1] in have and have[e.row[1]] != e.digest:
                    raise CentralError(
                        f"site {site_id} interval {e.row[1]:%Y-%m-%dT%H:%M:%SZ} is already in "
                        f"the central ledger ({self.where}) with different values: refused "
                        "(the books are append-only; a change is a correction)"
                    )
            new = [e for e in entries if e.row[1] not in have]
            cur.executemany(
                f"INSERT INTO intervals ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING",  # noqa: S608
                [(*e.row, e.digest) for e in new],
            )
            cur.executemany(
                "INSERT INTO instrument_flows VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(site_id, e.row[1], i, c, usd) for e in new for i, c, usd in e.flows],
            )
        return len(new)

    def ship_corrections(self, corrections: Sequence[Correction]) -> int:
        """Store restatements (and their flows) in one transaction, as ``ship_intervals``
        does: one look-up of the keys already there, then the new ones; how many were new."""
        if not corrections:
            return 0
        cols = ", ".join(CORRECTION_COLUMNS)
        marks = ", ".join(["%s"] * len(CORRECTION_COLUMNS))
        keys = [list(column) for column in zip(*(c.row[:3] for c in corrections), strict=True)]
        with self._errors(), self._conn.transaction(), self._conn.cursor() as cur:
            seen = {
                (str(s), at, str(cid)): str(d)
                for s, at, cid, d in cur.execute(
                    "SELECT site_id, start_utc, correction_id, digest FROM corrections "
                    "WHERE (site_id, start_utc, correction_id) IN "
                    "(SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[]))",
                    keys,
                )
            }
            new: list[Correction] = []
            for c in corrections:
                key = (c.site_id, c.row[1], str(c.row[2]))
                if key not in seen:  # new (a resend of one already there is skipped)
                    seen[key] = c.digest
                    new.append(c)
                elif seen[key] != c.digest:
                    raise CentralError(
                        f"site {c.site_id} correction {c.row[2]} of interval "
                        f"{c.row[1]:%Y-%m-%dT%H:%M:%SZ} is already in the central ledger "
                        f"({self.where}) with different values: refused"
                    )
            cur.executemany(
                f"INSERT INTO corrections ({cols}) VALUES ({marks})",  # noqa: S608
                [(*c.row[:7], Jsonb(c.row[7]), *c.row[8:], c.digest) for c in new],
            )
            cur.executemany(
                "INSERT INTO correction_flows VALUES (%s, %s, %s, %s, %s, %s)",
                [(*c.row[:3], inst, comp, usd) for c in new for inst, comp, usd in c.flows],
            )
        return len(new)

    # Reading: the multi-site views.

    def _window(
        self, site: str | None, start: datetime | None, end: datetime | None
    ) -> tuple[str, list[object]]:
        clauses, args = ["TRUE"], list[object]()
        for sql, value in (("site_id = %s", site), ("start_utc >= %s", start)):
            if value is not None:
                clauses.append(sql)
                args.append(value)
        if end is not None:
            clauses.append("start_utc < %s")
            args.append(end)
        return " AND ".join(clauses), args

    def sites(self) -> list[str]:
        """Site ids with intervals in the central ledger."""
        with self._errors():
            rows = self._conn.execute("SELECT DISTINCT site_id FROM intervals ORDER BY 1")
            return [str(r[0]) for r in rows]

    def totals(
        self, site: str | None, start: datetime | None, end: datetime | None
    ) -> dict[str, Decimal]:
        """Interval count, hours and every component's exact sum (as first booked)."""
        hours = "coalesce(sum(extract(epoch FROM end_utc - start_utc)), 0) / 3600"
        return self._sums("intervals", {"intervals": "count(*)", "hours": hours}, site, start, end)

    def correction_totals(
        self, site: str | None, start: datetime | None, end: datetime | None
    ) -> dict[str, Decimal]:
        """Count and every component's exact sum of the corrections of intervals in range."""
        return self._sums("corrections", {"corrections": "count(*)"}, site, start, end)

    def _sums(
        self,
        table: str,
        first: dict[str, str],
        site: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> dict[str, Decimal]:
        """``table``'s rows in range: the ``first`` figures (name: SQL expression), then every
        component's exact sum."""
        where, args = self._window(site, start, end)
        sums = ", ".join([*first.values(), *(f"coalesce(sum({c}), 0)" for c in COMPONENTS)])
        with self._errors():
            row = self._conn.execute(
                f"SELECT {sums} FROM {table} WHERE {where}",  # noqa: S608
                args,
            ).fetchone()
        assert row is not None
        return {n: Decimal(v) for n, v in zip((*first, *COMPONENTS), row, strict=True)}

    def corrections(
        self, site: str | None, start: datetime | None, end: datetime | None
    ) -> list[CorrectionBatch]:
        """The corrections of intervals in range, one per site and batch (a ``ledger
        restate`` call), in the order they were booked."""
        where, args = self._window(site, start, end)
        where = where.replace("site_id", "c.site_id").replace("start_utc", "c.start_utc")
        with self._errors():
            rows = self._conn.execute(
                "SELECT c.site_id, c.correction_id, min(c.booked_utc), c.reason, c.source, "  # noqa: S608
                "count(*), min(c.start_utc), max(i.end_utc), sum(c.net_usd), min(c.currency) "
                "FROM corrections c JOIN intervals i USING (site_id, start_utc) "
                f"WHERE {where} GROUP BY c.site_id, c.correction_id, c.reason, c.source "
                "ORDER BY 3, 1, min(c.restatement_id), 2",
                args,
            ).fetchall()
        return [CorrectionBatch(*row) for row in rows]

    def correction_flow_totals(
        self, site: str | None, start: datetime | None, end: datetime | None
    ) -> dict[tuple[str, str], Decimal]:
        """The corrections' differences per (instrument id, component)."""
        return self._flow_sums("correction_flows", site, start, end)

    def instrument_totals(
        self, site: str | None, start: datetime | None, end: datetime | None
    ) -> dict[tuple[str, str], Decimal]:
        """Sums per (instrument id, component)."""
        return self._flow_sums("instrument_flows", site, start, end)

    def _flow_sums(
        self, table: str, site: str | None, start: datetime | None, end: datetime | None
    ) -> dict[tuple[str, str], Decimal]:
        """``table``'s (a flows table: ``instrument_flows`` or ``correction_flows``) sums of
        ``usd`` per (instrument id, component) in range."""
        where, args = self._window(site, start, end)
        with self._errors():
            rows = self._conn.execute(
                f"SELECT instrument_id, component, sum(usd) FROM {table} "  # noqa: S608
                f"WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2",
                args,
            ).fetchall()
        return {(str(i), str(c)): Decimal(v) for i, c, v in rows}

    def rows(
        self, site: str | None, start: datetime | None, end: datetime | None
    ) -> list[tuple[Any, ...]]:
        """Every interval then every correction in range, for CSV: (site, start, end, kind,
        correction id, reason, inputs..., components...)."""
        where, args = self._window(site, start, end)
        comps = ", ".join(COMPONENTS)
        with self._errors():
            return self._conn.execute(
                "SELECT site_id, start_utc, end_utc, kind, '', '', currency, price_usd_per_mwh, "  # noqa: S608
                f"hashprice_usd_per_ph_day, running_mw, {comps} FROM intervals WHERE {where} "
                "UNION ALL SELECT c.site_id, c.start_utc, i.end_utc, 'correction', "
                "c.correction_id, c.reason, c.currency, (c.inputs->>'price_usd_per_mwh')::numeric, "
                "(c.inputs->>'hashprice_usd_per_ph_day')::numeric, NULL, "
                + ", ".join(f"c.{x}" for x in COMPONENTS)
                + " FROM corrections c JOIN intervals i USING (site_id, start_utc) WHERE "
                + where.replace("site_id", "c.site_id").replace("start_utc", "c.start_utc")
                + " ORDER BY 1, 2, 4 DESC, 5",
                args + args,
            ).fetchall()
