"""The ledger has no holes: a live daemon reloaded three times and restarted books every
second of its wall span, the restart's gap as down, and the fixed PPA over all of it.

``hashspark run`` runs as a process on the system clock with live MQTT feeds over a real
Mosquitto; the assertions read the ledger file and ``hashspark ledger summary --config``.
"""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.daemon_kit import EXE, free_port, healthz, wait_for
from tests.feeds.conftest import Broker

PPA_MW, PPA_USD = 0.7, 45.0  # the whole fleet: 200 Antminer S21 at 3,500 W
CALL_MW, PREMIUM = 0.35, 3.5


def _config(
    tmp: Path, broker_port: int, *, hysteresis: float = 0.0, premium: float = PREMIUM
) -> str:
    broker = (
        f'{{ host = "127.0.0.1", port = {broker_port}, client_id = "hashspark-holes", '
        "keepalive_s = 5, connect_timeout_s = 2, backoff = { base_s = 0.2, cap_s = 1 } }"
    )
    return f"""
[daemon]
cycle_s = 0.5
state_dir = "{tmp / "state"}"

[[sites]]
id = "holes"
pool_fee = 0.02
price_feed = {{ type = "mqtt", broker = {broker} }}
hashprice_feed = {{ type = "mqtt", broker = {broker} }}

[[sites.miners]]
model = "Antminer S21"
count = 200

[sites.supply]
type = "fixed_ppa"
quantity_mw = {PPA_MW}
price_usd_per_mwh = {PPA_USD}

[[sites.hedges]]
type = "short_call"
id = "call-200"
quantity_mw = {CALL_MW}
strike_usd_per_mwh = 200
premium_usd_per_mwh = {premium}

[sites.policy]
hysteresis_usd_per_mwh = {hysteresis}
"""


@contextmanager
def _daemon(config: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``hashspark run CONFIG``: the state directory is the config's."""
    proc = subprocess.Popen(
        [EXE, "run", str(config), "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    try:
        wait_for(lambda: healthz(port), what="the daemon's /healthz")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0, log.read_text()


def _publish(broker: Broker, price: float) -> None:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    broker.publish(
        "hashspark/holes/hashprice", json.dumps({"usd_per_ph_day": 50.0, "ts": ts}), retain=True
    )
    broker.publish(
        "hashspark/holes/price", json.dumps({"usd_per_mwh": price, "ts": ts}), retain=True
    )


def _rows(state: Path) -> list[tuple[float, float, str, float, float]]:
    conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        return [
            (float(a), float(b), str(k), float(c), float(p))
            for a, b, k, c, p in conn.execute(
                "SELECT start_s, end_s, kind, power_cost_micro_usd / 1e6, "
                "call_premium_micro_usd / 1e6 FROM intervals ORDER BY start_s"
            )
        ]
    finally:
        conn.close()


def _reloads(log: Path) -> int:
    return sum('"event": "reloaded"' in line for line in log.read_text().splitlines())


# 15 s: in the slow suite; the default suite has a restart that counts nothing twice
# (tests/feeds/test_chaos_daemon.py, tests/test_daemon.py) and ledger coverage
# (tests/test_ledger.py::test_summary_shows_coverage_down_hours_and_gaps).
@pytest.mark.slow
def test_three_reloads_and_a_restart_leave_no_hole(tmp_path: Path, broker: Broker) -> None:
    config, log, port = tmp_path / "holes.toml", tmp_path / "daemon.log", free_port()
    state = tmp_path / "state"
    config.write_text(_config(tmp_path, broker.port))
    with _daemon(config, port, log) as proc:
        _publish(broker, 20.0)
        wait_for(lambda: healthz(port)["sites"]["holes"]["at"], timeout=15, what="a cycle")
        time.sleep(1.0)
        # Three reloads: the same file, a policy change, a new premium (new settlement terms).
        for i, text in enumerate(
            [
                _config(tmp_path, broker.port),
                _config(tmp_path, broker.port, hysteresis=2.0),
                _config(tmp_path, broker.port, hysteresis=2.0, premium=4.0),
            ]
        ):
            config.write_text(text)
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda i=i: _reloads(log) == i + 1, what=f"reload {i + 1}")
            _publish(broker, 20.0 + i)  # a new price: an interval boundary of its own
            time.sleep(1.5)
    stopped = time.time()
    time.sleep(3.0)  # the daemon is down
    with _daemon(config, port, log):
        _publish(broker, 25.0)
        wait_for(
            lambda: any(k == "down" for _, _, k, _, _ in _rows(state)),
            timeout=15,
            what="the down interval",
        )
        time.sleep(1.5)
    rows = _rows(state)

    # Coverage: contiguous from the first interval to the last, nothing counted twice.
    for a, b in itertools.pairwise(rows):
        assert a[1] == b[0], f"a hole or an overlap: {a} then {b}"
    # The restart's gap is one down interval, at least as long as the daemon was down.
    down = [r for r in rows if r[2] == "down"]
    assert len(down) == 1
    assert down[0][0] <= stopped
    assert down[0][1] - down[0][0] >= 3.0
    # The fixed PPA is paid over the whole wall span, down time included.
    span_h = (rows[-1][1] - rows[0][0]) / 3600.0
    # Each interval's amount is booked to the micro-dollar: half a micro-dollar each at most.
    booked = pytest.approx(PPA_USD * PPA_MW * span_h, abs=0.5e-6 * len(rows) + 1e-9)
    assert sum(r[3] for r in rows) == booked
    assert down[0][4] == pytest.approx(
        4.0 * CALL_MW * (down[0][1] - down[0][0]) / 3600.0, abs=0.5e-6
    )
    conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    started = [r[0] for r in conn.execute("SELECT started_utc FROM runs")]
    conn.close()
    assert len(started) == 2
    assert all(s.startswith(str(datetime.now(UTC).year)) for s in started), started

    summary = subprocess.run(
        [EXE, "ledger", "summary", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    down_h = (down[0][1] - down[0][0]) / 3600.0
    assert "coverage 100.00%" in summary, summary
    assert f"{span_h:,.4f} h booked of {span_h:,.4f} h wall" in summary, summary
    assert f"{down_h:,.4f} h down, 0 gaps" in summary, summary
    cost = next(line for line in summary.splitlines() if "power_cost_usd" in line)
    assert float(cost.split()[-1].replace(",", "")) == pytest.approx(
        PPA_USD * PPA_MW * span_h, abs=0.01
    )
