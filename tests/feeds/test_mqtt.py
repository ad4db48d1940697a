"""MQTT link against a real Mosquitto started by the test: feeds, restarts, TLS, auth, status."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from adapters.control.commands import Command, CommandAck, CommandIntake, CommandLimits
from adapters.feeds.config import MqttBrokerConfig, MqttTlsConfig
from adapters.feeds.hashprice_index import HashpriceIndexFeedConfig
from adapters.feeds.health import FeedFailedError, FeedState
from adapters.feeds.mqtt import MqttFeedConfig, MqttLink
from adapters.feeds.payloads import DEFAULT_HASHPRICE_BOUND, DEFAULT_PRICE_BOUND, ReadingKind
from adapters.feeds.recorded import load_recording
from adapters.feeds.site import SiteFeeds
from adapters.feeds.store import FeedStats, RejectReason
from controller.domain import to_epoch
from controller.runtime.clocks.system import SystemClock
from controller.runtime.retry import Backoff
from tests.feeds.conftest import MOSQUITTO_PASSWD, Broker, CaFiles, eventually, free_port
from tests.feeds.scripted_server import Reply, fixture, scripted_server

SITE = "hb-west"
T0 = "2026-11-21T22:15:00Z"


def _price(value: float, ts: str = T0) -> str:
    return json.dumps({"usd_per_mwh": value, "ts": ts, "source": "ercot:HB_WEST"})


def _link(port: int, stats: FeedStats, **broker: object) -> MqttLink:
    cfg = MqttBrokerConfig.model_validate({"host": "127.0.0.1", "port": port, **broker})
    return MqttLink(SITE, cfg, SystemClock(), stats, backoff=Backoff(0.05, 0.3))


async def test_prices_published_with_mosquitto_pub_reach_latest(broker: Broker) -> None:
    stats = FeedStats()
    link = _link(broker.port, stats)
    price = link.reading_feed(ReadingKind.PRICE, bound=DEFAULT_PRICE_BOUND)
    hashprice = link.reading_feed(ReadingKind.HASHPRICE, bound=DEFAULT_HASHPRICE_BOUND)
    async with link:
        await link.wait_up(10)
        assert price.latest(0) is None
        broker.publish(f"hashspark/{SITE}/price", _price(41.2))
        await eventually(lambda: price.latest(0) is not None, what="the first price")
        reading = price.latest(0)
        assert reading is not None
        assert reading.value == 41.2
        assert reading.observed_at == to_epoch(datetime(2026, 11, 21, 22, 15, tzinfo=UTC))
        assert reading.source == "ercot:HB_WEST"
        assert price.updated.is_set()  # the site loop can wake at once

        broker.publish(
            f"hashspark/{SITE}/hashprice",
            json.dumps({"usd_per_ph_day": 55.21, "ts": "2026-11-21T00:00:00Z"}),
        )
        await eventually(lambda: hashprice.latest(0) is not None, what="the hashprice")
        hp = hashprice.latest(0)
        assert hp is not None
        assert (hp.value, hp.source) == (55.21, f"mqtt:hashspark/{SITE}/hashprice")

        # Bad payloads are counted by reason and never replace the good value.
        broker.publish(f"hashspark/{SITE}/price", "not json")
        broker.publish(f"hashspark/{SITE}/price", _price(1e9, "2026-11-21T22:30:00Z"))
        broker.publish(f"hashspark/{SITE}/price", _price(50.0, "2026-11-21T22:00:00Z"))
        broker.publish(f"hashspark/{SITE}/price", _price(41.2))
        await eventually(lambda: stats.rejected_total() == 4, what="four rejections")
        feed = price.name
        assert stats.rejected[(feed, RejectReason.MALFORMED)] == 1
        assert stats.rejected[(feed, RejectReason.OUT_OF_RANGE)] == 1
        assert stats.rejected[(feed, RejectReason.OUT_OF_ORDER)] == 1
        assert stats.rejected[(feed, RejectReason.DUPLICATE)] == 1
        latest = price.latest(0)
        assert latest is not None
        assert latest.value == 41.2


async def test_broker_restart_is_survived_and_readings_resume(broker: Broker) -> None:
    stats = FeedStats()
    link = _link(broker.port, stats)
    price = link.reading_feed(ReadingKind.PRICE, bound=DEFAULT_PRICE_BOUND)
    async with link:
        await link.wait_up(10)
        broker.publish(f"hashspark/{SITE}/price", _price(30.0, "2026-11-21T22:00:00Z"))
        await eventually(lambda: price.latest(0) is not None, what="a price before the restart")

        with capture_logs() as logs:
            broker.stop()
            await eventually(lambda: link.health.state is FeedState.DOWN, what="the outage")
            before = price.latest(0)
            assert before is not None
            assert before.value == 30.0  # the last good value is kept through the outage
            attempts = link.connect_attempts
            await eventually(lambda: link.connect_attempts >= attempts + 3, what="retries")
            broker.start()
            await eventually(lambda: link.connections >= 2, what="the reconnection")
        events = [e["event"] for e in logs if e.get("feed") == link.health.feed]
        assert events == ["feed_outage", "feed_recovered"]  # once each, however many retries
        assert link.health.state is FeedState.UP
        assert link.health.outages == 1

        # Resubscribed: a price published after the restart arrives.
        broker.publish(f"hashspark/{SITE}/price", _price(35.5, "2026-11-21T22:15:00Z"))
        await eventually(
            lambda: (r := price.latest(0)) is not None and r.value == 35.5,
            what="a price after the restart",
        )
    assert link.connect_attempts >= 2


async def test_tls_with_test_ca_and_password_auth(tmp_path: Path, test_ca: CaFiles) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(
        [MOSQUITTO_PASSWD, "-b", "-c", str(passwd), "site", "s3cret"], check=True, timeout=10
    )
    conf = (
        "allow_anonymous false\n"
        f"password_file {passwd}\n"
        f"cafile {test_ca.ca_cert}\ncertfile {test_ca.server_cert}\nkeyfile {test_ca.server_key}\n"
    )
    b = Broker(tmp_path, free_port(), conf)
    b.start()
    try:
        stats = FeedStats()
        tls = MqttTlsConfig(ca_file=test_ca.ca_cert)
        link = _link(b.port, stats, username="site", password=SecretStr("s3cret"), tls=tls)
        price = link.reading_feed(ReadingKind.PRICE, bound=DEFAULT_PRICE_BOUND)
        async with link:
            await link.wait_up(10)
            b.publish(
                f"hashspark/{SITE}/price",
                _price(12.5),
                "--cafile", str(test_ca.ca_cert), "-u", "site", "-P", "s3cret",
            )  # fmt: skip
            await eventually(lambda: price.latest(0) is not None, what="a price over TLS")

        # A wrong password is permanent: one attempt, a clear error, no silent retry loop.
        bad = _link(b.port, stats, username="site", password=SecretStr("wrong"), tls=tls)
        async with bad:
            with pytest.raises(FeedFailedError, match=r"(?i)bad user name or password|not auth"):
                await bad.wait_up(10)
            assert bad.health.state is FeedState.FAILED
            assert bad.connect_attempts == 1

        # Without the CA the broker's certificate does not verify: permanent too.
        untrusted = _link(b.port, stats, username="site", password=SecretStr("s3cret"), tls={})
        async with untrusted:
            with pytest.raises(FeedFailedError, match="certificate"):
                await untrusted.wait_up(10)
    finally:
        b.stop()


async def test_status_is_retained_and_will_marks_offline(broker: Broker, tmp_path: Path) -> None:
    stats = FeedStats()
    link = _link(broker.port, stats)
    topic = f"hashspark/{SITE}/status"

    def retained() -> dict[str, object]:
        out = subprocess.run(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic,
             "-C", "1", "-W", "3"],
            check=True, capture_output=True, timeout=10,
        )  # fmt: skip
        loaded: dict[str, object] = json.loads(out.stdout)
        return loaded

    async with link:
        await link.wait_up(10)
        assert await link.publish_status(
            {"state": "running", "mode": "economic", "price_age_s": 4.0}
        )
        assert retained() == {"state": "running", "mode": "economic", "price_age_s": 4.0}
        # Broker restart: the status is republished on reconnect (the broker lost it).
        broker.stop()
        broker.start()
        await eventually(lambda: link.connections >= 2, what="the reconnection")
        assert retained()["state"] == "running"
    assert retained()["state"] == "stopped"  # a clean exit says so

    # A vanished daemon (SIGKILL, no DISCONNECT): the broker publishes our will.
    script = (
        "import asyncio\n"
        "from adapters.feeds.config import MqttBrokerConfig\n"
        "from adapters.feeds.mqtt import MqttLink\n"
        "from adapters.feeds.store import FeedStats\n"
        "from controller.runtime.clocks.system import SystemClock\n"
        "async def main():\n"
        f"    cfg = MqttBrokerConfig(host='127.0.0.1', port={broker.port}, client_id='crash')\n"
        f"    async with MqttLink('{SITE}', cfg, SystemClock(), FeedStats()):\n"
        "        await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    try:
        await eventually(lambda: retained()["state"] == "online", what="the daemon online")
        proc.kill()
        proc.wait(timeout=10)
        await eventually(lambda: retained()["state"] == "offline", what="the will")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


async def test_commands_are_acknowledged_and_retained_ones_refused(broker: Broker) -> None:
    intake = CommandIntake(SITE, CommandLimits(max_hold_s=3600))
    applied: list[Command] = []

    def handle(raw: bytes) -> bytes:
        cmd, ack = intake.receive(raw, time.time())
        if cmd is not None:
            applied.append(cmd)
        return ack.to_bytes()

    link = _link(broker.port, FeedStats())
    link.on_command(handle)
    acks = subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", link.reply_topic,
         "-C", "2", "-W", "10"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    until = datetime.fromtimestamp(time.time() + 600, UTC).isoformat()
    cmd = json.dumps({"command": "force_curtail", "id": "op-1", "until": until})
    # Retained before we connect: delivered on subscribe with the retain flag, and refused,
    # or it would replay on every reconnect.
    broker.publish(link.command_topic, cmd, retain=True)
    try:
        async with link:
            await link.wait_up(10)
            await eventually(lambda: link.retained_commands_ignored == 1, what="the refusal")
            broker.publish(link.command_topic, "", retain=True)  # clear the retained message
            broker.publish(link.command_topic, cmd)
            broker.publish(link.command_topic, '{"command": "force_curtail", "id": "op-2"}')
            await eventually(lambda: intake.rejected == 1, what="the second command")
            out, _ = acks.communicate(timeout=10)
    finally:
        if acks.poll() is None:
            acks.kill()
    assert [c.id for c in applied] == ["op-1"]
    replies = [CommandAck.model_validate_json(line) for line in out.splitlines()]
    assert [(a.id, a.status) for a in replies] == [("op-1", "accepted"), ("op-2", "rejected")]


async def test_site_feeds_wire_mqtt_and_http_and_record_for_replay(
    broker: Broker, tmp_path: Path
) -> None:
    stats = FeedStats()
    feeds = SiteFeeds(SITE, SystemClock(), stats)
    mqtt_cfg = MqttFeedConfig(
        type="mqtt", broker=MqttBrokerConfig(host="127.0.0.1", port=broker.port)
    )
    async with scripted_server() as s:
        s.on("GET", "/index", Reply(body=fixture("hashprice_index.json")))
        index_cfg = HashpriceIndexFeedConfig(
            type="hashprice_index",
            url=s.base_url + "/index",
            value_path="data.0.usdHashprice",
            time_path="data.0.timestamp",
        )
        price = feeds.add(mqtt_cfg, ReadingKind.PRICE, record_dir=tmp_path / "price")
        hashprice = feeds.add(index_cfg, ReadingKind.HASHPRICE, record_dir=tmp_path / "hp")
        assert feeds.add(mqtt_cfg, ReadingKind.HASHPRICE) is not None
        assert len(feeds.links) == 1  # one connection per broker, however many feeds
        async with feeds.run():
            link = feeds.mqtt_link(mqtt_cfg.broker)
            await link.wait_up(10)
            for minute, value in ((0, 41.2), (15, 43.0), (30, -5.25)):
                broker.publish(link.status_topic.replace("status", "price"),
                               _price(value, f"2026-11-21T21:{minute:02d}:00Z"))  # fmt: skip
            await eventually(lambda: (r := price.latest(0)) is not None and r.value == -5.25)
            await eventually(lambda: hashprice.latest(0) is not None, what="the index")
    replay = load_recording(tmp_path / "price" / "2026-11-21.csv", "usd_per_mwh")
    assert replay.values.tolist() == [41.2, 43.0, -5.25]
    hp = load_recording(tmp_path / "hp" / "2026-11-21.csv", "usd_per_ph_day")
    assert hp.values.tolist() == [55.21]
    assert set(feeds.health) == {link.health.feed, f"{SITE}:hashprice:hashprice_index"}


async def test_an_unreadable_ca_file_is_a_permanent_config_error(
    broker: Broker, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    link = _link(broker.port, FeedStats(), tls={"ca_file": str(ca)})
    async with link:
        with pytest.raises(FeedFailedError, match="TLS setup failed"):
            await link.wait_up(5)
    assert link.connect_attempts == 1
