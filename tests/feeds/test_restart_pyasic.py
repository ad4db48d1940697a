"""A grid command outlives the daemon: ``hashspark run`` through pyasic against a
``hashspark simulate`` fleet, a demand response at 0 MW, SIGKILL, restart.

The truth is the simulator's meter (each miner's mode, power and the commands it received);
the daemon's /healthz, metrics and log say why. Simulated miners on 127.52.4.0/24.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.daemon_kit import EXE, free_port, get, healthz, wait_for
from tests.feeds.conftest import Broker
from tests.feeds.sim_fleet_kit import Group, SimFleet, daemon, daemon_config, sim_fleet, total

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="simulated miners bind loopback addresses of a fixed block as root"
)

SITE = "grid"
LOW = 20.0  # USD/MWh: far below every model's breakeven: the economics say run everything
DRIVER: dict[str, float | int] = {
    "concurrency": 16,
    "call_timeout_s": 3.0,
    "discovery_timeout_s": 4.0,
    "confirm_timeout_s": 5.0,
    "confirm_poll_s": 0.2,
    "retry_attempts": 2,
    "retry_base_s": 0.05,
    "retry_cap_s": 0.2,
    "resume_batch_size": 30,
}
GROUPS = (
    Group("luxos", "S19jPro", tuple(f"127.52.4.{i}" for i in range(1, 6))),
    Group("braiins", "S21", tuple(f"127.52.4.{i}" for i in range(6, 11))),
)


def _ts(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat(timespec="seconds")


def _publish_low(broker: Broker) -> None:
    ts = _ts()
    broker.publish(
        f"hashspark/{SITE}/hashprice", json.dumps({"usd_per_ph_day": 50.0, "ts": ts}), retain=True
    )
    broker.publish(
        f"hashspark/{SITE}/price", json.dumps({"usd_per_mwh": LOW, "ts": ts}), retain=True
    )


def _command(config: Path, doc: dict[str, object]) -> dict[str, object]:
    done = subprocess.run(
        [EXE, "command", str(config), json.dumps(doc)], check=False, capture_output=True, timeout=30
    )
    ack = dict(json.loads(done.stdout))
    assert done.returncode == 0, ack
    return ack


def _all_asleep(sim: SimFleet) -> bool:
    return all(m["mode"] == "sleep" for m in sim.miners().values())


def test_a_demand_response_active_at_sigkill_is_obeyed_after_the_restart(
    tmp_path: Path, broker: Broker
) -> None:
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    config = daemon_config(
        tmp_path, broker.port, GROUPS, site=SITE, cycle_s=1.0, failsafe="hold", driver=DRIVER
    )
    with sim_fleet(tmp_path, GROUPS) as sim:
        port = free_port()
        proc = subprocess.Popen(
            [EXE, "run", str(config), "--state-dir", str(state), "--metrics-port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab"),
        )
        try:
            wait_for(lambda: total(port, "hashspark_feed_up") == 1, timeout=30, what="link up")
            _publish_low(broker)
            wait_for(
                lambda: total(port, "hashspark_miners", state="running") == 10,
                timeout=30,
                what="all ten mining at the low price",
            )
            _command(
                config,
                {
                    "command": "demand_response",
                    "id": "dr-1",
                    "max_mw": 0,
                    "deadline": _ts(),
                    "end": _ts(900),
                    "issued_by": "ercot",
                },
            )
            wait_for(lambda: _all_asleep(sim), timeout=30, what="the fleet curtailed for the DR")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        sent = {ip: m["commands"] for ip, m in sim.miners().items()}

        port = free_port()
        with daemon(config, state, port, log):
            # The price is still low (retained, and remembered): only the restored demand
            # response keeps the miners off. Watch the meter over several cycles.
            def cycles() -> int:
                return int(healthz(port)["sites"][SITE]["cycles"])

            wait_for(lambda: cycles() >= 1, timeout=60, what="the first cycle")
            assert healthz(port)["sites"][SITE]["decision"] == "demand_response"
            while cycles() < 4:
                truth = sim.miners()
                assert all(m["mode"] == "sleep" for m in truth.values()), truth
            assert (
                json.loads(get(f"{sim.url}/meter"))["total_power_w"] < 1_000.0
            )  # asleep: ~24 W each, not 3 kW
            assert {ip: m["commands"] for ip, m in sim.miners().items()} == sent  # none sent
            assert total(port, "hashspark_spot_price_usd_per_mwh") == LOW
            assert total(port, "hashspark_miners", state="curtailed") == 10
            restored = [
                json.loads(line)
                for line in log.read_text().splitlines()
                if '"command_restored"' in line
            ]
            assert [(e["id"], e["kind"], e["max_mw"]) for e in restored] == [
                ("dr-1", "demand_response", 0.0)
            ]

            # Cleared, the economics decide again: the fleet mines.
            _command(config, {"command": "clear", "target": "dr-1", "id": "clear-dr-1"})
            wait_for(
                lambda: all(m["mode"] == "normal" for m in sim.miners().values()),
                timeout=60,
                what="the fleet mining after the clear",
            )
    saved = json.loads((state / "commands" / f"{SITE}.json").read_text())
    assert saved["overrides"] == []  # the clear reached the disk too
