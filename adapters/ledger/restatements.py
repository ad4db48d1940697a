"""Restatements in the SQLite ledger: append-only corrections of booked intervals.

One ``restatements`` row per corrected interval and correction: the inputs it now settles on,
the reason, the source, when it was booked, the config version that settled it, and per money
component the integer difference (micro-dollars) to what the interval stood at before; the
per-instrument differences go to ``restatement_flows``. A ``hashspark ledger restate`` call is
one batch, booked in one transaction. Nothing here updates or deletes a row (the schema's
triggers refuse it).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from adapters.ledger.errors import LedgerError
from adapters.ledger.schema import DELTA_COLUMN
from controller.accounting.money import MONEY_COMPONENTS
from controller.accounting.restatement import Amounts, Restated
from controller.domain import EpochS, iso


@dataclass(frozen=True, slots=True)
class Standing:
    """Where an interval stands after its corrections so far."""

    price_usd_per_mwh: float | None  # None: never restated, as booked
    hashprice_usd_per_ph_day: float | None
    deltas: Amounts  # the sum of its corrections' differences


@dataclass(frozen=True, slots=True)
class Batch:
    """One booked set of corrections, as the summary lists it."""

    batch_id: str
    booked_utc: str
    reason: str
    source: str
    intervals: int
    first_start: EpochS
    last_end: EpochS
    net_delta_micro_usd: int


_DELTAS = ", ".join(DELTA_COLUMN[c] for c in MONEY_COMPONENTS)


class Restatements:
    """The restatements of one ledger connection (reads and the one write, ``book``)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path

    def currency(self) -> str:
        """The currency the ledger books (``ledger_meta``)."""
        row = self._conn.execute("SELECT value FROM ledger_meta WHERE key = 'currency'").fetchone()
        return "USD" if row is None else str(row[0])

    def last_id(self) -> int:
        """The latest restatement's id (0: none): ``book`` checks nothing was booked since."""
        return int(
            self._conn.execute(
                "SELECT COALESCE(MAX(restatement_id), 0) FROM restatements"
            ).fetchone()[0]
        )

    def standing(self, site_id: str, starts: Iterable[EpochS]) -> dict[EpochS, Standing]:
        """Each given interval's corrections so far (intervals never corrected are absent)."""
        wanted = set(starts)
        sums = ", ".join(f"SUM({DELTA_COLUMN[c]})" for c in MONEY_COMPONENTS)
        latest: dict[EpochS, tuple[float, float]] = {}
        for start, price, hashprice in self._conn.execute(
            "SELECT start_s, price_usd_per_mwh, hashprice_usd_per_ph_day FROM restatements "
            "WHERE site_id = ? ORDER BY restatement_id",
            (site_id,),
        ):
            latest[start] = (price, hashprice)
        flows: dict[EpochS, dict[tuple[str, str], int]] = {}
        for start, inst, comp, delta in self._conn.execute(
            "SELECT r.start_s, f.instrument_id, f.component, SUM(f.delta_micro_usd) "
            "FROM restatement_flows f JOIN restatements r USING (restatement_id) "
            "WHERE r.site_id = ? GROUP BY 1, 2, 3",
            (site_id,),
        ):
            flows.setdefault(start, {})[inst, comp] = int(delta)
        out: dict[EpochS, Standing] = {}
        for start, *deltas in self._conn.execute(
            f"SELECT start_s, {sums} FROM restatements WHERE site_id = ? "  # noqa: S608
            "GROUP BY start_s",
            (site_id,),
        ):
            if start in wanted:
                price, hashprice = latest[start]
                components = dict(zip(MONEY_COMPONENTS, map(int, deltas), strict=True))
                out[start] = Standing(price, hashprice, Amounts(components, flows.get(start, {})))
        return out

    def book(
        self,
        corrections: Sequence[Restated],
        *,
        reason: str,
        source: str,
        booked_at: EpochS,
        config_version: str,
        planned_after: int,
    ) -> str:
        """Book ``corrections`` as one batch, in one transaction; returns the batch id.

        They were computed against the restatements up to ``planned_after`` (``last_id``);
        if another was booked since, nothing is booked (the differences would be stale)."""
        batch_id = uuid.uuid4().hex[:12]
        insert = (
            "INSERT INTO restatements (batch_id, site_id, start_s, booked_utc, reason, source, "  # noqa: S608
            f"config_version, price_usd_per_mwh, hashprice_usd_per_ph_day, {_DELTAS}) "
            f"VALUES ({', '.join('?' for _ in range(9 + len(MONEY_COMPONENTS)))})"
        )
        try:
            with closing(self._conn.cursor()) as cur:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    if self.last_id() != planned_after:
                        raise LedgerError(
                            f"{self._path}: another restatement was booked while these were "
                            "computed: nothing booked; run it again"
                        )
                    for r in corrections:
                        cur.execute(
                            insert,
                            (
                                batch_id,
                                r.site_id,
                                r.start,
                                iso(booked_at),
                                reason,
                                source,
                                config_version,
                                r.price_usd_per_mwh,
                                r.hashprice_usd_per_ph_day,
                                *(r.deltas.components[c] for c in MONEY_COMPONENTS),
                            ),
                        )
                        rid = cur.lastrowid
                        cur.executemany(
                            "INSERT INTO restatement_flows VALUES (?, ?, ?, ?)",
                            [(rid, i, c, d) for (i, c), d in r.deltas.flows.items() if d],
                        )
                    cur.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        cur.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise LedgerError(f"{self._path}: restatements not booked: {exc}") from None
        return batch_id

    def totals(
        self, site_id: str, start: EpochS | None = None, end: EpochS | None = None
    ) -> dict[str, int]:
        """Each money component's corrections summed (micro-dollars), over the restatements
        of the intervals that start in ``[start, end)``."""
        where, args = _window(site_id, start, end)
        sums = ", ".join(f"COALESCE(SUM({DELTA_COLUMN[c]}), 0)" for c in MONEY_COMPONENTS)
        row = self._conn.execute(f"SELECT {sums} FROM restatements{where}", args).fetchone()  # noqa: S608
        return dict(zip(MONEY_COMPONENTS, map(int, row), strict=True))

    def flow_totals(
        self, site_id: str, start: EpochS | None = None, end: EpochS | None = None
    ) -> dict[tuple[str, str], int]:
        """Each instrument flow's corrections summed (micro-dollars), as ``totals``."""
        where, args = _window(site_id, start, end, "r")
        return {
            (inst, comp): int(delta)
            for inst, comp, delta in self._conn.execute(
                "SELECT f.instrument_id, f.component, SUM(f.delta_micro_usd) "  # noqa: S608
                "FROM restatement_flows f JOIN restatements r USING (restatement_id)"
                f"{where} "
                "GROUP BY 1, 2 ORDER BY 1, 2",
                args,
            )
        }

    def batches(
        self, site_id: str, start: EpochS | None = None, end: EpochS | None = None
    ) -> list[Batch]:
        """The corrections booked for intervals starting in ``[start, end)``, by batch, in the
        order they were booked."""
        where, args = _window(site_id, start, end, "r")
        return [
            Batch(str(b), str(at), str(why), str(src), int(n), float(a), float(z), int(net))
            for b, at, why, src, n, a, z, net in self._conn.execute(
                "SELECT r.batch_id, MIN(r.booked_utc), r.reason, r.source, COUNT(*), "  # noqa: S608
                "MIN(r.start_s), MAX(i.end_s), SUM(r.net_delta_micro_usd) "
                "FROM restatements r JOIN intervals i USING (site_id, start_s)"
                f"{where} "
                "GROUP BY r.batch_id, r.reason, r.source ORDER BY MIN(r.restatement_id)",
                args,
            )
        ]


def _window(
    site_id: str, start: EpochS | None, end: EpochS | None, table: str = ""
) -> tuple[str, list[object]]:
    """A ``WHERE`` on the site and the interval's start (columns of ``table``, if given)."""
    col = f"{table}." if table else ""
    clauses = [f"{col}site_id = ?"]
    args: list[object] = [site_id]
    if start is not None:
        clauses.append(f"{col}start_s >= ?")
        args.append(start)
    if end is not None:
        clauses.append(f"{col}start_s < ?")
        args.append(end)
    return " WHERE " + " AND ".join(clauses), args
