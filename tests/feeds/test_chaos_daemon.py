"""Chaos at the daemon, on live MQTT feeds over a real Mosquitto, with the in-process fleet.

Each case runs ``hashspark run`` as a process on the system clock and asserts on what an
operator sees: the metrics (load, ``hashspark_failsafe_active``, feed up/outages), the log
lines, and the ledger the run leaves behind. Chaos with real miner protocols (pyasic
against simulated miners) is in ``test_chaos_pyasic.py``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.daemon_kit import (
    EXE,
    assert_no_overlap,
    free_port,
    get,
    healthz,
    ledger_intervals,
    settle_prices,
    wait_for,
)
from tests.feeds.conftest import Broker

MAX_AGE_S = 3.0  # price_max_age_s: short, so an outage outlives it within a test
FULL_MW = 0.7  # 200 Antminer S21 at 3,500 W
FAILSAFE = 'hashspark_failsafe_active{action="curtail",site="chaos"}'
LOAD = 'hashspark_load_mw{site="chaos"}'


def _config(tmp: Path, broker_port: int) -> Path:
    broker = (
        f'{{ host = "127.0.0.1", port = {broker_port}, client_id = "hashspark-chaos", '
        "keepalive_s = 5, connect_timeout_s = 2, backoff = { base_s = 0.2, cap_s = 1 } }"
    )
    path = tmp / "chaos.toml"
    path.write_text(f"""
[daemon]
cycle_s = 0.25

[[sites]]
id = "chaos"
pool_fee = 0.02
price_feed = {{ type = "mqtt", broker = {broker} }}
hashprice_feed = {{ type = "mqtt", broker = {broker} }}

[[sites.miners]]
model = "Antminer S21"
count = 200

[sites.supply]
type = "spot"

[sites.failsafe]
price_max_age_s = {MAX_AGE_S}
action = "curtail"

