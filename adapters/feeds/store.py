"""Latest-reading store: the last good value of a live feed, and the count of what it refused.

Every live adapter (MQTT, HTTP pollers) parses a payload into a candidate reading and offers
it here. The store keeps the newest accepted reading with its age, refuses duplicates,
out-of-order readings and readings from the future, counts every refusal by feed and reason
in a plain ``FeedStats`` object (the metrics layer exports it), and wakes whoever waits for
news: an ``asyncio.Event`` per store and any number of callbacks (the recorder, the site loop).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

from controller.domain import EpochS, Reading, iso

_log = structlog.get_logger("hashspark.feeds")

#: The only times a reading may carry: 2000-01-01 up to 2100-01-01 UTC. Anything else is a
#: publisher's bug (year 0, year 10000, milliseconds taken for seconds), and is refused
#: before any arithmetic or datetime conversion downstream can fail on it.
EARLIEST_EPOCH_S = 946_684_800.0
LATEST_EPOCH_S = 4_102_444_800.0

#: A rejection of the same (feed, reason) is logged at most once per this many seconds.
REJECTION_LOG_INTERVAL_S = 60.0


class RejectReason(StrEnum):
    """Why a payload or reading never reached the decision."""

    MALFORMED = "malformed"  # not JSON, wrong shape, wrong types, unknown keys
    NOT_FINITE = "not_finite"  # NaN or infinity
    OUT_OF_RANGE = "out_of_range"  # beyond the configured magnitude bound or sign
    DUPLICATE = "duplicate"  # same timestamp as the reading already held
    OUT_OF_ORDER = "out_of_order"  # older than the reading already held
    FUTURE = "future"  # timestamp further ahead of our clock than the allowed skew
    CURRENCY = "currency"  # a price in another currency than the site's price_currency
    NO_RATE = "no_rate"  # no exchange rate (or only a stale one) at the reading's time


@dataclass(slots=True)
class FeedStats:
    """Counters of accepted and rejected readings, by feed and reason (plain data)."""

    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[tuple[str, RejectReason]] = field(default_factory=Counter)

    def count_accepted(self, feed: str) -> None:
        """One more accepted reading for ``feed``."""
        self.accepted[feed] += 1

    def count_rejected(self, feed: str, reason: RejectReason) -> None:
        """One more rejection of ``feed`` for ``reason``."""
        self.rejected[(feed, reason)] += 1

    def rejected_total(self, feed: str | None = None) -> int:
        """All rejections, or those of one feed."""
        return sum(n for (f, _), n in self.rejected.items() if feed is None or f == feed)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The reading is now the store's latest."""

    reading: Reading


@dataclass(frozen=True, slots=True)
class Rejected:
    """The payload or reading was refused; nothing changed."""

    reason: RejectReason
    detail: str


Outcome = Accepted | Rejected


def check_time(observed_at: EpochS) -> Rejected | None:
    """Why ``observed_at`` can be no reading's time (not finite, outside 2000..2100), or None."""
    if not math.isfinite(observed_at):
        return Rejected(RejectReason.NOT_FINITE, f"timestamp {observed_at!r} is not finite")
    if observed_at > LATEST_EPOCH_S:
        return Rejected(RejectReason.FUTURE, f"timestamp {iso(observed_at)} is after 2100")
    if observed_at < EARLIEST_EPOCH_S:
        return Rejected(RejectReason.OUT_OF_RANGE, f"timestamp {iso(observed_at)} is before 2000")
    return None


