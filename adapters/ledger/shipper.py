"""Copy a site's ledger to the central one, exactly once per entry, whatever goes away.

The site's SQLite ledger is the source of truth; what has been acknowledged is a watermark
kept beside it (``central-ship.json`` in the state directory: per site, the start of the
last interval the central ledger committed; the last restatement shipped, its local
``restatement_id``; and which central ledger that was). A batch is one PostgreSQL
transaction; the watermark moves only after its commit, written atomically. Intervals go
first; a restatement goes once its interval is acknowledged. So:

- the database or the network away mid-batch: the transaction rolls back, the watermark
  stays, the batch is sent again when it is back;
- the shipper killed between the commit and the watermark: the batch is sent again, and the
  central ledger recognises every entry (same key, same digest) and changes nothing;
- the same batch shipped twice, by hand or by two shippers: likewise;
- the watermark lost, or a different central ledger: everything is offered again, and only
  what is missing is stored.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from adapters.ledger.central import CentralError, CentralLedger, CentralUnavailableError
from adapters.ledger.journal import Correction, Journal
from controller.runtime.durable import read_json, write_json_atomic
from controller.runtime.retry import Backoff

SHIP_STATE_FILE = "central-ship.json"  #: the watermark, in the state directory


@dataclass
class Watermark:
    """What the central ledger (``central``) has acknowledged."""

    central: str | None = None
    sites: dict[str, float] = field(default_factory=dict)
    corrections: int = 0

    @classmethod
    def load(cls, path: Path) -> Watermark:
        """The watermark at ``path``; a missing one is empty (ship everything)."""
        try:
            data: Any = read_json(path)
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise CentralError(f"{path}: unreadable shipping watermark ({exc})") from None
        return cls(
            central=data.get("central"),
            sites={str(k): float(v) for k, v in data.get("sites", {}).items()},
            corrections=int(data.get("corrections", 0)),
        )

    def save(self, path: Path) -> None:
        """Replace the file, durably and atomically."""
        data = {"central": self.central, "sites": self.sites, "corrections": self.corrections}
        write_json_atomic(path, data)


class Shipper:
    """Ships one state directory's ledger to the central ledger at ``dsn``."""

    def __init__(self, journal: Journal, state_path: Path, dsn: str, batch_size: int) -> None:
        self._journal = journal
        self._state_path = state_path
        self._dsn = dsn
        self._batch = batch_size
        self._central: CentralLedger | None = None
        self._connected_once = False
        self._log = structlog.get_logger("hashspark.ship")

    def close(self) -> None:
        """Close the central connection (the journal is the caller's)."""
        if self._central is not None:
            self._central.close()
            self._central = None

    def connect(self) -> CentralLedger:
        """The open connection, or a new one (schema migrated). The first ever is "at start":
        a connection string that cannot work raises ``CentralError`` there."""
        if self._central is None:
            self._central = CentralLedger.connect(self._dsn, at_start=not self._connected_once)
            self._connected_once = True
        return self._central

    def ship_once(self) -> int:
        """Ship everything not yet acknowledged; how many entries were new to the central
        ledger. Raises ``CentralUnavailableError`` (nothing lost: retry) or ``CentralError``."""
        try:
            return self._ship(self.connect())
        except CentralUnavailableError:
            self.close()  # the connection is gone or going: a fresh one next time
            raise

    def _ship(self, central: CentralLedger) -> int:
        mark = Watermark.load(self._state_path)
        identity = central.identity()
        if mark.central != identity:  # first time, or another central ledger: offer it all
            mark = Watermark(central=identity)
        new = 0
        for site in sorted(self._journal.sites()):
            while entries := self._journal.pending(
                site, mark.sites.get(site, float("-inf")), self._batch
            ):
                runs = self._journal.runs(e.run_id for e in entries)
                stored = central.ship_intervals(site, entries, runs)
                mark.sites[site] = entries[-1].start_s  # acknowledged: committed above
                self._save(mark)
                new += stored
                self._log.debug("shipped", site=site, entries=len(entries), new=stored)
        while corrections := self._acknowledged(
            self._journal.corrections(mark.corrections, self._batch), mark
        ):
            new += central.ship_corrections(corrections)
            mark.corrections = corrections[-1].seq
            self._save(mark)
        return new

    @staticmethod
    def _acknowledged(corrections: list[Correction], mark: Watermark) -> list[Correction]:
        """The corrections, in booking order, up to the first whose interval the central
        ledger has not acknowledged yet (booked and restated since this pass shipped the
        intervals): it and those after it wait for the next pass."""
        for n, c in enumerate(corrections):
            if c.start_s > mark.sites.get(c.site_id, float("-inf")):
                return corrections[:n]
        return corrections

    def _save(self, mark: Watermark) -> None:
        try:
            mark.save(self._state_path)
        except OSError as exc:
            # Not acknowledged locally: the next pass offers the batch again (a no-op there).
            raise CentralError(
                f"{self._state_path}: shipping watermark not written: {exc.strerror}"
            ) from None

    def follow(self, stop: threading.Event, poll_s: float, retry_cap_s: float) -> None:
        """Ship, then again every ``poll_s``, until ``stop``; while the central ledger is
        unreachable, retry with capped, jittered backoff (logged once, recovery once)."""
        backoff = Backoff(min(1.0, retry_cap_s), retry_cap_s)
        down = False
        while not stop.is_set():
            try:
                new = self.ship_once()
            except CentralUnavailableError as exc:
                if not down:
                    self._log.warning("central_unavailable", reason=str(exc))
                    down = True
                stop.wait(backoff.next_delay_s())
                continue
            if down:
                self._log.info("central_recovered", attempts=backoff.attempt)
                down = False
            backoff.reset()
            if new:
                self._log.info("shipped", new=new)
            stop.wait(poll_s)
