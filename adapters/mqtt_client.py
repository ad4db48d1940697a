"""One way to open an MQTT connection from a broker config: TLS (with a client certificate
when given), credentials from secrets, and an optional retained last will.

The feed link, the shard bus and ``hashspark command`` all connect through it, so a
broker that demands mutual TLS or a password is met the same way everywhere.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

import aiomqtt

if TYPE_CHECKING:  # at run time the import would cycle: adapters.feeds imports this module
    from adapters.feeds.config import MqttBrokerConfig


def tls_context(broker: MqttBrokerConfig) -> ssl.SSLContext | None:
    """The TLS context the broker config asks for, or None for plain TCP."""
    if broker.tls is None:
        return None
    ca = str(broker.tls.ca_file) if broker.tls.ca_file else None
    context = ssl.create_default_context(cafile=ca)
    if broker.tls.cert_file is not None and broker.tls.key_file is not None:
        context.load_cert_chain(str(broker.tls.cert_file), str(broker.tls.key_file))
    return context


def make_client(
    broker: MqttBrokerConfig,
    identifier: str,
    will: tuple[str, bytes] | None = None,
    *,
    protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V311,
    queue_type: type[asyncio.Queue[aiomqtt.Message]] | None = None,
    max_queued: int | None = None,
) -> aiomqtt.Client:
    """A client for ``broker``; ``will`` is (topic, payload), sent retained at QoS 1.

    ``protocol`` V5 starts clean (MQTT 5 has no clean session flag); ``queue_type`` and
    ``max_queued`` bound the incoming messages not yet read.
    """
    v5 = protocol == aiomqtt.ProtocolVersion.V5
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password.get_secret_value() if broker.password else None,
        identifier=identifier,
        will=None if will is None else aiomqtt.Will(will[0], will[1], qos=1, retain=True),
        keepalive=broker.keepalive_s,
        timeout=broker.connect_timeout_s,
        tls_context=tls_context(broker),
        clean_session=None if v5 else True,
        protocol=protocol,
        queue_type=queue_type,
        max_queued_incoming_messages=max_queued,
    )
