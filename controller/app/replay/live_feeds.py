"""Recorded feeds published through the live feed adapters, on the replay clock's timeline.

Each observation is published at its recorded time as the JSON payload a live publisher
sends: over MQTT when the site has a broker (the daemon's own ``MqttLink`` subscribes and
parses it), else through the in-process adapter. Either way it goes through the live
parser and ``LatestStore``, and the site loop wakes on the store's event, as it does live.

The site's Bitcoin recordings (``[sites.bitcoin]``: the BTC price and the difficulty its
Bitcoin instruments settle on) go the same way, on the topics the daemon subscribes to.
They never wake the loop (it does not wait on them, live either): each is published ahead
of the price and hashprice readings of the same instant, so the cycle they wake reads it.
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
from adapters.feeds.payloads import ReadingKind, default_bound
from adapters.feeds.store import FeedStats, StoreFeed
from controller.app.replay.runner import ReplayError, ReplayInputs
from controller.domain import EpochS, Reading, Recording, iso
from controller.runtime.clocks.replay import ReplayClock

#: The feeds the site loop wakes on; the Bitcoin ones are read when an interval opens.
WAKES = frozenset({ReadingKind.PRICE, ReadingKind.HASHPRICE})
#: Each feed's topic leaf (``<prefix>/<site>/<leaf>``), as ``MqttLink`` subscribes.
LEAVES = {
    ReadingKind.PRICE: "price",
    ReadingKind.HASHPRICE: "hashprice",
    ReadingKind.BTC_USD: "btc_usd",
    ReadingKind.DIFFICULTY: "difficulty",
}
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
    """The site's feeds, fed from its recordings through a live adapter."""

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
        self._inprocess: dict[ReadingKind, InProcessFeed] = {}
        recordings = {
            ReadingKind.BTC_USD: inputs.btc_usd,
            ReadingKind.DIFFICULTY: inputs.difficulty,
            ReadingKind.PRICE: inputs.price,
            ReadingKind.HASHPRICE: inputs.hashprice,
        }
        feeds = {
            kind: self._feed(kind, stats) for kind, rec in recordings.items() if rec is not None
        }
        self.price = feeds[ReadingKind.PRICE]
        self.hashprice = feeds[ReadingKind.HASHPRICE]
        self.btc_usd = feeds.get(ReadingKind.BTC_USD)
        self.difficulty = feeds.get(ReadingKind.DIFFICULTY)
        self.published = 0
        self.lost = 0
        for kind, rec in recordings.items():  # Bitcoin first: see the module's docstring
            if rec is not None:
                self._schedule(kind, rec)

    def _feed(self, kind: ReadingKind, stats: FeedStats) -> StoreFeed:
        """The site's feed of ``kind``: an in-process adapter, or a topic of the site's link."""
        site, broker = self._inputs.site, self._broker
        bound = default_bound(kind)
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
                self._link = MqttLink(site.id, broker, self._clock, stats)
            feed = self._link.reading_feed(kind, bound=bound, max_future_s=MAX_FUTURE_S)
            self._topics[kind] = f"{broker.topic_prefix.rstrip('/')}/{site.id}/{LEAVES[kind]}"
        feed.store.add_listener(self._listener(kind))
        self._delivered[kind] = asyncio.Event()
        return feed

    def _listener(self, kind: ReadingKind) -> Callable[[Reading], None]:
        def accepted(reading: Reading) -> None:
            del reading
            if kind in WAKES:
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
        """Publish one payload; True once the site's feed accepted it and the loop wakes."""
        return await self.deliver(kind, raw) and kind in WAKES

    async def deliver(self, kind: ReadingKind, raw: bytes) -> bool:
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
