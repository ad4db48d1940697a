"""The in-process feed adapter: payloads handed over in memory, parsed as MQTT's are.

For a site without a broker (a live-path replay, a test): whoever holds the adapter calls
``deliver(payload)`` with the same JSON an MQTT publisher would send; the payload goes
through the live parser and into a ``LatestStore``, so bounds, ordering and staleness are
checked exactly as for a live feed, and the site loop wakes on the store's event.
"""

from __future__ import annotations

from adapters.feeds.payloads import ReadingKind, ValueBound, ingest, parse_reading
from adapters.feeds.store import Accepted, FeedStats, LatestStore, StoreFeed
from controller.domain import EpochS


class InProcessFeed:
    """One feed fed in memory: ``deliver`` payloads, hand ``feed`` to the site loop."""

    def __init__(
        self,
        name: str,
        kind: ReadingKind,
        bound: ValueBound,
        stats: FeedStats,
        *,
        max_future_s: float = 300.0,
    ) -> None:
        self.kind = kind
        self._bound = bound
        self._name = name
        self.store = LatestStore(name, stats, max_future_s=max_future_s)
        self.feed = StoreFeed(self.store)

    def deliver(self, raw: bytes, now: EpochS) -> bool:
        """Parse and offer one payload; True if it became the feed's latest reading."""
        result = parse_reading(
            raw, self.kind, self._bound, default_source=f"inprocess:{self._name}"
        )
        return isinstance(ingest(self.store, result, now), Accepted)
