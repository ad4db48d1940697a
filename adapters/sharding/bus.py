"""One MQTT connection of a sharded site's planner or worker (aiomqtt).

An async context manager whose connection loop lives in a TaskGroup: it subscribes, runs
``on_connect`` (publish the retained presence), and hands every message to a synchronous
handler; on any failure it reconnects with capped full-jitter backoff. An outage is logged
once and its end once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import aiomqtt
import structlog

from adapters.feeds.config import MqttBrokerConfig
from adapters.mqtt_client import make_client
from controller.runtime.retry import Backoff

_log = structlog.get_logger("hashspark.shards")

Handler = Callable[[str, bytes, bool], None]  # topic, payload, retained

_SUBACK_FAILURE = 0x80
_CLIENT_ID_CHARS = 64


def client_id(broker: MqttBrokerConfig, site_id: str, role: str) -> str:
    """A distinct client id per role (the broker drops an older session with the same id)."""
    base = broker.client_id or f"hashspark-{site_id}"
    return f"{base[: _CLIENT_ID_CHARS - len(role) - 1]}-{role}"


class ShardBus:
    """A planner's or worker's broker connection; keeps reconnecting until the context ends."""

    def __init__(
        self,
        broker: MqttBrokerConfig,
        identifier: str,
        subscriptions: list[str],
        handler: Handler,
        *,
        will: tuple[str, bytes] | None = None,
        on_connect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._broker = broker
        self.identifier = identifier
        self._subscriptions = subscriptions
        self._handler = handler
        self._will = will
        self._on_connect = on_connect
        self._backoff = Backoff(broker.backoff.base_s, broker.backoff.cap_s)
        self._client: aiomqtt.Client | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._reconnect = asyncio.Event()
        self.up = asyncio.Event()
        self.connections = 0
        self._down_logged = False

    @property
    def connected(self) -> bool:
        """Whether a connection is up right now."""
        return self._client is not None

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish at QoS 1; False (and logged) if there is no connection or it failed."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=10.0)
        except aiomqtt.MqttError as exc:
            _log.warning(
                "shard_publish_failed", client=self.identifier, topic=topic, error=str(exc)
            )
            return False
        return True

    def rearm(self, will: tuple[str, bytes] | None) -> None:
        """Reconnect with another last will (or none): a standby that became the holder."""
        self._will = will
        self._reconnect.set()

    async def __aenter__(self) -> Self:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._task = self._tasks.create_task(self._run(), name=f"mqtt:{self.identifier}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tasks is not None
        self._stop.set()
        if self._task is not None and self._client is None:
            self._task.cancel()  # connecting or backing off: do not wait for it
        await self._tasks.__aexit__(exc_type, exc, tb)

    def _make_client(self) -> aiomqtt.Client:
        return make_client(self._broker, self.identifier, will=self._will)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._session()
                if self._reconnect.is_set():
                    self._reconnect.clear()
                    continue  # a clean reconnect for a new will: no backoff
            except aiomqtt.MqttError as exc:
                if not self._down_logged:
                    _log.warning("shard_bus_down", client=self.identifier, error=str(exc))
                    self._down_logged = True
            finally:
                self._client = None
                self.up.clear()
            if self._stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._backoff.next_delay_s()):
                    await self._stop.wait()

    async def _session(self) -> None:
        async with self._make_client() as client:
            for topic in self._subscriptions:
                granted = await client.subscribe(topic, qos=1)
                codes = [g if isinstance(g, int) else int(g.value) for g in granted]
                if any(c >= _SUBACK_FAILURE for c in codes):
                    raise aiomqtt.MqttError(f"broker refused the subscription to {topic} (ACL)")
            self._client = client
            if self._on_connect is not None:
                await self._on_connect()
            self.connections += 1
            self._backoff.reset()
            self.up.set()
            if self._down_logged:
                _log.info("shard_bus_up", client=self.identifier)
                self._down_logged = False
            stop = asyncio.ensure_future(_either(self._stop, self._reconnect))
            nxt: asyncio.Future[aiomqtt.Message] | None = None
            try:
                messages = aiter(client.messages)
                while True:
                    nxt = asyncio.ensure_future(anext(messages))
                    done, _ = await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
                    if nxt not in done:
                        return
                    message = nxt.result()
                    payload = message.payload
                    raw = payload if isinstance(payload, bytes) else str(payload).encode()
                    try:
                        self._handler(message.topic.value, raw, message.retain)
                    except Exception:  # a handler bug must not drop the connection
                        _log.exception("shard_handler_failed", topic=message.topic.value)
            finally:
                stop.cancel()
                if nxt is not None and not nxt.done():
                    nxt.cancel()
                    nxt.add_done_callback(lambda f: f.cancelled() or f.exception())


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    """Return once ``a`` or ``b`` is set."""
    waiters = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
