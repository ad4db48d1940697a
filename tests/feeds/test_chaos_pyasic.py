"""Chaos at the daemon with real miner protocols: ``hashspark run`` on live MQTT feeds over a
real Mosquitto, its pyasic driver (unmodified pyasic) against a ``hashspark simulate`` fleet.

What an operator would check is asserted from three independent places: the simulator's
meter (what the miners really do, and how many commands each received), the daemon's
metrics, and the ledger it leaves behind. Simulated miners live on 127.52.0.0/16.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.daemon_kit import (
    EXE,
    assert_no_overlap,
    free_port,
    healthz,
    ledger_intervals,
    settle_prices,
    wait_for,
)
from tests.feeds.conftest import Broker
from tests.feeds.sim_fleet_kit import (
    NAMEPLATE_W,
    Group,
    daemon,
    daemon_config,
    sim_fleet,
    total,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="stock Antminers listen on port 80: needs root"
)

LOW, HIGH = 20.0, 500.0  # USD/MWh: far below and far above every model's breakeven
HASHPRICE = 50.0  # USD/PH/day: S19j Pro breaks even near 69 USD/MWh, S21 near 117


def _ips(block: int, first: int, count: int) -> tuple[str, ...]:
    return tuple(f"127.52.{block}.{i}" for i in range(first, first + count))


def _publish(broker: Broker, site: str, price: float) -> None:
    """A price and a hashprice, retained: a daemon (re)subscribing gets them at once."""
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    hashprice = json.dumps({"usd_per_ph_day": HASHPRICE, "ts": ts})
    broker.publish(f"hashspark/{site}/hashprice", hashprice, retain=True)
    broker.publish(
        f"hashspark/{site}/price", json.dumps({"usd_per_mwh": price, "ts": ts}), retain=True
    )


def _events(log: Path) -> list[str]:
    """Every log line's event: each line must be one JSON object (no library chatter)."""
    return [json.loads(line)["event"] for line in log.read_text().splitlines()]


# --- 10 % of the fleet in each fault mode --------------------------------------------------

FAULTS: dict[str, dict[str, float]] = {
    "unreachable": {},
    "slow": {"latency_s": 0.1},  # wall seconds per reply: slower, still within the deadlines
    "silent": {},
    "liar": {},
    "reject": {},
    "reboot": {"reboot_s": 90.0},  # simulated: 3 s of wall time at 30x
    "drift": {"drift_after_s": 45.0},  # a curtailed miner resumes by itself 1.5 s later
}
#: Faults, not pacing, are under test: a miner may be resumed as soon as the price falls
#: (pacing itself: tests/test_pacing.py, tests/test_pacing_loop.py and
#: tests/miners/test_pacing_pyasic.py).
NO_RAISE_INTERVAL = {"min_raise_interval_s": 0.0}
PER_FAMILY = 10  # one miner per family in each of the 7 modes: 3 of 30 (10 %) per mode
FAULT_DRIVER: dict[str, float | int] = {
    "concurrency": 64,
    "call_timeout_s": 2.0,  # a silent miner costs this much per read
    "discovery_timeout_s": 4.0,
    "confirm_timeout_s": 3.0,
    "confirm_poll_s": 0.2,
    "retry_attempts": 2,
    "retry_base_s": 0.05,
    "retry_cap_s": 0.2,
    "resume_batch_size": 30,
}


