"""Build live feeds from their config: what the composition root calls per site.

``SiteFeeds`` collects a site's feeds and the async context managers that run them (one
MQTT link per distinct broker config, one poller per HTTP feed); enter ``site_feeds.run()``
around the site loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from adapters.feeds.chain import ChainHashpriceFeed
from adapters.feeds.config import (
    ChainFeedConfig,
    ErcotFeedConfig,
    HashpriceIndexFeedConfig,
    LiveFeedConfig,
    MqttBrokerConfig,
    MqttFeedConfig,
)
from adapters.feeds.ercot import ErcotFeed
from adapters.feeds.hashprice_index import HashpriceIndexFeed
from adapters.feeds.health import FeedHealth
from adapters.feeds.mqtt import MqttLink
from adapters.feeds.payloads import ReadingKind
from adapters.feeds.recorder import FeedRecorder
from adapters.feeds.store import FeedStats, LatestStore, StoreFeed
from controller.runtime.ports import Clock, ReadingFeed


@dataclass
class SiteFeeds:
    """One site's live feeds, their health, and what must run for them to deliver."""

    site_id: str
    clock: Clock
    stats: FeedStats
    links: dict[MqttBrokerConfig, MqttLink] = field(default_factory=dict)
    runners: list[AbstractAsyncContextManager[object]] = field(default_factory=list)
    health: dict[str, FeedHealth] = field(default_factory=dict)

    def mqtt_link(self, broker: MqttBrokerConfig) -> MqttLink:
        """The site's link to ``broker`` (created once; status and commands go through it)."""
        link = self.links.get(broker)
        if link is None:
            link = MqttLink(self.site_id, broker, self.clock, self.stats)
            self.links[broker] = link
            self.runners.append(link)
            self.health[link.health.feed] = link.health
        return link

    def add(
        self, config: LiveFeedConfig, kind: ReadingKind, *, record_dir: Path | None = None
    ) -> ReadingFeed:
        """A ``ReadingFeed`` for ``config``; ``record_dir`` records its accepted readings."""
        bound = config.bound(kind)
        feed: StoreFeed
        match config:
            case MqttFeedConfig():
                feed = self.mqtt_link(config.broker).reading_feed(
                    kind, bound=bound, topic=config.topic, max_future_s=config.max_future_s
                )
            case ErcotFeedConfig() | ChainFeedConfig() | HashpriceIndexFeedConfig():
                store = LatestStore(
                    f"{self.site_id}:{kind.name.lower()}:{config.type}",
                    self.stats,
                    max_future_s=config.max_future_s,
                )
                poller = _poller(config, store, self.clock)
                self.runners.append(poller)
                self.health[poller.health.feed] = poller.health
                feed = poller.feed
        if record_dir is not None:
            feed.store.add_listener(FeedRecorder(record_dir, kind.value))
        return feed

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[SiteFeeds]:
        """Run every link and poller for the duration of the block."""
        async with AsyncExitStack() as stack:
            for runner in self.runners:
                await stack.enter_async_context(runner)
            yield self


def _poller(
    config: ErcotFeedConfig | ChainFeedConfig | HashpriceIndexFeedConfig,
    store: LatestStore,
    clock: Clock,
) -> ErcotFeed | ChainHashpriceFeed | HashpriceIndexFeed:
    match config:
        case ErcotFeedConfig():
            return ErcotFeed(config, store, clock)
        case ChainFeedConfig():
            return ChainHashpriceFeed(config, store, clock)
        case HashpriceIndexFeedConfig():
            return HashpriceIndexFeed(config, store, clock)
