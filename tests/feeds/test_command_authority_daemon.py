"""Command authority end to end: ``hashspark run`` on a real Mosquitto, commands from the CLI
and from raw MQTT clients.

- a site with issuers takes only signed commands: the CLI signs with ``--issuer``; unsigned,
  wrongly signed and unknown issuers' commands are refused with their code;
- a command published retained while the daemon is connected is refused, not applied;
- a flood of invalid commands does not keep a price spike from curtailing the fleet, and
  writes one summary for the burst instead of a warning per command (not timed: the delay
  is measured by ``bench/bench_command_flood.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.daemon_kit import EXE, free_port, healthz, wait_for
from tests.feeds.conftest import Broker
from tests.feeds.sim_fleet_kit import total

SITE = "auth"
MINERS = 50
KEYS = {"HASHSPARK_TEST_CMD_OPS": "ops-" + "1" * 60, "HASHSPARK_TEST_CMD_QSE": "qse-" + "2" * 60}


def _at(offset_s: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat(timespec="seconds")


@dataclass
class Daemon:
    config: Path
    log: Path
    metrics_port: int
    broker: Broker

    def command(self, *args: str, config: Path | None = None) -> tuple[int, str]:
        done = subprocess.run(
            [EXE, "command", str(config or self.config), *args, "--timeout", "10"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, **KEYS},
        )
        return done.returncode, done.stdout + done.stderr

    def listed(self) -> list[str]:
        code, out = self.command("--issuer", "ops", "--list")
        assert code == 0, out
        return [] if out.startswith("no active") else [r.split()[0] for r in out.splitlines()[1:]]

    def events(self, name: str) -> list[dict[str, object]]:
        out = []
        for line in self.log.read_text().splitlines():
            if f'"{name}"' in line:
                doc = json.loads(line)
                if doc.get("event") == name:
                    out.append(doc)
        return out


def _config(tmp: Path, broker_port: int, *, signed: bool) -> Path:
    link = f'{{ host = "127.0.0.1", port = {broker_port}, client_id = "hashspark-{SITE}" }}'
    issuers = """
[sites.commands.issuers.ops]
key = { env = "HASHSPARK_TEST_CMD_OPS" }
role = "operator"

[sites.commands.issuers.qse]
key = { env = "HASHSPARK_TEST_CMD_QSE" }
""" if signed else ""  # fmt: skip
    path = tmp / "site.toml"
    path.write_text(f"""
[daemon]
cycle_s = 30

[[sites]]
id = "{SITE}"
price_feed = {{ type = "mqtt", broker = {link} }}
hashprice_feed = {{ type = "mqtt", broker = {link} }}

[[sites.miners]]
model = "Antminer S19j Pro"
count = {MINERS}

[sites.supply]
type = "spot"

