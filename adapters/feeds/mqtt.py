"""One site's MQTT connection (aiomqtt): reading feeds in, commands in, status and acks out.

Over 300 lines: one connection loop serves feeds, commands and status, with one state.

A single connection per site carries everything: the price and hashprice topics (each a
``ReadingFeed``), the command topic, the retained status and the command acks. It is an
async context manager whose connection loop lives in a TaskGroup. On any transient failure
(broker down, network, keepalive timeout) it reconnects with capped full-jitter backoff and
resubscribes; bad credentials, "not authorised", a subscription the broker's ACL refuses
and a broker certificate that does not verify are permanent: logged once, no retry, the
feeds go stale (``wait_up`` raises).

A will message (``{"state": "offline", "reason": "connection lost"}``, retained) replaces
the retained status if the daemon vanishes; a clean exit publishes ``"stopped"``.

Commands come on a connection of their own (client id ``<client_id>-commands``), so that a
flood of them queues at the broker and in the socket apart from the prices: a price never
waits behind commands. It speaks MQTT 5 and subscribes with *retain as published*, so a
command published retained is seen as retained even when it arrives live, and refused (in
MQTT 3.1.1 the broker clears the flag for current subscribers). A broker without MQTT 5 gets
3.1.1 and a warning that only retained commands replayed on subscribe can be told apart.
Commands are read one at a time, the loop yielding between them, from a queue of at most
``COMMAND_QUEUE`` (the rest are dropped and counted as ``overflow``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import aiomqtt
import structlog
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from adapters.feeds.config import BoundedFeedConfig, MqttBrokerConfig, Topic
from adapters.feeds.health import FeedHealth
from adapters.feeds.payloads import ReadingKind, ValueBound, ingest, parse_reading
from adapters.feeds.registry import FEEDS, FeedContext
from adapters.feeds.store import FeedStats, LatestStore, RejectReason, StoreFeed
from adapters.mqtt_client import make_client
from controller.runtime.ports import Clock
from controller.runtime.retry import Backoff

_log = structlog.get_logger("hashspark.mqtt")

#: CONNACK codes that no retry will fix (MQTT 3.1.1 codes 4, 5; their MQTT 5 equivalents).
_PERMANENT_CONNACK = {4, 5, 134, 135, 140}
#: CONNACK codes of a broker that does not speak the protocol version asked for.
_UNSUPPORTED_PROTOCOL = {1, 132}
#: Commands received and not yet read; past this the broker's excess is dropped and counted.
COMMAND_QUEUE = 1000


class MqttFeedConfig(BoundedFeedConfig):
    """Readings published on the site's broker (``<prefix>/<site>/price`` or ``.../hashprice``)."""

    type: Literal["mqtt"]
    broker: MqttBrokerConfig
    topic: Topic | None = None


def json_bytes(obj: object) -> bytes:
    """Compact JSON with non-finite floats as null (MQTT consumers choke on NaN)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(obj), separators=(",", ":"), default=str).encode()


@dataclass(frozen=True, slots=True)
class _Subscription:
    kind: ReadingKind
    bound: ValueBound
    store: LatestStore
    key: str  # the payload's value field: usd_per_mwh, eur_per_mwh, usd_per_ph_day


#: SUBACK return codes from here up mean "refused" (0x80 in 3.1.1; 0x80-0xA2 in MQTT 5).
_SUBACK_FAILURE = 0x80


class _SubscriptionRefusedError(Exception):
    """The broker refused a subscription: its ACL does not grant the topic (permanent)."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"broker refused the subscription to {topic} (check the broker ACL)")


def _code(value: int | ReasonCode) -> int:
    return value if isinstance(value, int) else int(value.value)


def _connack_code(exc: aiomqtt.MqttCodeError) -> int | None:
    rc = exc.rc
    if rc is None:
        return None
    if isinstance(rc, int):
        return rc
    return int(rc.value)


