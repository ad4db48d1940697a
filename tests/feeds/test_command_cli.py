"""``hashspark command``: clear with a target, a refused clear, and ``--list``, end to end.

A real Mosquitto, ``hashspark run`` on the system clock (in-process fleet) and the CLI as a
separate process, the way an operator uses it.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.daemon_kit import EXE, free_port, healthz, wait_for
from tests.feeds.conftest import Broker


def _at(offset_s: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat(timespec="seconds")


@pytest.fixture
def config(tmp_path: Path, broker: Broker) -> Iterator[Path]:
    """A running daemon's config; the daemon is stopped (and must exit 0) after the test."""
    link = f'{{ host = "127.0.0.1", port = {broker.port}, client_id = "hashspark-cmd" }}'
    path = tmp_path / "site.toml"
    path.write_text(f"""
[daemon]
cycle_s = 1.0

[[sites]]
id = "cmd"
price_feed = {{ type = "mqtt", broker = {link} }}
hashprice_feed = {{ type = "mqtt", broker = {link} }}

[[sites.miners]]
model = "Antminer S21"
count = 10

[sites.supply]
type = "spot"
""")
    port = free_port()
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen(
        [
            EXE,
            "run",
            str(path),
            "--state-dir",
            str(tmp_path / "state"),
            "--metrics-port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    try:
        wait_for(lambda: healthz(port), what="the daemon's /healthz")
        yield path
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()


def _command(config: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [EXE, "command", str(config), *args, "--timeout", "10"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


# 16 s: in the slow suite; commands through a daemon and their acks stay in the default suite
# (tests/feeds/test_mqtt.py, tests/feeds/test_command_auth.py).
@pytest.mark.slow
def test_clear_needs_a_target_that_exists_and_list_shows_what_is_in_force(config: Path) -> None:
    curtail = {"command": "force_curtail", "id": "op-1", "until": _at(600), "issued_by": "alice"}
    dr = {"command": "demand_response", "id": "ers-1", "max_mw": 0.02,
          "deadline": _at(300), "end": _at(3600), "issued_by": "ercot"}  # fmt: skip
    for doc in (curtail, dr):
        code, out = _command(config, json.dumps(doc))
        assert code == 0, out

    code, out = _command(config, "--list")
    assert code == 0, out
    header, *rows = out.splitlines()
    assert header.split() == [
        "id", "command", "issued_by", "state", "start", "end", "deadline", "cap_mw"
    ]  # fmt: skip
    assert sorted(r.split()[:4] + r.split()[-1:] for r in rows) == [
        ["ers-1", "demand_response", "ercot", "active", "0.02"],
        ["op-1", "force_curtail", "alice", "active", "0.0"],
    ]

    code, out = _command(config, json.dumps({"command": "clear", "target": "op-9"}))
    assert code == 3
    assert json.loads(out)["reason"] == "no active or scheduled command with id or kind 'op-9'"
    code, out = _command(config, json.dumps({"command": "clear"}))
    assert code == 3
    assert json.loads(out)["reason"] == "clear.target: Field required"

    assert _command(config, json.dumps({"command": "clear", "target": "force_curtail"}))[0] == 0
    code, out = _command(config, "--list")
    assert [r.split()[0] for r in out.splitlines()[1:]] == ["ers-1"]  # the grid program stays
    assert _command(config, json.dumps({"command": "clear", "target": "ers-1"}))[0] == 0
    assert _command(config, "--list") == (0, "no active or scheduled commands\n")


def test_list_and_a_payload_exclude_each_other(tmp_path: Path) -> None:
    code, out = _command(tmp_path / "none.toml", "--list", "{}")
    assert code == 2
    assert "hashspark: error:" in out
