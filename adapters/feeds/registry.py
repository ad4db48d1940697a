"""The feed family's registry: each feed module registers its config model and builder here.

A builder turns a validated config into a ``ReadingFeed`` for one kind of reading, using the
site's ``FeedContext`` for what feeds share (the clock, rejection counters, one MQTT link
per broker, the pollers to run).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.health import FeedHealth
from adapters.feeds.payloads import ReadingKind, ValueBound
from adapters.feeds.store import FeedStats, LatestStore, StoreFeed
from controller.runtime.ports import Clock, ReadingFeed
from controller.runtime.registry import Registry


class ReadingSource(Protocol):
    """Something that serves readings by topic (an MQTT link)."""

    def reading_feed(
        self,
        kind: ReadingKind,
        *,
        bound: ValueBound,
        topic: str | None = None,
        max_future_s: float = 300.0,
        key: str | None = None,
    ) -> StoreFeed:
        """A feed of the readings of ``kind`` published on ``topic``, valued under ``key``."""
        ...


class Poller(AbstractAsyncContextManager[object], Protocol):
    """A polling feed: runs while entered, offers its readings through ``feed``."""

    feed: StoreFeed
    health: FeedHealth


class FeedContext(Protocol):
    """What a feed builder may use from its site."""

    @property
    def clock(self) -> Clock:
        """The site's clock."""
        ...

    def link(self, broker: MqttBrokerConfig) -> ReadingSource:
        """The site's one link to ``broker``."""
        ...

    def value_key(self, kind: ReadingKind) -> str:
        """The value key (payload field, recording column) of ``kind`` at this site:
        ``eur_per_mwh`` for the prices of a site whose ``price_currency`` is EUR."""
        ...

    def store(self, kind: ReadingKind, type_name: str, max_future_s: float) -> LatestStore:
        """A latest-reading store for one feed, counted in the site's feed stats."""
        ...

    def poll(self, poller: Poller) -> StoreFeed:
        """Run ``poller`` with the site's feeds; its feed."""
        ...

    @property
    def stats(self) -> FeedStats:
        """The site's rejection counters."""
        ...


#: Builds one feed: ``(config, kind, context) -> ReadingFeed``.
FeedBuilder = Callable[[Any, ReadingKind, FeedContext], ReadingFeed]

#: Every feed type, by its config ``type``; a feed module registers itself on import.
FEEDS: Registry[FeedBuilder] = Registry("feed")