class MqttLink:
    """A site's broker connection; declare feeds and handlers before entering it."""

    def __init__(
        self,
        site_id: str,
        broker: MqttBrokerConfig,
        clock: Clock,
        stats: FeedStats,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.site_id = site_id
        self._broker = broker
        self._clock = clock
        self._stats = stats
        self._backoff = backoff or Backoff(broker.backoff.base_s, broker.backoff.cap_s)
        prefix = broker.topic_prefix.rstrip("/")
        self.status_topic = f"{prefix}/{site_id}/status"
        self.command_topic = f"{prefix}/{site_id}/command"
        self.reply_topic = f"{prefix}/{site_id}/command/ack"
        self._default_topics = {
            ReadingKind.PRICE: f"{prefix}/{site_id}/price",
            ReadingKind.HASHPRICE: f"{prefix}/{site_id}/hashprice",
            ReadingKind.BTC_USD: f"{prefix}/{site_id}/btc_usd",
            ReadingKind.DIFFICULTY: f"{prefix}/{site_id}/difficulty",
            ReadingKind.FEES: f"{prefix}/{site_id}/fees",
        }
        self.health = FeedHealth(f"{site_id}:mqtt:{broker.host}:{broker.port}")
        self._subs: dict[str, _Subscription] = {}
        self._command_handler: Callable[[bytes], bytes | None] | None = None
        self._command_refused: Callable[[str], None] = lambda code: None
        self._command_idle: Callable[[], None] = lambda: None
        self._command_client: aiomqtt.Client | None = None
        self._commands_up = asyncio.Event()
        self._command_protocol = aiomqtt.ProtocolVersion.V5
        self.commands_dropped = 0
        self._status: dict[str, object] = {"state": "online"}
        self._client: aiomqtt.Client | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._command_tasks: tuple[asyncio.Task[None], ...] = ()
        self.connect_attempts = 0
        self.connections = 0
        self.retained_commands_ignored = 0

    # --- declaration -------------------------------------------------------------------

    def reading_feed(
        self,
        kind: ReadingKind,
        *,
        bound: ValueBound,
        topic: str | None = None,
        max_future_s: float = 300.0,
        key: str | None = None,
    ) -> StoreFeed:
        """A ``ReadingFeed`` of the readings published on ``topic`` (default per kind).

        ``key`` is the payload's value field (default the kind's: ``usd_per_mwh``); a price
        under another currency's field is refused as ``currency``.
        """
        if self._tasks is not None:
            raise RuntimeError("declare feeds before connecting")
        topic = topic or self._default_topics[kind]
        if topic in self._subs:
            raise ValueError(f"topic {topic} is already a feed")
        name = f"{self.site_id}:{kind.name.lower()}:mqtt:{topic}"
        store = LatestStore(name, self._stats, max_future_s=max_future_s)
        self._subs[topic] = _Subscription(kind, bound, store, key or kind.value)
        return StoreFeed(store)

    def on_command(
        self,
        handler: Callable[[bytes], bytes | None],
        *,
        refused: Callable[[str], None] | None = None,
        idle: Callable[[], None] | None = None,
    ) -> None:
        """Hand every command payload to ``handler``; what it returns is published as the ack.

        ``adapters.control.commands.CommandIntake.receive`` parses and bounds the payload;
        the handler applies the command, audits it, and returns ``ack.to_bytes()`` (None:
        no ack). ``refused`` hears of the commands refused unread (``retained``,
        ``overflow``); ``idle`` is called every second (to summarise a burst of refusals).
        """
        self._command_handler = handler
        if refused is not None:
            self._command_refused = refused
        if idle is not None:
            self._command_idle = idle

    # --- publishing --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a connection is up right now."""
        return self._client is not None

    async def publish_status(self, status: dict[str, object]) -> bool:
        """Retain ``status`` on ``<prefix>/<site>/status``; republished after every reconnect.

        Returns whether it went out now (if not, it goes out on the next connection).
        """
        self._status = dict(status)
        return await self._publish(self.status_topic, json_bytes(self._status), retain=True)

    async def publish_ack(self, ack: bytes) -> bool:
        """Publish a command acknowledgement on ``<prefix>/<site>/command/ack`` (QoS 1)."""
        return await self._publish(self.reply_topic, ack, retain=False, commands=True)

    async def _publish(
        self, topic: str, payload: bytes, *, retain: bool, commands: bool = False
    ) -> bool:
        client = self._command_client if commands else self._client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=5.0)
        except aiomqtt.MqttError as exc:
            _log.warning("mqtt_publish_failed", topic=topic, error=str(exc))
            return False
        return True

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._task = self._tasks.create_task(self._run(), name=f"mqtt:{self.site_id}")
        if self._command_handler is not None:
            self._command_tasks = (
                self._tasks.create_task(self._commands_run(), name=f"mqtt-commands:{self.site_id}"),
                self._tasks.create_task(self._commands_idle(), name=f"mqtt-idle:{self.site_id}"),
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tasks is not None
        if self._client is not None:
            # The will is for crashes; a clean exit says so itself.
            stopped = {**self._status, "state": "stopped"}
            await self._publish(self.status_topic, json_bytes(stopped), retain=True)
        self._stop.set()
        if self._task is not None and self._client is None:
            self._task.cancel()  # connecting or backing off: do not wait for it
        for task in self._command_tasks:
            task.cancel()  # a command being read is not worth waiting for
        await self._tasks.__aexit__(exc_type, exc, tb)

    async def wait_up(self, timeout_s: float) -> None:
        """Return once connected (and subscribed to commands, if taken); ``FeedFailedError``
        on a permanent error, else TimeoutError."""
        async with asyncio.timeout(timeout_s):
            await self.health.wait_up(timeout_s)
            if self._command_handler is not None:
                await self._commands_up.wait()

    def _make_client(self) -> aiomqtt.Client:
        will = json_bytes({"state": "offline", "reason": "connection lost"})
        identifier = self._broker.client_id or f"hashspark-{self.site_id}"
        return make_client(self._broker, identifier, will=(self.status_topic, will))

    async def _run(self) -> None:
        while not self._stop.is_set():
            self.connect_attempts += 1
            try:
                await self._session()
            except aiomqtt.MqttCodeError as exc:
                code = _connack_code(exc)
                if isinstance(exc, MqttConnectError) and code in _PERMANENT_CONNACK:
                    self.health.fail(f"broker refused the connection: {exc} (check credentials)")
                    return
                self.health.down(str(exc))
            except _SubscriptionRefusedError as exc:
                self.health.fail(str(exc))
                return
            except (ssl.SSLError, OSError) as exc:
                # aiomqtt wraps network errors in MqttError: these come from loading our own
                # TLS files (a CA or key that does not parse), a config error.
                self.health.fail(f"TLS setup failed: {exc}")
                return
            except aiomqtt.MqttError as exc:
                text = str(exc)
                if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
                    self.health.fail(f"broker certificate does not verify: {text}")
                    return
                self.health.down(text or type(exc).__name__)
            finally:
                self._client = None
            if self._stop.is_set():
                return
            delay = self._backoff.next_delay_s()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    async def _session(self) -> None:
        async with self._make_client() as client:
            qos = self._broker.qos
            wanted = [(topic, qos) for topic in self._subs]
            for topic, topic_qos in wanted:
                granted = await client.subscribe(topic, qos=topic_qos)
                if any(_code(g) >= _SUBACK_FAILURE for g in granted):
                    raise _SubscriptionRefusedError(topic)
            self._client = client
            await client.publish(self.status_topic, json_bytes(self._status), qos=1, retain=True)
            self.connections += 1
            self._backoff.reset()
            self.health.up()
            stop = asyncio.ensure_future(self._stop.wait())
            nxt: asyncio.Future[aiomqtt.Message] | None = None
            try:
                messages = aiter(client.messages)
                while True:
                    nxt = asyncio.ensure_future(anext(messages))
                    done, _ = await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
                    if nxt not in done:
                        return
                    self._dispatch(nxt.result())
            finally:
                stop.cancel()
                if nxt is not None and not nxt.done():
                    nxt.cancel()
                    # Retrieve whatever it ends with, or asyncio logs it as never retrieved.
                    nxt.add_done_callback(lambda f: f.cancelled() or f.exception())

    # --- the command connection ------------------------------------------------------------

    async def _commands_run(self) -> None:
        backoff = Backoff(self._broker.backoff.base_s, self._broker.backoff.cap_s)
        while not self._stop.is_set():
            try:
                await self._command_session(backoff)
            except aiomqtt.MqttCodeError as exc:
                code = _connack_code(exc)
                v5 = self._command_protocol == aiomqtt.ProtocolVersion.V5
                if isinstance(exc, MqttConnectError) and code in _UNSUPPORTED_PROTOCOL and v5:
                    _log.warning(
                        "mqtt_commands_v311",
                        site=self.site_id,
                        note="the broker does not speak MQTT 5: a command published retained "
                        "while the daemon is connected cannot be told apart from a live one",
                    )
                    self._command_protocol = aiomqtt.ProtocolVersion.V311
                    continue
                if isinstance(exc, MqttConnectError) and code in _PERMANENT_CONNACK:
                    self.health.fail(f"broker refused the command connection: {exc}")
                    return
                _log.warning("mqtt_commands_down", site=self.site_id, error=str(exc))
            except _SubscriptionRefusedError as exc:
                self.health.fail(str(exc))
                return
            except (ssl.SSLError, OSError) as exc:
                self.health.fail(f"TLS setup failed: {exc}")
                return
            except aiomqtt.MqttError as exc:
                _log.warning("mqtt_commands_down", site=self.site_id, error=str(exc) or "")
            finally:
                self._command_client = None
            if self._stop.is_set():
                return
            await asyncio.sleep(backoff.next_delay_s())

    def _dropped(self) -> None:
        self.commands_dropped += 1
        self._tell(self._command_refused, "overflow")

    @staticmethod
    def _tell(hook: Callable[..., None], *args: str) -> None:
        """Call a command hook; a bug (or a full disk under its audit) is logged, never
        raised into the connection."""
        try:
            hook(*args)
        except Exception:
            _log.exception("command_hook_failed")

    async def _command_session(self, backoff: Backoff) -> None:
        identifier = f"{self._broker.client_id or f'hashspark-{self.site_id}'}-commands"
        v5 = self._command_protocol == aiomqtt.ProtocolVersion.V5
        client = make_client(
            self._broker,
            identifier,
            protocol=self._command_protocol,
            queue_type=_dropping_queue(self._dropped),
            max_queued=COMMAND_QUEUE,
        )
        async with client:
            if v5:
                options = SubscribeOptions(qos=1, retainAsPublished=True)
                granted = await client.subscribe(self.command_topic, options=options)
            else:
                granted = await client.subscribe(self.command_topic, qos=1)
            if any(_code(g) >= _SUBACK_FAILURE for g in granted):
                raise _SubscriptionRefusedError(self.command_topic)
            self._command_client = client
            self._commands_up.set()
            backoff.reset()
            async for message in client.messages:
                self._on_command(message)
                # One command at a time, the site loop and the feeds between two of them.
                await asyncio.sleep(0)

    async def _commands_idle(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._tell(self._command_idle)

    def _on_command(self, message: aiomqtt.Message) -> None:
        assert self._command_handler is not None
        payload = message.payload
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        if not raw:
            return  # an empty payload deletes a retained message: nothing to do
        if message.retain:
            # A retained command would replay on every reconnect: refuse it outright.
            self.retained_commands_ignored += 1
            self._tell(self._command_refused, "retained")
            return
        try:
            ack = self._command_handler(raw)
        except Exception:  # a handler bug must not take the link down with it
            _log.exception("command_handler_failed", topic=self.command_topic)
            return
        if ack is not None and self._tasks is not None:
            self._tasks.create_task(self.publish_ack(ack), name=f"mqtt-ack:{self.site_id}")

    def _dispatch(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = message.payload
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        sub = self._subs.get(topic)
        if sub is None:
            return  # a topic we no longer want (the broker can lag an unsubscribe)
        try:
            result = parse_reading(
                raw, sub.kind, sub.bound, default_source=f"mqtt:{topic}", key=sub.key
            )
            ingest(sub.store, result, self._clock.now())
        except Exception as exc:  # a parser or listener bug: one payload lost, not the feeds
            _log.exception("reading_dispatch_failed", topic=topic)
            sub.store.reject(RejectReason.MALFORMED, f"{type(exc).__name__} while parsing")


def _dropping_queue(on_drop: Callable[[], None]) -> type[asyncio.Queue[aiomqtt.Message]]:
    """A queue class that drops what does not fit, telling ``on_drop`` (aiomqtt would log a
    line per message dropped)."""

    class DroppingQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            if self.full():
                on_drop()
                return
            super().put_nowait(item)

    return DroppingQueue


def _build(config: MqttFeedConfig, kind: ReadingKind, ctx: FeedContext) -> StoreFeed:
    return ctx.link(config.broker).reading_feed(
        kind,
        bound=config.bound(kind),
        topic=config.topic,
        max_future_s=config.max_future_s,
        key=ctx.value_key(kind),
    )


FEEDS.register("mqtt", MqttFeedConfig, _build)
