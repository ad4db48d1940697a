"""The rig of the daemon-level hostile suite: an HTTP feed server on its own thread, an MQTT
client of our own, the daemon's config, and reading its metrics and log."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.daemon_kit import get
from tests.feeds.scripted_server import Reply, Script, scripted_server

ERCOT_PATH = "/np6-905-cd/spp_node_zone_hub"
FULL_MW = 0.07  # 20 Antminer S21 at 3,500 W
# Fast retries after a rejected response, so that 10,000 responses take minutes, not hours.
BACKOFF = "{ base_s = 0.002, cap_s = 0.01 }"


class ThreadedScript:
    """``scripted_server`` served from a thread of its own (the daemon is another process)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._done: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),))
        self.script: Script | None = None

    async def _main(self) -> None:
        self._done = asyncio.Event()
        async with scripted_server() as script:
            self.script = script
            self._ready.set()
            await self._done.wait()

    def __enter__(self) -> ThreadedScript:
        self._thread.start()
        assert self._ready.wait(10), "the scripted server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._done is not None
        self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(10)
        self._loop.close()

    @property
    def base_url(self) -> str:
        assert self.script is not None
        return self.script.base_url

    def on(self, method: str, path: str, bodies: list[bytes]) -> None:
        """Answer ``path`` with ``bodies`` in turn (status 200), the last one forever."""
        script = self.script
        assert script is not None
        replies = [Reply(body=b) for b in bodies]
        done = threading.Event()

        def swap() -> None:
            script.replies[(method, path)] = replies
            done.set()

        self._loop.call_soon_threadsafe(swap)
        assert done.wait(10)

    def served(self, path: str) -> int:
        """Requests ``path`` received so far."""
        assert self.script is not None
        return self.script.count(path)


class Client:
    """A paho MQTT client: publishes at QoS 1 and counts the command acks by status."""

    def __init__(self, port: int, ack_topic: str) -> None:
        self.acks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile-suite")
        self._client.max_queued_messages_set(0)
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self._client.subscribe(ack_topic, qos=1)
        assert subscribed.wait(10), "no SUBACK from the broker"

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            status = str(json.loads(message.payload)["status"])
        except (ValueError, KeyError, TypeError):
            status = "unreadable"
        with self._lock:
            self.acks[status] = self.acks.get(status, 0) + 1

    def ack_count(self) -> int:
        with self._lock:
            return sum(self.acks.values())

    def publish(self, topic: str, payloads: list[bytes], *, retain_every: int = 0) -> None:
        """Publish and wait until the broker has every one (QoS 1 handshakes done)."""
        infos = [
            self._client.publish(
                topic, p, qos=1, retain=bool(retain_every) and i % retain_every == 0
            )
            for i, p in enumerate(payloads)
        ]
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def daemon_config(tmp: Path, broker_port: int, http: str) -> Path:
    """Three sites: ``m`` (MQTT price, hashprice, commands), ``w`` (ERCOT price, hashprice
    index) and ``c`` (MQTT price, chain hashprice); each 20 S21s, fail-safe ``curtail``."""
    broker = f'{{ host = "127.0.0.1", port = {broker_port} }}'
    site = """
[[sites.miners]]
model = "Antminer S21"
count = 20

[sites.supply]
type = "spot"

[sites.failsafe]
price_max_age_s = 3600
action = "curtail"

# The fail-safe curtails at start (no price yet) and the valid prices resume at once:
# no raise interval here (pacing itself: tests/test_pacing.py, tests/test_pacing_loop.py).
[sites.pacing]
min_raise_interval_s = 0
"""
    path = tmp / "hostile.toml"
    path.write_text(f"""[daemon]
cycle_s = 0.25

[[sites]]
id = "m"
pool_fee = 0.02
price_feed = {{ type = "mqtt", broker = {broker} }}
hashprice_feed = {{ type = "mqtt", broker = {broker} }}
{site}
[[sites]]
id = "w"
pool_fee = 0.02
price_feed = {{ type = "ercot", settlement_point = "HB_WEST", username = "suite", password = {{ env = "HASHSPARK_SUITE_PASSWORD" }}, subscription_key = {{ env = "HASHSPARK_SUITE_KEY" }}, base_url = "{http}", token_url = "{http}/token", interval_s = 2, backoff = {BACKOFF} }}
hashprice_feed = {{ type = "hashprice_index", url = "{http}/index", interval_s = 10, backoff = {BACKOFF} }}
{site}
[[sites]]
id = "c"
pool_fee = 0.02
price_feed = {{ type = "mqtt", broker = {broker} }}
hashprice_feed = {{ type = "chain", base_url = "{http}", interval_s = 10, backoff = {BACKOFF} }}
{site}""")  # noqa: E501
    return path


def metrics(port: int) -> dict[str, float]:
    """Every sample of the daemon's exposition, by its name with labels."""
    out: dict[str, float] = {}
    for line in get(f"http://127.0.0.1:{port}/metrics", timeout=5).decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def total(samples: dict[str, float], prefix: str) -> float:
    """The sum of the samples whose name with labels starts with ``prefix``."""
    return sum(v for k, v in samples.items() if k.startswith(prefix))


def rejected(samples: dict[str, float], site: str, kind: str) -> float:
    """Readings of a site's price or hashprice feed rejected, every reason."""
    return total(samples, f'hashspark_feed_readings_rejected_total{{feed="{site}:{kind}:')


def commands(samples: dict[str, float]) -> float:
    """Miner commands sent, every site and outcome."""
    return total(samples, "hashspark_commands_total{")


class LogTail:
    """Counts an event in the daemon's JSON log, reading only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.counts: dict[str, int] = {}

    def count(self, event: str) -> int:
        with self.path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        for line in chunk[:end].splitlines():
            try:
                name = str(json.loads(line)["event"])
            except (ValueError, KeyError, TypeError):
                name = "(not json)"
            self.counts[name] = self.counts.get(name, 0) + 1
        return self.counts.get(event, 0)


@contextmanager
def timed(label: str, cases: int, figures: list[str], since: float | None = None) -> Iterator[None]:
    """Time a surface (from ``since``, a ``time.monotonic()``, if given); its figure line
    goes into ``figures``."""
    start = time.monotonic() if since is None else since
    yield
    took = time.monotonic() - start
    figures.append(f"{label:<34} {cases:>6} cases {took:7.1f} s {cases / took:8.0f}/s")
