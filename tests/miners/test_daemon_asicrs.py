"""The daemon on the asic-rs driver through a price spike and back, over a real Mosquitto.

``hashspark run`` with ``driver.type = "asic-rs"`` (unmodified pyasic-rs) on live MQTT
prices, against simulated LuxOS, stock Antminer and Braiins OS+ miners (asic-rs reads BOS+
through its GraphQL API, LuxOS over 4028, stock over the web CGI). Judged on the
simulator's meter: cheap power, every miner mines; a spike, every miner asleep; cheap
again, every miner back. Miners live on 127.67.200-202.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.daemon_kit import free_port, healthz, wait_for
from tests.feeds.conftest import Broker, broker
from tests.feeds.sim_fleet_kit import Group, daemon, daemon_config, sim_fleet

__all__ = ["broker"]  # the fixture, from the feeds' conftest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="stock Antminers listen on port 80: needs root"
)

LOW, SPIKE = 20.0, 500.0  # USD/MWh: all mine; all sleep
DRIVER: dict[str, float | int] = {
    "concurrency": 64,
    "call_timeout_s": 3.0,
    "discovery_timeout_s": 6.0,
    "confirm_timeout_s": 10.0,
    "confirm_poll_s": 0.3,
    "retry_attempts": 2,
    "retry_base_s": 0.05,
    "retry_cap_s": 0.2,
    "resume_batch_size": 20,
}


def _publish(b: Broker, site: str, price: float) -> None:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    b.publish(f"hashspark/{site}/hashprice", f'{{"usd_per_ph_day": 50.0, "ts": "{ts}"}}')
    b.publish(f"hashspark/{site}/price", f'{{"usd_per_mwh": {price}, "ts": "{ts}"}}')


@pytest.mark.slow  # the asic-rs driver's runs are in the slow suite
def test_the_daemon_on_asic_rs_curtails_on_a_spike_and_resumes_after(
    tmp_path: Path, broker: Broker
) -> None:
    groups = (
        Group("luxos", "S19jPro", tuple(f"127.67.200.{i}" for i in range(1, 9))),
        Group("antminer", "S19jPro", tuple(f"127.67.201.{i}" for i in range(1, 9))),
        Group("braiins", "S19jPro", tuple(f"127.67.202.{i}" for i in range(1, 9))),
    )
    ips = [ip for g in groups for ip in g.ips]
    site = "rs1"
    config = daemon_config(
        tmp_path,
        broker.port,
        groups,
        site=site,
        cycle_s=1.0,
        failsafe="hold",
        driver=DRIVER,
        driver_type="asic-rs",
    )
    port = free_port()
    with (
        sim_fleet(tmp_path, groups) as sim,
        daemon(config, tmp_path / "state", port, tmp_path / "daemon.log"),
    ):

        def modes(mode: str) -> bool:
            truth = sim.miners()
            return all(truth[ip]["mode"] == mode for ip in ips)

        _publish(broker, site, LOW)
        wait_for(lambda: modes("normal"), timeout=30, what="all mining at a low price")
        _publish(broker, site, SPIKE)
        wait_for(lambda: modes("sleep"), timeout=30, what="all asleep after the spike")

        def drawing_sleep_power() -> bool:
            truth = sim.miners()
            return all(truth[ip]["power_w"] < 200.0 for ip in ips)

        wait_for(drawing_sleep_power, timeout=10, what="every miner at sleep power")
        _publish(broker, site, LOW)
        # The default pacing resumes a miner at most once a minute (PacingConfig), counted
        # from the start-up plan that ran it: the resume waits for that, then goes out.
        wait_for(lambda: modes("normal"), timeout=90, what="all mining again")
        assert healthz(port)
