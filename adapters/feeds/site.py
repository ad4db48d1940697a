"""One site's live feeds: built from their config through the feed registry.

``SiteFeeds`` collects a site's feeds and the async context managers that run them (one
MQTT link per distinct broker config, one poller per HTTP feed); enter ``site_feeds.run()``
around the site loop. It is the ``FeedContext`` every feed builder receives.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.health import FeedHealth
from adapters.feeds.memory import ReadingMemory
from adapters.feeds.mqtt import MqttLink
from adapters.feeds.payloads import ReadingKind, value_key
from adapters.feeds.recorder import FeedRecorder
from adapters.feeds.registry import FEEDS, Poller
from adapters.feeds.store import FeedStats, LatestStore, StoreFeed
from controller.runtime.ports import Clock, ReadingFeed
from controller.runtime.storage import StorageHealth


@dataclass
class SiteFeeds:
    """One site's feeds, their health, and what must run for them to deliver."""

    site_id: str
    clock: Clock
    stats: FeedStats
    links: dict[MqttBrokerConfig, MqttLink] = field(default_factory=dict)
    runners: list[AbstractAsyncContextManager[object]] = field(default_factory=list)
    health: dict[str, FeedHealth] = field(default_factory=dict)
    storage: StorageHealth = field(default_factory=StorageHealth)  # its writes' failures
    price_currency: str = "USD"  # what its price feeds quote (``[[sites]] price_currency``)

    def mqtt_link(self, broker: MqttBrokerConfig) -> MqttLink:
        """The site's link to ``broker`` (created once; status and commands go through it)."""
        link = self.links.get(broker)
        if link is None:
            link = MqttLink(self.site_id, broker, self.clock, self.stats)
            self.links[broker] = link
            self.runners.append(link)
            self.health[link.health.feed] = link.health
        return link

    def link(self, broker: MqttBrokerConfig) -> MqttLink:
        """``FeedContext``: the site's one link to ``broker``."""
        return self.mqtt_link(broker)

    def value_key(self, kind: ReadingKind) -> str:
        """``FeedContext``: ``eur_per_mwh`` for the prices of a site whose prices are in EUR."""
        return value_key(kind, self.price_currency)

    def store(self, kind: ReadingKind, type_name: str, max_future_s: float) -> LatestStore:
        """``FeedContext``: a latest-reading store named ``site:kind:type``."""
        name = f"{self.site_id}:{kind.name.lower()}:{type_name}"
        return LatestStore(name, self.stats, max_future_s=max_future_s)

    def poll(self, poller: Poller) -> StoreFeed:
        """``FeedContext``: run ``poller`` with the site's feeds and watch its health."""
        self.runners.append(poller)
        self.health[poller.health.feed] = poller.health
        return poller.feed

    def add(
        self,
        config: object,
        kind: ReadingKind,
        *,
        record_dir: Path | None = None,
        remember: Path | None = None,
        max_age_s: float = float("inf"),
    ) -> ReadingFeed:
        """The feed ``config`` describes (by its registered ``type``).

        ``record_dir`` records a live feed's accepted readings; a recorded feed has none.
        ``remember`` keeps a live feed's newest reading in that file, and puts the one an
        earlier run left there back into the feed now, if it is younger than ``max_age_s``.
        """
        feed = FEEDS.get(str(getattr(config, "type", ""))).build(config, kind, self)
        if isinstance(feed, StoreFeed):
            if remember is not None:
                memory = ReadingMemory(remember, feed.name, self.storage)
                memory.restore_into(feed.store, self.clock.now(), max_age_s)
                feed.store.add_listener(memory)
            if record_dir is not None:
                feed.store.add_listener(
                    FeedRecorder(record_dir, self.value_key(kind), storage=self.storage)
                )
        return feed

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[SiteFeeds]:
        """Run every link and poller for the duration of the block."""
        async with AsyncExitStack() as stack:
            for runner in self.runners:
                await stack.enter_async_context(runner)
            yield self
