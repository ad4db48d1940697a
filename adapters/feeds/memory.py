"""The last accepted reading of each live feed, remembered across restarts.

A restart would otherwise forget the price and the hashprice, and the site would sit in
its fail-safe until both are published again (a daily hashprice: up to a day). Each
accepted reading is written, durably and atomically, to ``<state_dir>/readings/<site>/
<kind>.json`` (value, ``observed_at``, source). At start the daemon puts a remembered
reading back into its feed's store while it is younger than the feed's maximum age
(``failsafe.price_max_age_s`` / ``hashprice_max_age_s``), logged ``reading_restored``; the
core then ages it like any reading, so the fail-safe engages when it turns stale. A live
reading newer than it replaces it; an older one (a retained message the broker still holds)
is refused as out of order.
"""

from __future__ import annotations

import math
from pathlib import Path

import structlog

from adapters.feeds.store import LatestStore
from controller.domain import EpochS, Reading, iso
from controller.runtime.durable import read_json, write_json_atomic
from controller.runtime.storage import StorageHealth

_log = structlog.get_logger("hashspark.feeds")

#: Where a site's remembered readings live, under the state directory.
READINGS_DIR = "readings"


class ReadingMemory:
    """Remembers one feed's newest reading in a small JSON file; use as a store listener."""

    def __init__(self, path: Path, feed: str, storage: StorageHealth | None = None) -> None:
        self.path = path
        self.feed = feed
        self.written = 0
        self._failing = False
        self.storage = storage or StorageHealth()

    def __call__(self, reading: Reading) -> None:
        """Write ``reading`` (the signature of a ``LatestStore`` listener)."""
        doc = {
            "feed": self.feed,
            "value": reading.value,
            "observed_at": reading.observed_at,
            "source": reading.source,
        }
        try:
            write_json_atomic(self.path, doc)
        except OSError as exc:  # a full disk must not stop the feed: the reading is in memory
            if not self._failing:
                _log.warning("reading_not_remembered", feed=self.feed, reason=str(exc))
            self._failing = True
            self.storage.failed("readings", exc, logged=True)
            return
        if self._failing:
            _log.info("reading_remembered_again", feed=self.feed)
        self._failing = False
        self.storage.succeeded("readings", logged=True)
        self.written += 1

    def recall(self) -> Reading | None:
        """The remembered reading (None if there is none, or it cannot be read: logged)."""
        try:
            doc = read_json(self.path)
            value, observed_at = float(doc["value"]), float(doc["observed_at"])
            if not (math.isfinite(value) and math.isfinite(observed_at)):
                raise ValueError("value or observed_at is not finite")
            return Reading(value, observed_at, str(doc["source"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _log.warning(
                "reading_not_restored", feed=self.feed, path=str(self.path), reason=str(exc)
            )
            return None

    def restore_into(self, store: LatestStore, now: EpochS, max_age_s: float) -> Reading | None:
        """Put the remembered reading into ``store`` if it is still fresh; the one restored."""
        reading = self.recall()
        if reading is None:
            return None
        age = reading.age_s(now)
        if age >= max_age_s:
            _log.info(
                "reading_not_restored",
                feed=self.feed,
                reason="older than its max age",
                value=reading.value,
                observed_at=iso(reading.observed_at),
                age_s=round(age, 3),
                max_age_s=max_age_s,
            )
            return None
        if not store.restore(reading, now):
            _log.warning(
                "reading_not_restored",
                feed=self.feed,
                reason="from the future, or a reading is already held",
                observed_at=iso(reading.observed_at),
            )
            return None
        _log.info(
            "reading_restored",
            feed=self.feed,
            value=reading.value,
            observed_at=iso(reading.observed_at),
            age_s=round(age, 3),
            max_age_s=max_age_s,
        )
        return reading
