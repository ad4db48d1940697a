"""``hashspark feed gridstatus``: an ISO's newest price, published as the site's MQTT price.

The daemon stays as it is: it reads ``<prefix>/<site>/price`` like from any publisher, with
its own validation, staleness and rejection counting. This side does the same before it
publishes, with the same code (``check_value``, ``LatestStore``, ``FeedHealth``): a value that
is not finite or out of bounds, an interval older than the one published, or one from the
future is refused, counted by reason and logged; an ISO that does not answer is an outage,
logged once, and a recovery once.

gridstatus is synchronous: each fetch runs in a worker thread (``asyncio.to_thread``), so the
MQTT connection keeps its keepalive while an ISO takes its time. A reading is the newest
interval that has begun, stamped with the interval's start; its source says the ISO, the
location, the market and how final the price is (``...:prelim`` for a real-time price as
posted, ``...:ex-ante`` for day-ahead). A later correction of an interval already published
has the same timestamp: the daemon counts it as a duplicate and keeps deciding on the price
it had (the correction is for settlement, not for a decision already taken).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

import aiomqtt
import structlog

from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.gridstatus_source import GridstatusSource, newest_begun
from adapters.feeds.health import FeedHealth, FeedState
from adapters.feeds.mqtt import json_bytes
from adapters.feeds.payloads import ValueBound, check_value, ingest
from adapters.feeds.store import Accepted, FeedStats, LatestStore, Rejected, RejectReason
from adapters.mqtt_client import make_client
from controller.domain import EpochS
from controller.runtime.ports import Clock
from controller.runtime.retry import Backoff

_log = structlog.get_logger("hashspark.gridstatus")


@dataclass(frozen=True, slots=True)
class Target:
    """Where the readings go: the site's broker and price topic."""

    broker: MqttBrokerConfig
    topic: str
    client_id: str


def payload(value: float, start: EpochS, source: str) -> bytes:
    """The MQTT price payload the daemon reads (docs/feeds.md, "MQTT")."""
    ts = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json_bytes({"usd_per_mwh": value, "ts": ts, "source": source})


class GridstatusPublisher:
    """Poll one ISO price through gridstatus and publish each new interval, retained."""

    def __init__(
        self,
        source: GridstatusSource,
        target: Target,
        clock: Clock,
        *,
        bound: ValueBound,
        interval_s: float,
        max_future_s: float = 300.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.stats = FeedStats()
        name = f"gridstatus:{source.iso}:{source.location}:{source.market}"
        self.store = LatestStore(name, self.stats, max_future_s=max_future_s)
        self.health = FeedHealth(name)
        #: The broker connection: an outage and a recovery are logged once each, like a feed's.
        self.link = FeedHealth(f"mqtt:{target.broker.host}:{target.broker.port}")
        self._clock = clock
        self._bound = bound
        self._interval_s = interval_s
        self._backoff = backoff or Backoff(5.0, 300.0)
        self.published = 0

    async def poll(self) -> Accepted | Rejected | None:
        """Fetch once; the store's verdict on the newest interval (None: no news or outage)."""
        now = self._clock.now()
        try:
            rows = await asyncio.to_thread(self.source.fetch, now)
        except Exception as exc:  # gridstatus raises whatever the ISO's site does: transient
            self.health.down(f"{type(exc).__name__}: {str(exc)[:200]}")
            return None
        newest = newest_begun(rows, now)
        if newest is None:
            result = self.store.reject(
                RejectReason.MALFORMED, f"no interval at {self.source.location} has begun yet"
            )
            self.health.down("no usable interval in the response")
            return result
        self.health.up()
        held = self.store.current
        if held is not None and (held.observed_at, held.value) == (
            newest.start,
            newest.usd_per_mwh,
        ):
            return None  # the same interval again: no news, no rejection
        checked = check_value(newest.usd_per_mwh, newest.start, self.source.label, self._bound)
        return ingest(self.store, checked, now)

    async def publish(self, client: aiomqtt.Client, accepted: Accepted) -> None:
        """Publish an accepted reading retained at QoS 1 (a daemon that starts gets it)."""
        reading = accepted.reading
        start = reading.observed_at  # the interval start: only begun intervals are offered
        body = payload(reading.value, start, reading.source)
        await client.publish(self.target.topic, body, qos=1, retain=True, timeout=10.0)
        self.published += 1
        _log.info(
            "price_published",
            topic=self.target.topic,
            usd_per_mwh=reading.value,
            interval_start=datetime.fromtimestamp(start, UTC).isoformat(),
            source=reading.source,
        )

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> None:
        """Poll and publish until ``stop`` is set (``once``: one poll, then return)."""
        broker_backoff = Backoff(
            self.target.broker.backoff.base_s, self.target.broker.backoff.cap_s
        )
        while not stop.is_set():
            try:
                async with make_client(self.target.broker, self.target.client_id) as client:
                    self.link.up()
                    broker_backoff.reset()
                    await self._session(client, stop, once=once)
                    return
            except aiomqtt.MqttError as exc:
                self.link.down(str(exc) or type(exc).__name__)
                if once:
                    raise
            await _wait(stop, broker_backoff.next_delay_s())

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event, *, once: bool) -> None:
        while not stop.is_set():
            result = await self.poll()
            if isinstance(result, Accepted):
                await self.publish(client, result)
            if once:
                return
            delay = self._interval_s
            if self.health.state is FeedState.DOWN:
                delay = self._backoff.next_delay_s()
            else:
                self._backoff.reset()
            await _wait(stop, delay)


async def _wait(stop: asyncio.Event, delay_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(delay_s, 0.0)):
            await stop.wait()
