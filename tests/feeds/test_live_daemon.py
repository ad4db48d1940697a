"""The daemon on live MQTT feeds, end to end: real Mosquitto, real mosquitto_pub/sub."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.daemon_kit import EXE, free_port, get, wait_for
from tests.feeds.conftest import Broker
from tests.mqtt_daemon_kit import capped_ppa_site, run_daemon


def _config(tmp: Path, broker_port: int) -> Path:
    path = tmp / "live.toml"
    path.write_text(capped_ppa_site("live", broker_port, "hashspark-test", ramp_mw_per_min=30))
    return path


def _ts(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_mw(port: int) -> float | None:
    for line in get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        if line.startswith('hashspark_load_mw{site="live"}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_prices_move_the_decision_and_an_override_curtails_then_releases_under_the_ramp(
    tmp_path: Path, broker: Broker
) -> None:
    sub_bin = shutil.which("mosquitto_sub")
    assert sub_bin is not None
    port = free_port()
    daemon = run_daemon(_config(tmp_path, broker.port), tmp_path, port)
    try:
        wait_for(
            lambda: _load_mw(port) is not None or get(f"http://127.0.0.1:{port}/healthz"),
            what="daemon up",
        )
        # Cheap power: everything mines (the ramp brings 3.24 MW up in about 6.5 s).
        broker.publish(
            "hashspark/live/hashprice", json.dumps({"usd_per_ph_day": 50.0, "ts": _ts()})
        )
        broker.publish("hashspark/live/price", json.dumps({"usd_per_mwh": 20.0, "ts": _ts()}))
        wait_for(lambda: _load_mw(port) == 3.2408, timeout=20, what="the whole fleet running")

        # Garbage never reaches the decision, and is counted.
        broker.publish("hashspark/live/price", '{"usd_per_mwh": NaN, "ts": "soon"}')
        broker.publish(
            "hashspark/live/price", json.dumps({"usd_per_mwh": 20.0, "ts": "2000-01-01T00:00:00Z"})
        )

        def rejected() -> float:
            text = get(f"http://127.0.0.1:{port}/metrics").decode()
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("hashspark_feed_readings_rejected_total{")
            )

        wait_for(lambda: rejected() >= 2, timeout=5, what="two rejections counted")
        assert _load_mw(port) == 3.2408

        # A spike: the capped PPA resells at 100, so only the S21s (EHP ~ 117) keep mining.
        broker.publish("hashspark/live/price", json.dumps({"usd_per_mwh": 4000.0, "ts": _ts(1)}))
        wait_for(lambda: _load_mw(port) == 1.4, timeout=5, what="S19j Pros off, S21s on")

        # The override: curtail everything for 3 s, acknowledged on the ack topic.
        ack_proc = subprocess.Popen(
            [
                sub_bin,
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-t",
                "hashspark/live/command/ack",
                "-C",
                "1",
                "-W",
                "10",
            ],
            stdout=subprocess.PIPE,
        )

        def ack_subscribed() -> bool:  # the broker took the subscription and answered it
            log = broker.log.read_text(errors="replace")
            at = log.find("\thashspark/live/command/ack (QoS")
            return at >= 0 and "Sending SUBACK" in log[at:]

        wait_for(ack_subscribed, timeout=10, what="the ack subscriber to attach")
        until = _ts(4)
        sent = time.monotonic()
        broker.publish(
            "hashspark/live/command",
            json.dumps(
                {"command": "force_curtail", "id": "op-1", "until": until, "issued_by": "test"}
            ),
        )
        wait_for(lambda: _load_mw(port) == 0.0, timeout=5, what="the override to curtail")
        assert time.monotonic() - sent < 1.5  # within one cycle (0.5 s) plus delivery
        out, _ = ack_proc.communicate(timeout=10)
        ack = json.loads(out)
        assert ack["status"] == "accepted"
        assert ack["id"] == "op-1"

        # After `until`: back to the S21s, in ramp-limited steps (30 MW/min = 0.25 MW a cycle).
        seen: list[float] = []

        def restored() -> bool:
            value = _load_mw(port)
            if value is not None:
                seen.append(value)
            return value == 1.4

        wait_for(restored, timeout=15, what="the release")
        between = [v for v in seen if 0.0 < v < 1.4]
        assert len(set(between)) >= 2, seen  # it came back in steps, not at once

        audit = (tmp_path / "state" / "audit" / "live.jsonl").read_text().splitlines()
        entry = json.loads(audit[0])
        assert entry["status"] == "accepted"
        assert entry["command"] == "force_curtail"
        assert entry["payload"]["issued_by"] == "test"

        status = subprocess.run(
            [
                sub_bin,
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-t",
                "hashspark/live/status",
                "-C",
                "1",
                "-W",
                "5",
            ],
            capture_output=True,
            check=True,
        )
        doc = json.loads(status.stdout)
        assert doc["state"] == "running"
        assert doc["mode"] == "economics"
        assert doc["feed_ages_s"]["price"] is not None

        # The same through the CLI: a demand-response cap, then a malformed command.
        config = str(tmp_path / "live.toml")
        dr = json.dumps(
            {"command": "demand_response", "max_mw": 0.7, "deadline": _ts(60), "end": _ts(120)}
        )
        ok = subprocess.run(
            [EXE, "command", config, dr], capture_output=True, text=True, check=False, timeout=20
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert json.loads(ok.stdout)["status"] == "accepted"
        wait_for(lambda: (_load_mw(port) or 9.0) <= 0.7, timeout=5, what="the cap")
        bad = json.dumps({"command": "force_curtail", "until": _ts(10 * 86_400)})
        refused = subprocess.run(
            [EXE, "command", config, bad], capture_output=True, text=True, check=False, timeout=20
        )
        assert refused.returncode == 3
        assert "more than" in json.loads(refused.stdout)["reason"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