# 24 s: in the slow suite; the default suite has every fault mode per driver
# (tests/miners/test_driver_faults.py) and through the site loop (test_site_loop_pyasic.py).
@pytest.mark.slow
def test_ten_percent_of_the_fleet_in_each_fault_mode_at_once(
    tmp_path: Path, broker: Broker
) -> None:
    groups = (
        Group("luxos", "S19jPro", _ips(1, 1, PER_FAMILY)),
        Group("antminer", "S21", _ips(1, 11, PER_FAMILY)),
        Group("braiins", "S19jPro", _ips(1, 21, PER_FAMILY)),
    )
    by_fault = {kind: [g.ips[k] for g in groups] for k, kind in enumerate(FAULTS)}
    healthy = [ip for g in groups for ip in g.ips[len(FAULTS) :]]
    model = {ip: g.model for g in groups for ip in g.ips}
    family = {ip: g.family for g in groups for ip in g.ips}
    # Miners that answer and obey, if later than the others: they must end as economics say.
    obeying = healthy + by_fault["slow"] + by_fault["reboot"]
    dead = by_fault["unreachable"] + by_fault["silent"]
    site, state, log, port = "faults", tmp_path / "state", tmp_path / "daemon.log", free_port()
    config = daemon_config(
        tmp_path, broker.port, groups, site=site, cycle_s=1.0, failsafe="hold",
        driver=FAULT_DRIVER, pacing=NO_RAISE_INTERVAL,
    )  # fmt: skip

    with sim_fleet(tmp_path, groups) as sim, daemon(config, state, port, log) as proc:
        _publish(broker, site, LOW)
        wait_for(
            lambda: (
                total(port, "hashspark_miners", state="running") == 30
                and total(port, "hashspark_spot_price_usd_per_mwh") == LOW
            ),
            timeout=30,
            what="all 30 miners seen mining at the low price",
        )
        assert sum(m["commands"] for m in sim.miners().values()) == 0  # nothing to change

        for kind, params in FAULTS.items():
            sim.fault(by_fault[kind], {"kind": kind, **params})
        _publish(broker, site, HIGH)

        def curtailed_where_possible() -> bool:
            truth = sim.miners()
            return (
                all(truth[ip]["mode"] == "sleep" for ip in obeying)
                and all(truth[ip]["commands"] >= 2 for ip in by_fault["drift"])  # re-curtailed
                and all(truth[ip]["commands"] >= 1 for ip in by_fault["liar"] + by_fault["reject"])
            )

        wait_for(curtailed_where_possible, timeout=90, what="the obeying miners curtailed")
        # The faulty miners are reported: unreachable ones as such, the rest by outcome.
        wait_for(
            lambda: total(port, "hashspark_miners", state="unreachable") >= len(dead),
            timeout=20,
            what="unreachable and silent miners reported unreachable",
        )
        # Outcomes are counted when their confirmation ends (beside the loop): a liar's takes
        # the whole confirm_timeout_s, which may end after everything above.
        wait_for(
            lambda: total(port, "hashspark_commands_total", outcome="unverified") >= 3,  # liars
            timeout=20,
            what="the liars' commands counted unverified",
        )
        assert total(port, "hashspark_commands_total", outcome="rejected") >= 3
        truth = sim.miners()
        for ip in by_fault["liar"] + by_fault["reject"]:
            assert truth[ip]["mode"] == "normal", (ip, family[ip])  # nothing a driver can do
        for ip in dead:
            assert truth[ip]["commands"] == 0, ip  # never commanded while unreachable
        assert proc.poll() is None
        assert healthz(port)["stuck"] == []

        _publish(broker, site, LOW)
        wait_for(
            lambda: all(m["mode"] == "normal" for ip, m in sim.miners().items() if ip not in dead),
            timeout=90,
            what="every reachable miner mining again",
        )
        truth = sim.miners()
        for ip in healthy:
            if family[ip] != "antminer":  # stock firmware has no power target
                assert truth[ip]["power_target_w"] == NAMEPLATE_W[model[ip]], ip

        sim.clear_faults()  # the dead come back: the daemon reads them again
        wait_for(
            lambda: (
                total(port, "hashspark_miners", state="unreachable") == 0
                and total(port, "hashspark_miners", state="running") == 30
            ),
            timeout=60,
            what="every miner reachable and mining",
        )
        assert proc.poll() is None

    rows = ledger_intervals(state)
    assert len(rows) >= 2  # low -> high -> low: two closed intervals at least
    assert_no_overlap(rows)
    assert all(r[2] is None for r in rows)  # economics decided throughout, no fail-safe
    events = _events(log)
    assert "miners_unreachable" in events
    assert "miners_recovered" in events


# --- SIGKILL mid-cycle, restart: reconcile from telemetry, no command storm ----------------

KILL_DRIVER: dict[str, float | int] = {
    "concurrency": 2,  # commands trickle out: a kill lands with some sent, some not
    "call_timeout_s": 3.0,
    "discovery_timeout_s": 4.0,
    "confirm_timeout_s": 5.0,
    "confirm_poll_s": 0.2,
    "retry_attempts": 2,
    "retry_base_s": 0.05,
    "retry_cap_s": 0.2,
    "resume_batch_size": 30,
}