# Curtails and resumes within seconds on the wall clock: no raise interval here
# (pacing itself: tests/test_pacing.py, tests/test_pacing_loop.py).
[sites.pacing]
min_raise_interval_s = 0
""")
    return path


def _ts(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat(timespec="milliseconds")


def metric(port: int, name: str) -> float | None:
    """One sample by its exact name and labels, as the exposition prints them."""
    for line in get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def summed(port: int, prefix: str) -> float:
    """The sum of every sample whose line starts with ``prefix``."""
    text = get(f"http://127.0.0.1:{port}/metrics").decode()
    lines = text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


@contextmanager
def daemon(config: Path, state: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``hashspark run`` on the system clock; SIGTERM at the end must exit 0."""
    proc = subprocess.Popen(
        [EXE, "run", str(config), "--state-dir", str(state), "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    try:
        wait_for(lambda: healthz(port), what="the daemon's /healthz")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=15)
            assert code == 0, log.read_text()


def _publish_prices(broker: Broker, price: float = 20.0) -> None:
    broker.publish("hashspark/chaos/hashprice", json.dumps({"usd_per_ph_day": 50.0, "ts": _ts()}))
    broker.publish("hashspark/chaos/price", json.dumps({"usd_per_mwh": price, "ts": _ts()}))


def _events(log: Path) -> list[str]:
    """Every structured log line the daemon wrote, as ``event`` or ``event: reason``."""
    out = []
    for line in log.read_text().splitlines():
        try:
            doc = json.loads(line)
            out.append(f"{doc['event']}: {doc['reason']}" if "reason" in doc else doc["event"])
        except (ValueError, KeyError, TypeError):
            out.append(line)
    return out


def test_broker_killed_and_restarted_failsafe_engages_then_lifts(
    tmp_path: Path, broker: Broker
) -> None:
    port, state, log = free_port(), tmp_path / "state", tmp_path / "daemon.log"
    with daemon(_config(tmp_path, broker.port), state, port, log) as proc:
        wait_for(lambda: summed(port, "hashspark_feed_up{") == 1, what="the link up")
        _publish_prices(broker)
        wait_for(lambda: metric(port, LOAD) == FULL_MW, timeout=10, what="the fleet mining")
        assert metric(port, FAILSAFE) == 0.0

        assert broker.proc is not None
        broker.proc.kill()  # SIGKILL: no goodbye to the clients
        broker.proc.wait(timeout=5)
        broker.proc = None
        killed = time.monotonic()
        wait_for(lambda: summed(port, "hashspark_feed_up{") == 0, timeout=15, what="feeds down")
        # The outage outlives price_max_age_s: the fail-safe curtails the site, visibly.
        wait_for(lambda: metric(port, FAILSAFE) == 1.0, timeout=10, what="the fail-safe")
        assert time.monotonic() - killed >= MAX_AGE_S - 1.0  # not before the price aged out
        wait_for(lambda: metric(port, LOAD) == 0.0, timeout=5, what="the site curtailed")
        assert proc.poll() is None, "the daemon must ride out a broker outage"
        assert summed(port, "hashspark_feed_outages_total{") >= 1

        accepted_before = summed(port, "hashspark_feed_readings_accepted_total{")
        broker.start()  # same port, fresh broker (no persistence: subscriptions are gone)
        wait_for(lambda: summed(port, "hashspark_feed_up{") == 1, timeout=20, what="reconnect")
        _publish_prices(broker)  # readings resume on the resubscribed topics
        wait_for(
            lambda: summed(port, "hashspark_feed_readings_accepted_total{") >= accepted_before + 2,
            timeout=10,
            what="readings accepted after the restart",
        )
        wait_for(lambda: metric(port, FAILSAFE) == 0.0, timeout=5, what="the fail-safe lifted")
        wait_for(lambda: metric(port, LOAD) == FULL_MW, timeout=5, what="the fleet mining again")
        assert healthz(port)["stuck"] == []

    events = _events(log)
    assert "feed_outage" in events
    assert "feed_recovered" in events
    stale = [i for i, e in enumerate(events) if e.startswith("failsafe_engaged: price stale")]
    assert stale, events
    assert "failsafe_cleared" in events[stale[0] :]
    rows = ledger_intervals(state)
    assert_no_overlap(rows)
    assert [r[2] is not None for r in rows].count(True) >= 1, "the stale span is in the ledger"
    assert rows[0][2] is None
    assert rows[-1][2] is None  # back on economics after the recovery


def test_a_price_feed_that_stops_trips_the_failsafe_and_recovers(
    tmp_path: Path, broker: Broker
) -> None:
    port, state, log = free_port(), tmp_path / "state", tmp_path / "daemon.log"
    with daemon(_config(tmp_path, broker.port), state, port, log):
        wait_for(lambda: summed(port, "hashspark_feed_up{") == 1, what="the link up")
        _publish_prices(broker)
        wait_for(lambda: metric(port, LOAD) == FULL_MW, timeout=10, what="the fleet mining")
        last = time.monotonic()
        # The publisher goes quiet; the broker and the link stay up.
        wait_for(lambda: metric(port, FAILSAFE) == 1.0, timeout=10, what="the fail-safe")
        assert time.monotonic() - last >= MAX_AGE_S - 1.0
        assert metric(port, LOAD) == 0.0
        assert summed(port, "hashspark_feed_up{") == 1  # the link is fine: the data is stale
        broker.publish("hashspark/chaos/price", json.dumps({"usd_per_mwh": 20.0, "ts": _ts()}))
        wait_for(lambda: metric(port, FAILSAFE) == 0.0, timeout=5, what="the fail-safe lifted")
        wait_for(lambda: metric(port, LOAD) == FULL_MW, timeout=5, what="the fleet mining again")
    rows = ledger_intervals(state)
    assert_no_overlap(rows)
    assert [r[2] for r in rows].count(None) >= 2
    assert any(r[2] is not None for r in rows)


def test_sigkill_on_the_live_clock_then_restart_counts_nothing_twice(
    tmp_path: Path, broker: Broker
) -> None:
    config, state, log = _config(tmp_path, broker.port), tmp_path / "state", tmp_path / "d.log"
    port = free_port()
    proc = subprocess.Popen(
        [EXE, "run", str(config), "--state-dir", str(state), "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    try:
        wait_for(lambda: summed(port, "hashspark_feed_up{") == 1, what="the link up")
        # Every new price closes an interval: settle a handful, then kill mid-stream.
        settle_prices(
            lambda p: _publish_prices(broker, p),
            state,
            [20.0 + i for i in range(6)],
            first_opens=True,
        )
        assert len(ledger_intervals(state)) >= 5
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = ledger_intervals(state)
    assert_no_overlap(before)

    port = free_port()
    with daemon(config, state, port, log):
        wait_for(lambda: summed(port, "hashspark_feed_up{") == 1, what="the link up again")
        settle_prices(
            lambda p: _publish_prices(broker, p),
            state,
            [30.0 + i for i in range(3)],
            first_opens=True,
        )
        assert len(ledger_intervals(state)) >= len(before) + 2
    after = ledger_intervals(state)
    assert_no_overlap(after)  # the restart resumed after the last committed interval
    assert after[: len(before)] == before  # what was committed before the kill is intact
    assert len({r[3] for r in after}) == 2  # two runs wrote it
    conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    conn.close()


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("9999-12-31T23:59:59-23:59", "future"),  # year 10000 in UTC: exited at every start
        ("0001-01-01T00:00:00+23:59", "out_of_range"),  # year 0 in UTC: left the daemon hung
    ],
)
def test_a_retained_price_with_an_impossible_time_is_rejected_and_the_daemon_runs_on(
    tmp_path: Path, broker: Broker, ts: str, reason: str
) -> None:
    """Issue 16: the retained reading arrives first, at every start; it is counted, no more."""
    broker.publish(
        "hashspark/chaos/price", json.dumps({"usd_per_mwh": 20.0, "ts": ts}), retain=True
    )
    port, state, log = free_port(), tmp_path / "state", tmp_path / "daemon.log"
    rejected = (
        'hashspark_feed_readings_rejected_total{feed="chaos:price:mqtt:hashspark/chaos/price",'
        f'reason="{reason}"}}'
    )
    for _ in range(2):  # and again after a restart: the broker still holds it
        with daemon(_config(tmp_path, broker.port), state, port, log) as proc:
            wait_for(lambda: metric(port, rejected) == 1.0, timeout=10, what="the rejection")
            _publish_prices(broker)
            wait_for(lambda: metric(port, LOAD) == FULL_MW, timeout=10, what="the fleet mining")
            assert proc.poll() is None
            assert healthz(port)["stuck"] == []
    assert sum(e.startswith("reading_rejected") for e in _events(log)) == 2
