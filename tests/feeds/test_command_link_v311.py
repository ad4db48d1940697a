"""The command connection against a broker without MQTT 5: it falls back to 3.1.1, says so,
and still takes commands (and refuses the ones retained before it subscribed).

Mosquitto 2 speaks MQTT 5, so a small proxy in front of it answers an MQTT 5 CONNECT the way
a 3.1.1-only broker does (CONNACK, return code 1: unacceptable protocol version) and passes
everything else through.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from structlog.testing import capture_logs

from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.mqtt import MqttLink
from adapters.feeds.store import FeedStats
from controller.runtime.clocks.system import SystemClock
from tests.feeds.conftest import Broker, eventually

SITE = "v311"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def _v311_only(upstream_port: int) -> AsyncIterator[tuple[int, list[int]]]:
    """A proxy to the broker that refuses MQTT 5 connections; its port and the protocol
    levels it saw."""
    levels: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(65536)
        # CONNECT: 0x10, remaining length (one byte for these), 0x00 0x04 "MQTT", level.
        level = first[8] if len(first) > 8 and first[0] == 0x10 else 0
        levels.append(level)
        if level == 5:
            writer.write(b"\x20\x02\x00\x01")
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        up_writer.write(first)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, levels
    finally:
        server.close()


async def test_a_broker_without_mqtt5_gets_311_commands_with_a_warning(broker: Broker) -> None:
    until = datetime.fromtimestamp(time.time() + 600, UTC).isoformat()
    retained = json.dumps({"command": "force_curtail", "id": "old", "until": until})
    broker.publish(f"hashspark/{SITE}/command", retained, retain=True)
    received: list[bytes] = []
    refused: list[str] = []
    async with _v311_only(broker.port) as (port, levels):
        config = MqttBrokerConfig(host="127.0.0.1", port=port, backoff={"base_s": 0.05})
        link = MqttLink(SITE, config, SystemClock(), FeedStats())

        def handle(raw: bytes) -> None:
            received.append(raw)

        link.on_command(handle, refused=refused.append)
        with capture_logs() as logs:
            async with link:
                await link.wait_up(10)
                await eventually(lambda: refused == ["retained"], what="the retained refusal")
                live = json.dumps({"command": "force_curtail", "id": "new", "until": until})
                await asyncio.to_thread(broker.publish, link.command_topic, live)
                await eventually(lambda: len(received) == 1, what="the live command")
    assert json.loads(received[0])["id"] == "new"
    assert 5 in levels  # it tried MQTT 5 first
    assert levels.count(4) >= 2  # then 3.1.1: the feeds' connection and the commands'
    assert [e["event"] for e in logs if e["event"] == "mqtt_commands_v311"] == [
        "mqtt_commands_v311"
    ]
