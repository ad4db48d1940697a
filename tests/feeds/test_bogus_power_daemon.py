"""Issue 16: miners reporting impossible wattage, through the daemon and into the ledger.

``hashspark run`` with the pyasic driver against a ``hashspark simulate`` fleet of LuxOS
and Braiins OS+ miners (127.66.0.0/16), live MQTT prices over a real Mosquitto. With the
fleet mining, the simulator's ``bogus_power`` fault makes one LuxOS miner report -5 W,
another NaN W (LuxOS's JSON API carries both), and one Braiins OS+ miner 1e9 W (its watts
are unsigned, so an absurd magnitude is what it can lie with). Then the price goes far
above every breakeven: the daemon must take each liar as faulty (unreachable, with the
reason; never as asleep), command none of them (nothing it reads from them can confirm a
command), curtail the healthy miners, and the ledger must book the liars as running at
their last known point: the meter shows them mining all along.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from tests.daemon_kit import assert_no_overlap, free_port, healthz, ledger_intervals, wait_for
from tests.feeds.conftest import Broker
from tests.feeds.sim_fleet_kit import (
    NAMEPLATE_W,
    Group,
    daemon,
    daemon_config,
    sim_fleet,
    total,
)

LOW, HIGH = 20.0, 5_000.0
DRIVER: dict[str, float | int] = {
    "concurrency": 16,
    "call_timeout_s": 2.0,
    "discovery_timeout_s": 4.0,
    "confirm_timeout_s": 3.0,
    "confirm_poll_s": 0.2,
    "retry_attempts": 2,
    "retry_base_s": 0.05,
    "retry_cap_s": 0.2,
}


def _publish(broker: Broker, price: float) -> None:
    now = datetime.now(UTC).isoformat()
    broker.publish("hashspark/bogus/hashprice", json.dumps({"usd_per_ph_day": 50.0, "ts": now}))
    broker.publish("hashspark/bogus/price", json.dumps({"usd_per_mwh": price, "ts": now}))


def _events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_miners_reporting_negative_nan_or_absurd_watts_are_faulty_not_curtailed(
    tmp_path: Path, broker: Broker
) -> None:
    groups = (
        Group("luxos", "S19jPro", tuple(f"127.66.1.{i}" for i in range(1, 5))),
        Group("braiins", "S19jPro", tuple(f"127.66.1.{i}" for i in range(11, 15))),
    )
    lux, bos = groups[0].ips, groups[1].ips
    liars = {lux[0]: -5.0, lux[1]: float("nan"), bos[0]: 1e9}
    healthy = [ip for g in groups for ip in g.ips if ip not in liars]
    state, log, port = tmp_path / "state", tmp_path / "daemon.log", free_port()
    config = daemon_config(
        tmp_path, broker.port, groups, site="bogus", cycle_s=1.0, failsafe="curtail",
        driver=DRIVER, pacing={"min_raise_interval_s": 0},  # resumes at once after the start
    )  # fmt: skip
    with sim_fleet(tmp_path, groups) as sim, daemon(config, state, port, log) as proc:
        _publish(broker, LOW)
        wait_for(
            lambda: (
                total(port, "hashspark_miners", state="running") == 8
                and all(m["mode"] == "normal" for m in sim.miners().values())
            ),
            timeout=30,
            what="all 8 miners seen mining at the low price, by the daemon and on the meter",
        )
        for ip, watts in liars.items():
            sim.fault([ip], {"kind": "bogus_power", "reported_w": watts})
        wait_for(
            lambda: total(port, "hashspark_miners", state="unreachable") == len(liars),
            timeout=20,
            what="the three liars taken as faulty",
        )
        commands_before = {ip: m["commands"] for ip, m in sim.miners().items()}
        _publish(broker, HIGH)
        wait_for(
            lambda: all(sim.miners()[ip]["mode"] == "sleep" for ip in healthy),
            timeout=60,
            what="the healthy miners curtailed on the meter",
        )
        truth = sim.miners()
        for ip in liars:
            assert truth[ip]["mode"] == "normal", ip  # they mined on, whatever they said
            assert truth[ip]["commands"] == commands_before[ip], ip  # and were not commanded
        wait_for(  # the daemon's view follows its next read of the fleet
            lambda: total(port, "hashspark_miners", state="curtailed") == len(healthy),
            timeout=20,
            what="the daemon seeing the healthy miners curtailed",
        )
        assert total(port, "hashspark_miners", state="unreachable") == len(liars)
        _publish(broker, LOW)  # closes the HIGH interval in the ledger
        wait_for(
            lambda: any(r[4] == HIGH for r in _rows(state)),
            timeout=20,
            what="the high-price interval booked",
        )
        assert proc.poll() is None
        assert healthz(port)["stuck"] == []

    assert_no_overlap(ledger_intervals(state))
    liar_mw = len(liars) * NAMEPLATE_W["S19jPro"] / 1e6
    high = [r for r in _rows(state) if r[4] == HIGH]
    assert high
    for _start, _end, running, curtailed, _price, running_mw in high:
        assert curtailed <= len(healthy), "a liar booked as curtailed"
        assert running >= len(liars), "a liar booked as not running"
        assert running_mw >= liar_mw * 0.99, "the liars' power missing from the books"
    assert high[-1][3] == len(healthy)  # once the healthy ones slept: exactly they
    unreachable = [e for e in _events(log) if e.get("event") == "miners_unreachable"]
    reasons = json.dumps(unreachable)
    assert "implausible telemetry: power" in reasons, reasons


def _rows(state: Path) -> list[tuple[float, float, int, int, float, float]]:
    conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT start_s, end_s, miners_running, miners_curtailed, price_usd_per_mwh, "
            "running_mw FROM intervals ORDER BY start_s"
        ).fetchall()
    finally:
        conn.close()
    return [(float(a), float(b), int(c), int(d), float(e), float(f)) for a, b, c, d, e, f in rows]