# 12 s: in the slow suite; the default suite has a SIGKILL and restart through pyasic
# (tests/feeds/test_restart_pyasic.py) and on the live clock (tests/feeds/test_chaos_daemon.py).
@pytest.mark.slow
def test_sigkill_mid_cycle_then_restart_commands_only_what_differs(
    tmp_path: Path, broker: Broker
) -> None:
    groups = (
        Group("luxos", "S19jPro", _ips(2, 1, 10)),
        Group("antminer", "S21", _ips(2, 11, 10)),
        Group("braiins", "S21", _ips(2, 21, 10)),
    )
    site, state, log = "restart", tmp_path / "state", tmp_path / "daemon.log"
    config = daemon_config(
        tmp_path, broker.port, groups, site=site, cycle_s=1.0, failsafe="hold",
        driver=KILL_DRIVER,
    )  # fmt: skip
    with sim_fleet(tmp_path, groups) as sim:
        port = free_port()
        proc = subprocess.Popen(
            [EXE, "run", str(config), "--state-dir", str(state), "--metrics-port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab"),
        )
        try:
            wait_for(lambda: total(port, "hashspark_feed_up") == 1, timeout=30, what="link up")
            _publish(broker, site, LOW)
            wait_for(
                lambda: total(port, "hashspark_spot_price_usd_per_mwh") == LOW,
                timeout=30,
                what="a cycle on the first price (it opens an interval)",
            )
            settle_prices(
                lambda p: _publish(broker, site, p),
                state,
                [LOW + 1, LOW + 2, LOW + 3],
                first_opens=False,
                timeout=20,
            )
            assert sum(m["commands"] for m in sim.miners().values()) == 0  # all mining already
            _publish(broker, site, HIGH)
            wait_for(
                lambda: sum(m["commands"] for m in sim.miners().values()) > 0,
                timeout=20,
                what="the first curtail commands",
            )
            os.kill(proc.pid, signal.SIGKILL)  # mid-cycle: commands in flight
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        before = ledger_intervals(state)
        assert_no_overlap(before)
        assert len(before) >= 3

        time.sleep(0.5)  # requests the simulator had already received finish
        at_kill = sim.miners()
        sent = {ip: m["commands"] for ip, m in at_kill.items()}
        to_curtail = sorted(ip for ip, m in at_kill.items() if m["mode"] == "normal")
        assert 0 < len(to_curtail) < 30, f"the kill should land mid-dispatch: {sent}"
        assert all(sent[ip] <= 1 for ip in sent)

        port = free_port()
        with daemon(config, state, port, log):
            wait_for(
                lambda: all(m["mode"] == "sleep" for m in sim.miners().values()),
                timeout=60,
                what="the rest of the fleet curtailed after the restart",
            )
            cycles = healthz(port)["sites"][site]["cycles"]
            wait_for(
                lambda: healthz(port)["sites"][site]["cycles"] >= cycles + 3,
                timeout=60,
                what="three more cycles (room for a storm)",
            )
            settle_prices(
                lambda p: _publish(broker, site, p),
                state,
                [HIGH + 10, HIGH + 20],
                first_opens=False,
                timeout=20,
            )  # the new run settles too
            wait_for(
                lambda: total(port, "hashspark_miners", state="curtailed") == 30,
                timeout=20,
                what="the daemon's view: all 30 curtailed",
            )
            after_restart = {ip: m["commands"] for ip, m in sim.miners().items()}
            applied = total(port, "hashspark_commands_total", outcome="applied")
            failed = total(port, "hashspark_commands_total") - applied

    # No storm: exactly one command to each miner that was still mining, none to the rest.
    extra = {ip: after_restart[ip] - sent[ip] for ip in sent if after_restart[ip] != sent[ip]}
    assert extra == dict.fromkeys(to_curtail, 1)
    assert applied == len(to_curtail)
    assert failed == 0

    after = ledger_intervals(state)
    assert_no_overlap(after)  # nothing counted twice
    assert after[: len(before)] == before  # committed rows intact
    assert len(after) >= len(before) + 2
    assert len({r[3] for r in after}) == 2
    conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    finally:
        conn.close()
