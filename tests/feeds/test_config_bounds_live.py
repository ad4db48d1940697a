"""Config bounds (issue 16) with a real Mosquitto: garbage on the ack topic, and a metrics port
in use while the MQTT links already run (their task groups wrap the error).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.app.command_cmd import ack_document
from tests.daemon_kit import EXE, free_port, healthz, wait_for
from tests.feeds.conftest import Broker

SITE = "bounds"
ACK_TOPIC = f"hashspark/{SITE}/command/ack"


def _config(tmp_path: Path, broker: Broker, metrics_port: int) -> Path:
    link = f'{{ host = "127.0.0.1", port = {broker.port}, client_id = "hashspark-bounds" }}'
    path = tmp_path / "site.toml"
    path.write_text(f"""
[daemon]
cycle_s = 1.0
log_level = "warning"
metrics_port = {metrics_port}

[[sites]]
id = "{SITE}"
price_feed = {{ type = "mqtt", broker = {link} }}
hashprice_feed = {{ type = "mqtt", broker = {link} }}

[[sites.miners]]
model = "Antminer S21"
count = 10

[sites.supply]
type = "spot"
""")
    return path


GARBAGE = {
    "not JSON": b"not json {",
    "not UTF-8": b"\xff\xfe\x00garbage",
    "nested past the parser": b"[" * 100_000 + b"]" * 100_000,
    "a JSON array": b"[1, 2]",
    "a JSON string": b'"accepted"',
    "empty": b"",
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_on_the_ack_topic_is_no_ack(name: str) -> None:
    assert ack_document(GARBAGE[name]) is None
    assert ack_document(b'{"id": "x", "status": "accepted"}') == {"id": "x", "status": "accepted"}


@pytest.fixture
def daemon(tmp_path: Path, broker: Broker) -> Iterator[Path]:
    """A running daemon's config; the daemon is stopped (and must exit 0) after the test."""
    port = free_port()
    path = _config(tmp_path, broker, port)
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen(
        [EXE, "run", str(path), "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    try:
        wait_for(lambda: healthz(port), what="the daemon's /healthz")
        yield path
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()


def test_a_command_is_acked_past_garbage_retained_on_the_ack_topic(
    tmp_path: Path, broker: Broker, daemon: Path
) -> None:
    broker.publish(ACK_TOPIC, "this is not JSON {", retain=True)
    until = (datetime.now(UTC) + timedelta(seconds=600)).isoformat(timespec="seconds")
    doc = {"command": "force_curtail", "id": "op-1", "until": until, "issued_by": "alice"}
    done = subprocess.run(
        [EXE, "command", str(daemon), json.dumps(doc), "--timeout", "10"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["status"] == "accepted"


def test_with_no_daemon_garbage_on_the_ack_topic_is_no_answer(
    tmp_path: Path, broker: Broker
) -> None:
    broker.publish(ACK_TOPIC, "this is not JSON {", retain=True)
    config = _config(tmp_path, broker, 0)
    done = subprocess.run(
        [EXE, "command", str(config), "--list", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 4, done.stdout + done.stderr  # no answer, not a crash
    assert done.stderr == ""
    assert done.stdout.startswith("no ack for cli-")


def test_a_metrics_port_in_use_with_live_links_is_one_line_and_exit_2(
    tmp_path: Path, broker: Broker
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path, broker, port)
        done = subprocess.run(
            [EXE, "run", str(config), "--state-dir", str(tmp_path / "state")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    # The daemon's own JSON log lines (e.g. the warning that commands are unauthenticated)
    # may come first; the error is one plain line, and the last.
    plain = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert plain == [
        f"hashspark: error: {config}: daemon.metrics_port: 127.0.0.1:{port} is already in use "
        "(Address already in use)"
    ]
    assert done.stderr.splitlines()[-1] == plain[0]
