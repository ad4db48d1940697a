"""Recorded feeds published through the live feed adapters, on the replay clock's timeline.

Each observation is published at its recorded time as the JSON payload a live publisher
sends: over MQTT when the site has a broker (the daemon's own ``MqttLink`` subscribes and
parses it), else through the in-process adapter. Either way it goes through the live
parser and ``LatestStore``, and the site loop wakes on the store's event, as it does live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import aiomqtt
import structlog

from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.inprocess import InProcessFeed
from adapters.feeds.mqtt import MqttLink
from adapters.feeds.payloads import DEFAULT_HASHPRICE_BOUND, DEFAULT_PRICE_BOUND, ReadingKind
from adapters.feeds.store import FeedStats, StoreFeed
from controller.app.replay.runner import ReplayError, ReplayInputs
from controller.domain import EpochS, Reading, Recording, iso
from controller.runtime.clocks.replay import ReplayClock

#: How long (wall) a published reading may take to come back from the broker.
DELIVERY_TIMEOUT_S = 10.0
#: Readings from the recording may be this far ahead of the replay clock (none are).
MAX_FUTURE_S = 300.0

_log = structlog.get_logger("hashspark.replay")


def payload(kind: ReadingKind, value: float, observed_at: EpochS, source: str) -> bytes:
    """The JSON a live publisher sends for one reading."""
    return json.dumps(
        {kind.value: float(value), "ts": iso(observed_at), "source": source[:128]},
        separators=(",", ":"),
    ).encode()


def _source(recording: Recording) -> str:
    text = "".join(c for c in f"replay:{recording.path.name}" if "\x21" <= c <= "\x7e")
    return text[:128]


class LiveFeeds:
    """The site's two feeds, fed from its recordings through a live adapter."""

    def __init__(self, inputs: ReplayInputs, clock: ReplayClock, stats: FeedStats) -> None:
        self._clock = clock
        self._inputs = inputs
        site = inputs.site
        broker = site.broker
        self._broker: MqttBrokerConfig | None = broker
        self.transport = "in-process" if broker is None else f"mqtt://{broker.host}:{broker.port}"
        self._link: MqttLink | None = None
        self._client: aiomqtt.Client | None = None
        self._topics: dict[ReadingKind, str] = {}
        self._delivered: dict[ReadingKind, asyncio.Event] = {}
        feeds: dict[ReadingKind, StoreFeed] = {}
        self._inprocess: dict[ReadingKind, InProcessFeed] = {}
        for kind, bound in (
            (ReadingKind.PRICE, DEFAULT_PRICE_BOUND),
            (ReadingKind.HASHPRICE, DEFAULT_HASHPRICE_BOUND),
        ):
            if broker is None:
                adapter = InProcessFeed(
                    f"{site.id}:{kind.name.lower()}:inprocess",
                    kind,
                    bound,
                    stats,
                    max_future_s=MAX_FUTURE_S,
                )
                self._inprocess[kind] = adapter
                feed = adapter.feed
            else:
                if self._link is None:
                    self._link = MqttLink(site.id, broker, clock, stats)
                feed = self._link.reading_feed(kind, bound=bound, max_future_s=MAX_FUTURE_S)
                prefix = broker.topic_prefix.rstrip("/")
                leaf = "price" if kind is ReadingKind.PRICE else "hashprice"
                self._topics[kind] = f"{prefix}/{site.id}/{leaf}"
            feed.store.add_listener(self._listener(kind))
            self._delivered[kind] = asyncio.Event()
            feeds[kind] = feed
        self.price = feeds[ReadingKind.PRICE]
        self.hashprice = feeds[ReadingKind.HASHPRICE]
        self.published = 0
        self.lost = 0
        self._schedule(ReadingKind.PRICE, inputs.price)
        self._schedule(ReadingKind.HASHPRICE, inputs.hashprice)

    def _listener(self, kind: ReadingKind) -> Callable[[Reading], None]:
        def accepted(reading: Reading) -> None:
            del reading
            self._clock.loop_woken()  # the loop's feed event is set: it will wake
            self._delivered[kind].set()

        return accepted

    def _schedule(self, kind: ReadingKind, recording: Recording) -> None:
        """Publish the reading in force at the start, then each one at its time."""
        start, end = self._inputs.start, self._inputs.end
        times = recording.times
        first = max(int((times <= start).sum()) - 1, 0)
        source = _source(recording)
        for i in range(first, len(recording)):
            t = float(times[i])
            if t >= end:
                break
            value = float(recording.values[i])
            self._clock.schedule(
                max(t, start), self._publisher(kind, payload(kind, value, t, source))
            )

    def _publisher(self, kind: ReadingKind, raw: bytes) -> _Publish:
        return _Publish(self, kind, raw)

    async def publish(self, kind: ReadingKind, raw: bytes) -> bool:
        """Publish one payload; True once the site's feed accepted it."""
        self.published += 1
        adapter = self._inprocess.get(kind)
        if adapter is not None:
            return adapter.deliver(raw, self._clock.now())
        assert self._client is not None
        delivered = self._delivered[kind]
        delivered.clear()
        await self._client.publish(self._topics[kind], raw, qos=1)
        try:
            async with asyncio.timeout(DELIVERY_TIMEOUT_S):
                await delivered.wait()
        except TimeoutError:
            self.lost += 1
            _log.warning("replay_reading_not_delivered", topic=self._topics[kind])
            return False
        return True

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[LiveFeeds]:
        """Connect to the broker (MQTT) for the duration of the block."""
        if self._link is None or self._broker is None:
            yield self
            return
        b = self._broker
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self._link)
            try:
                await self._link.wait_up(b.connect_timeout_s)
            except Exception as exc:
                raise ReplayError(
                    f"MQTT broker {b.host}:{b.port}: {exc or 'not reachable'}"
                ) from None
            self._client = aiomqtt.Client(
                b.host,
                b.port,
                username=b.username,
                password=b.password.get_secret_value() if b.password else None,
                identifier=f"hashspark-replay-{self._inputs.site.id}",
                timeout=b.connect_timeout_s,
            )
            await stack.enter_async_context(self._client)
            yield self


class _Publish:
    """One scheduled publication (a timeline event)."""

    def __init__(self, feeds: LiveFeeds, kind: ReadingKind, raw: bytes) -> None:
        self._feeds = feeds
        self._kind = kind
        self._raw = raw

    async def __call__(self) -> bool:
        return await self._feeds.publish(self._kind, self._raw)
