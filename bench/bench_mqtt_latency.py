"""Benchmark: a price published on MQTT to the feed's wake-up, and to the first miner command.

Starts its own Mosquitto on a free loopback port, connects an ``MqttLink`` and a separate
aiomqtt publisher, and publishes N prices one at a time (QoS 1), alternating cheap and
expensive so that every price flips the decision. For each it measures the time from the
publish call to (1) the store's listener (parse, validation, store, wake-up) and (2) the
first ``apply`` on the driver, the site loop being woken by the feed's ``updated`` event
and running one cycle (observe, decide, reconcile) over a fleet of in-process miners.

    .venv/bin/python bench/bench_mqtt_latency.py [--n N]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import aiomqtt

from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.mqtt import MqttLink
from adapters.feeds.payloads import DEFAULT_PRICE_BOUND, ReadingKind
from adapters.feeds.recorder import format_timestamp
from adapters.feeds.store import FeedStats
from adapters.ledger.memory import MemoryLedger
from adapters.miners.simulated import InProcessFleet
from controller.accounting.instruments import SpotSupply
from controller.app.assemble import assemble
from controller.decision.policy import PolicyParams
from controller.decision.reconcile import CommandBatch, DispatchReport
from controller.domain import Reading, build_fleet
from controller.runtime import logs
from controller.runtime.clocks.system import SystemClock
from controller.runtime.site_loop import SiteModel


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private Mosquitto on a free loopback port."""
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\n"
        "allow_anonymous true\npersistence false\n"
    )
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(500):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.01)
    return proc, port


class _TimedFleet(InProcessFleet):
    """The in-process fleet, noting when the first command of each batch arrives."""

    applied_at: float = 0.0

    async def apply(self, batch: CommandBatch) -> DispatchReport:
        self.applied_at = time.perf_counter()
        return await super().apply(batch)


async def run(port: int, n: int, miners: int) -> tuple[list[float], list[float]]:
    """Publish ``n`` prices one at a time; latencies to the wake-up and to the command."""
    clock = SystemClock()
    link = MqttLink("bench", MqttBrokerConfig(host="127.0.0.1", port=port),
                    clock, FeedStats())  # fmt: skip
    feed = link.reading_feed(ReadingKind.PRICE, bound=DEFAULT_PRICE_BOUND)
    fleet = build_fleet([("Antminer S19j Pro", miners, [(104.0, 3068.0)])])
    driver = _TimedFleet(fleet, clock)
    hashprice = RecordedFeedStub(Reading(55.0, time.time(), "bench"))
    params = PolicyParams(supply=SpotSupply())
    loop = assemble(SiteModel("bench", fleet, params, SpotSupply(), ()), clock=clock,
                    price_feed=feed, hashprice_feed=hashprice, driver=driver,
                    ledger=MemoryLedger(), cycle_s=60)  # fmt: skip
    arrived: list[float] = []

    def on_reading(r: Reading) -> None:
        del r
        arrived.append(time.perf_counter())

    feed.store.add_listener(on_reading)
    to_feed: list[float] = []
    to_command: list[float] = []
    async with link, aiomqtt.Client("127.0.0.1", port) as pub:
        await link.wait_up(10)
        t0 = time.time() - 1.0
        for i in range(n):
            price = 20.0 if i % 2 else 900.0  # every price flips the decision
            ts = format_timestamp(t0 + i * 1e-3)  # fresh, strictly increasing
            payload = json.dumps({"usd_per_mwh": price, "ts": ts})
            feed.updated.clear()
            sent = time.perf_counter()
            await pub.publish("hashspark/bench/price", payload, qos=1)
            await asyncio.wait_for(feed.updated.wait(), 5)  # the site loop's wake-up
            await loop.cycle()
            to_feed.append(arrived[-1] - sent)
            if driver.applied_at < sent:
                raise RuntimeError(f"price {i} issued no command")
            to_command.append(driver.applied_at - sent)
    return to_feed, to_command


class RecordedFeedStub:
    """A hashprice that holds one reading (the benchmark is about the price path)."""

    name = "bench-hashprice"

    def __init__(self, reading: Reading) -> None:
        self._reading = reading

    def latest(self, now: float) -> Reading | None:
        """The one reading."""
        return self._reading

    def next_change_after(self, now: float) -> float | None:
        """Never."""
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--miners", type=int, default=1000)
    args = parser.parse_args()
    logs.configure("warning")
    with tempfile.TemporaryDirectory() as d:
        proc, port = start_broker(Path(d))
        try:
            to_feed, to_command = asyncio.run(run(port, args.n, args.miners))
        finally:
            proc.terminate()
            proc.wait()
    for label, samples in (("feed updated", to_feed), ("first miner command", to_command)):
        lat = sorted(samples)
        p50 = statistics.median(lat) * 1e3
        p99 = lat[int(0.99 * (len(lat) - 1))] * 1e3
        print(f"MQTT publish -> {label}, {len(lat)} prices, {args.miners} miners: "
              f"p50 {p50:.3f} ms, p99 {p99:.3f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