[sites.failsafe]
price_max_age_s = 600
action = "hold"
{issuers}""")
    return path


def _run(tmp: Path, broker: Broker, *, signed: bool) -> Iterator[Daemon]:
    config = _config(tmp, broker.port, signed=signed)
    port = free_port()
    log = tmp / "daemon.log"
    proc = subprocess.Popen(
        [EXE, "run", str(config), "--state-dir", str(tmp / "state"), "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        env={**os.environ, **KEYS},
    )
    try:
        wait_for(lambda: healthz(port), what="the daemon's /healthz")
        yield Daemon(config, log, port, broker)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]


@pytest.fixture
def signed_daemon(tmp_path: Path, broker: Broker) -> Iterator[Daemon]:
    yield from _run(tmp_path, broker, signed=True)


@pytest.fixture
def open_daemon(tmp_path: Path, broker: Broker) -> Iterator[Daemon]:
    yield from _run(tmp_path, broker, signed=False)


def _acks(broker: Broker, n: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
         "-t", f"hashspark/{SITE}/command/ack", "-C", str(n), "-W", "20"],
        stdout=subprocess.PIPE,
    )  # fmt: skip


# 15 s: in the slow suite; signed and unsigned commands to a running daemon stay in the
# default suite (tests/feeds/test_command_auth.py).
@pytest.mark.slow
def test_a_site_with_issuers_takes_only_signed_commands(
    signed_daemon: Daemon, tmp_path: Path
) -> None:
    d = signed_daemon
    assert d.events("commands_unauthenticated") == []
    dr = {"command": "demand_response", "id": "ers-1", "max_mw": 0.05,
          "deadline": _at(300), "end": _at(3600)}  # fmt: skip
    code, out = d.command(json.dumps(dr), "--issuer", "qse")
    assert code == 0, out
    assert json.loads(out)["status"] == "accepted"
    # Without an issuer the CLI cannot sign: a usage error, nothing sent.
    code, out = d.command(json.dumps(dr | {"id": "ers-2"}))
    assert code == 2
    assert "takes only signed commands: give --issuer (ops, qse)" in out
    # A wrong key (from a file) is refused by the daemon, with its code.
    wrong = tmp_path / "wrong.key"
    wrong.write_text("not-the-key")
    curtail = {"command": "force_curtail", "id": "op-1", "until": _at(600)}
    code, out = d.command(json.dumps(curtail), "--issuer", "ops", "--key-file", str(wrong))
    assert code == 3
    assert json.loads(out)["code"] == "bad_signature"
    # A raw unsigned command from any client the broker admits.
    acks = _acks(d.broker, 1)
    d.broker.publish(f"hashspark/{SITE}/command", json.dumps(curtail | {"issued_by": "ops"}))
    out_b, _ = acks.communicate(timeout=30)
    assert json.loads(out_b)["code"] == "unsigned"
    # An operator's own config lists no issuers (and holds no keys): --key-file signs.
    own = tmp_path / "operator"
    own.mkdir()
    key = own / "ops.key"
    key.write_text(KEYS["HASHSPARK_TEST_CMD_OPS"] + "\n")
    curtail_2 = json.dumps(curtail | {"id": "op-2"})
    config = _config(own, d.broker.port, signed=False)
    code, out = d.command(curtail_2, "--issuer", "ops", "--key-file", str(key), config=config)
    assert code == 0, out
    assert sorted(d.listed()) == ["ers-1", "op-2"]
    assert d.command(json.dumps({"command": "clear", "id": "c-0", "target": "op-2"}), "--issuer",
                     "qse")[0] == 0  # fmt: skip
    # qse issued the grid program; ops, an operator, may clear it.
    clear = {"command": "clear", "id": "c-1", "target": "ers-1"}
    assert d.listed() == ["ers-1"]
    code, out = d.command(json.dumps(clear), "--issuer", "ops")
    assert code == 0, out
    assert d.listed() == []
    assert total(d.metrics_port, "hashspark_operator_commands_total", code="unsigned") == 1
    assert total(d.metrics_port, "hashspark_operator_commands_total", code="bad_signature") == 1


# 5 s: in the slow suite; a retained command refused stays in the default suite
# (tests/feeds/test_mqtt.py::test_commands_are_acknowledged_and_retained_ones_refused).
@pytest.mark.slow
def test_a_command_retained_while_the_daemon_is_connected_is_refused(open_daemon: Daemon) -> None:
    d = open_daemon
    assert [e["site"] for e in d.events("commands_unauthenticated")] == [SITE]
    curtail = {"command": "force_curtail", "id": "op-r", "until": _at(600)}
    d.broker.publish(f"hashspark/{SITE}/command", json.dumps(curtail), retain=True)
    wait_for(
        lambda: total(d.metrics_port, "hashspark_operator_commands_total", code="retained") == 1,
        what="the retained command refused",
    )
    assert d.listed() == []
    assert [e["reason"] for e in d.events("command_ignored")] == ["retained"]
    # Cleared from the broker, the same command sent live is applied.
    d.broker.publish(f"hashspark/{SITE}/command", "", retain=True)
    code, out = d.command(json.dumps(curtail))
    assert code == 0, out
    assert d.listed() == ["op-r"]


def _price(pub: mqtt.Client, price: float) -> None:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    for topic, doc in (
        ("hashprice", {"usd_per_ph_day": 50.0, "ts": ts}),
        ("price", {"usd_per_mwh": price, "ts": ts}),
    ):
        pub.publish(f"hashspark/{SITE}/{topic}", json.dumps(doc), qos=1).wait_for_publish(10)


def test_a_command_flood_neither_stops_a_spike_nor_floods_the_log(open_daemon: Daemon) -> None:
    d = open_daemon
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flood-prices")
    attacker = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flood-attacker")
    for client in (pub, attacker):
        client.max_inflight_messages_set(1000)
        client.connect("127.0.0.1", d.broker.port)
        client.loop_start()
    try:
        _price(pub, 20.0)
        wait_for(
            lambda: total(d.metrics_port, "hashspark_miners", state="running") == MINERS,
            what="the fleet mining",
        )
        topic = f"hashspark/{SITE}/command"
        sent = [
            attacker.publish(topic, b'{"command": "force_curtail", "id": "x' + str(i).encode(), 1)
            for i in range(20_000)
        ]
        sent[-1].wait_for_publish(120)
        _price(pub, 500.0)  # the spike, while the daemon still reads the flood
        wait_for(
            lambda: total(d.metrics_port, "hashspark_miners", state="curtailed") == MINERS,
            timeout=60,
            what="the fleet curtailed after the spike",
        )
        wait_for(lambda: d.events("commands_refused_summary"), timeout=60, what="the summary")
    finally:
        for client in (pub, attacker):
            client.loop_stop()
            client.disconnect()
    summaries = d.events("commands_refused_summary")
    detailed = d.events("command_not_applied") + d.events("command_ignored")
    assert len(summaries) == 1, summaries
    assert len(detailed) <= 10  # the allowance, answered one by one
    refused = sum(
        total(d.metrics_port, "hashspark_operator_commands_total", status=s)
        for s in ("rejected", "ignored")
    )
    counted = int(summaries[0]["count"]) + len(detailed)  # type: ignore[call-overload]
    assert counted == refused > 1000  # every refusal counted once; the broker drops the rest