class LatestStore:
    """The newest accepted reading of one feed, with rejection accounting and wake-ups."""

    def __init__(
        self,
        feed: str,
        stats: FeedStats,
        *,
        max_future_s: float = 300.0,
    ) -> None:
        self.feed = feed
        self.stats = stats
        self._max_future_s = max_future_s
        self._latest: Reading | None = None
        #: The newest accepted reading's own timestamp (its ``observed_at`` is capped at the
        #: time it arrived); a redelivery of it is a duplicate.
        self._latest_stamp: EpochS | None = None
        self._listeners: list[Callable[[Reading], None]] = []
        self._last_logged: dict[RejectReason, float] = {}
        self._suppressed: Counter[RejectReason] = Counter()
        #: Set on every accepted reading; the waiter clears it.
        self.updated = asyncio.Event()

    def add_listener(self, callback: Callable[[Reading], None]) -> None:
        """Call ``callback(reading)`` synchronously on every accepted reading."""
        self._listeners.append(callback)

    @property
    def current(self) -> Reading | None:
        """The newest accepted reading, whatever its age."""
        return self._latest

    def age_s(self, now: EpochS) -> float | None:
        """Seconds since the newest accepted reading was observed (None if there is none)."""
        return None if self._latest is None else self._latest.age_s(now)

    def restore(self, reading: Reading, now: EpochS) -> bool:
        """Hold ``reading`` (remembered from an earlier run) unless a reading is already held,
        it claims to come from the future or its time is impossible; not counted, not passed
        to listeners."""
        if self._latest is not None or check_time(reading.observed_at) is not None:
            return False
        if reading.observed_at > now + self._max_future_s or not math.isfinite(reading.value):
            return False
        self._latest = reading
        self._latest_stamp = reading.observed_at
        return True

    def offer(self, value: float, observed_at: EpochS, source: str, now: EpochS) -> Outcome:
        """Accept the reading if it is finite, newer than the last one and not from the future.

        A reading stamped ahead of the clock (within the allowed skew) is held as observed
        when it arrived: it cannot push the newest time ahead of the clock, so the valid
        readings that follow it are not taken for out-of-order ones.
        """
        if not math.isfinite(value):
            return self.reject(RejectReason.NOT_FINITE, f"value {value!r} at {observed_at!r}")
        bad_time = check_time(observed_at)
        if bad_time is not None:
            return self.reject(bad_time.reason, bad_time.detail)
        if observed_at > now + self._max_future_s:
            return self.reject(
                RejectReason.FUTURE,
                f"observed at {iso(observed_at)}, {observed_at - now:.0f} s ahead of the clock",
            )
        last = self._latest
        if last is not None and (
            observed_at == self._latest_stamp or observed_at <= last.observed_at
        ):
            if observed_at in (self._latest_stamp, last.observed_at):
                return self.reject(
                    RejectReason.DUPLICATE,
                    f"already hold {last.value!r} observed at {iso(observed_at)}; got {value!r}",
                    quiet=value == last.value,  # a plain redelivery is not worth a warning
                )
            return self.reject(
                RejectReason.OUT_OF_ORDER,
                f"observed at {iso(observed_at)}, older than {iso(last.observed_at)}",
            )
        held_at = min(observed_at, now) if math.isfinite(now) else observed_at
        if last is not None and held_at <= last.observed_at:
            # Stamped ahead of the clock, and the clock has not passed the last reading
            # (itself capped at its arrival): newer by its stamp, so it replaces the last.
            held_at = math.nextafter(last.observed_at, math.inf)
        reading = Reading(value, held_at, source)
        self._latest = reading
        self._latest_stamp = observed_at
        self.stats.count_accepted(self.feed)
        self.updated.set()
        for listener in self._listeners:
            listener(reading)
        return Accepted(reading)

    def reject(self, reason: RejectReason, detail: str, *, quiet: bool = False) -> Rejected:
        """Count and log a refusal (parsers call this for payloads that never made a reading)."""
        self.stats.count_rejected(self.feed, reason)
        now = time.monotonic()  # log pacing only: not the feed's clock
        last = self._last_logged.get(reason)
        if quiet:
            _log.debug("reading_rejected", feed=self.feed, reason=str(reason), detail=detail)
        elif last is None or now - last >= REJECTION_LOG_INTERVAL_S:
            _log.warning(
                "reading_rejected",
                feed=self.feed,
                reason=str(reason),
                detail=detail,
                suppressed_since_last=self._suppressed[reason],
            )
            self._last_logged[reason] = now
            self._suppressed[reason] = 0
        else:
            self._suppressed[reason] += 1
        return Rejected(reason, detail)


class StoreFeed:
    """A ``ReadingFeed`` over a ``LatestStore``: what live adapters hand to the site loop."""

    def __init__(self, store: LatestStore) -> None:
        self._store = store

    @property
    def name(self) -> str:
        """The feed's name (site, kind and transport)."""
        return self._store.feed

    @property
    def store(self) -> LatestStore:
        """The store behind the feed (for listeners, ages and stats)."""
        return self._store

    @property
    def updated(self) -> asyncio.Event:
        """Set on every accepted reading, so the site loop can wake at once; it clears it."""
        return self._store.updated

    def latest(self, now: EpochS) -> Reading | None:
        """The newest accepted reading (at most the allowed clock skew ahead of ``now``)."""
        del now  # a live feed holds only its newest reading; staleness is the core's call
        return self._store.current

    def next_change_after(self, now: EpochS) -> EpochS | None:
        """Unknown for a live feed: readings arrive when they arrive."""
        del now
        return None
