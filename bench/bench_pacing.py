"""A flapping price against actuation pacing: miner commands with and without it.

10,000 valid prices alternating between far above and far below every breakeven go through
the daemon's own site loop (``assemble``), one cycle per price, on the wall clock. Prices
come through the in-process feed adapter (the live parser and store), as an MQTT message
would. The miners are the in-process simulated fleet (every command applied at once);
each command is counted by the driver, not the loop.

The same prices run twice in one process: with the default pacing (``[sites.pacing]``)
and with pacing off; first on the wall clock, as fast as the loop takes them (the run is
shorter than the 60 s raise interval, so no miner resumes), then on a simulated clock
with a price every ``--step-s`` (0.1 s: 10,000 prices span 1,000 s, so resumes come
through once a minute). For each paced run it prints the bound the pacing rules allow
over the run's span T, per miner of a single-point fleet whose commands all apply:
raises <= 1 + floor(T / min_raise_interval_s); lowerings <= 1 + raises +
floor(T / min_lower_interval_s) (one undoing each raise, plus repeats).
It also checks that every spike left the whole fleet off (no curtail waited).

With ``--mqtt`` a third pair runs as the daemon does: a private Mosquitto, the MQTT feed
adapter, the loop's own ``run()`` woken by each reading (it decides on the newest price,
so it need not decide on every one), and a publisher sending the prices as fast as QoS 1
allows, the last one a spike that must leave the fleet off.

    .venv/bin/python bench/bench_pacing.py [--miners 100] [--prices 10000] [--step-s 0.1]
        [--mqtt]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import numpy as np

from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.inprocess import InProcessFeed
from adapters.feeds.mqtt import MqttLink
from adapters.feeds.payloads import DEFAULT_HASHPRICE_BOUND, DEFAULT_PRICE_BOUND, ReadingKind
from adapters.feeds.recorder import format_timestamp
from adapters.feeds.store import FeedStats
from adapters.ledger.memory import MemoryLedger
from adapters.miners.simulated import InProcessFleet
from controller.accounting.instruments import SpotSupply
from controller.app.assemble import assemble
from controller.decision.pacing import PacingParams
from controller.decision.policy import PolicyParams
from controller.decision.reconcile import CommandBatch, DispatchReport
from controller.domain import OFF, FailSafeAction, FleetSpec, ObservedFleet, Reading, build_fleet
from controller.runtime import logs
from controller.runtime.clocks.system import SystemClock
from controller.site_model import SiteModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mqtt_latency import RecordedFeedStub, start_broker

LOW, SPIKE, HASHPRICE = 20.0, 5_000.0, 50.0


class SimClock:
    """A clock the benchmark moves: one step per price."""

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(0)
        self.t = max(self.t, t)


class Counting:
    """The in-process fleet, counting the commands it is sent, by direction."""

    def __init__(self, fleet: FleetSpec, clock: SystemClock | SimClock) -> None:
        self.inner = InProcessFleet(fleet, clock, running=True)
        self.raises = np.zeros(fleet.size, dtype=np.int64)
        self.lowers = np.zeros(fleet.size, dtype=np.int64)

    async def observe(self) -> ObservedFleet:
        return await self.inner.observe()

    async def apply(self, batch: CommandBatch) -> DispatchReport:
        off = batch.point == OFF
        np.add.at(self.lowers, batch.miner[off], 1)
        np.add.at(self.raises, batch.miner[~off], 1)
        return await self.inner.apply(batch)


def _payload(key: str, value: float, at: float) -> bytes:
    ts = datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")
    return json.dumps({key: value, "ts": ts}).encode()


async def flap(
    miners: int, prices: int, pacing: PacingParams, step_s: float | None
) -> dict[str, float]:
    """Run the prices through a fresh loop (on the wall clock if ``step_s`` is None, else a
    simulated one moved ``step_s`` per price); commands, span, spikes not fully obeyed."""
    clock: SystemClock | SimClock = SystemClock() if step_s is None else SimClock(time.time())
    fleet = build_fleet([("Antminer S19j Pro", miners, [(104.0, 3068.0)])])
    driver = Counting(fleet, clock)
    stats = FeedStats()
    price = InProcessFeed("price", ReadingKind.PRICE, DEFAULT_PRICE_BOUND, stats)
    hashprice = InProcessFeed("hashprice", ReadingKind.HASHPRICE, DEFAULT_HASHPRICE_BOUND, stats)
    hashprice.deliver(_payload("usd_per_ph_day", HASHPRICE, clock.now()), clock.now())
    params = PolicyParams(
        supply=SpotSupply(), failsafe_action=FailSafeAction.HOLD, price_max_age_s=86_400.0
    )
    loop = assemble(
        SiteModel("bench", fleet, params, SpotSupply(), (), pacing=pacing),
        clock=clock,
        price_feed=price.feed,
        hashprice_feed=hashprice.feed,
        driver=driver,
        ledger=MemoryLedger(),
        cycle_s=10.0,
    )
    late_spikes = 0
    began, start = time.perf_counter(), clock.now()
    for k in range(prices):
        spike = k % 2 == 0
        payload = _payload("usd_per_mwh", SPIKE if spike else LOW, clock.now())
        if not price.deliver(payload, clock.now()):
            raise SystemExit(f"bench_pacing: price {k} was rejected")
        await loop.cycle()
        if spike and (driver.inner._point != OFF).any():
            late_spikes += 1
        if isinstance(clock, SimClock) and step_s is not None:
            clock.t += step_s
    wall = time.perf_counter() - began
    span = clock.now() - start
    await loop.shutdown("keep")
    return {
        "wall_s": wall,
        "span_s": span,
        "raises": float(driver.raises.sum()),
        "lowers": float(driver.lowers.sum()),
        "max_raises_per_miner": float(driver.raises.max()),
        "late_spikes": float(late_spikes),
    }


async def flap_mqtt(port: int, miners: int, prices: int, pacing: PacingParams) -> dict[str, float]:
    """The prices over MQTT to a loop running as the daemon runs it; commands and span."""
    clock = SystemClock()
    broker = MqttBrokerConfig(host="127.0.0.1", port=port, client_id=f"pacing-{time.time_ns()}")
    link = MqttLink("bench", broker, clock, FeedStats())
    feed = link.reading_feed(ReadingKind.PRICE, bound=DEFAULT_PRICE_BOUND)
    fleet = build_fleet([("Antminer S19j Pro", miners, [(104.0, 3068.0)])])
    driver = Counting(fleet, clock)
    params = PolicyParams(supply=SpotSupply(), failsafe_action=FailSafeAction.HOLD)
    loop = assemble(
        SiteModel("bench", fleet, params, SpotSupply(), (), pacing=pacing),
        clock=clock,
        price_feed=feed,
        hashprice_feed=RecordedFeedStub(Reading(HASHPRICE, time.time(), "bench")),
        driver=driver,
        ledger=MemoryLedger(),
        cycle_s=10.0,
    )
    taken: list[float] = []
    feed.store.add_listener(lambda r: taken.append(r.value))
    stop = asyncio.Event()
    async with link, aiomqtt.Client("127.0.0.1", port) as pub:
        await link.wait_up(10)
        running = asyncio.create_task(loop.run(stop=stop))
        t0 = time.time() - 2.0
        began = time.perf_counter()
        for i in range(prices):
            value = SPIKE if (prices - 1 - i) % 2 == 0 else LOW  # the last one a spike
            payload = json.dumps({"usd_per_mwh": value, "ts": format_timestamp(t0 + i * 1e-4)})
            await pub.publish("hashspark/bench/price", payload, qos=1)
        for _ in range(2400):  # every price taken (at most 2 minutes)
            if len(taken) >= prices:
                break
            await asyncio.sleep(0.05)
        for _ in range(500):  # the last spike obeyed (at most 5 s)
            if not (driver.inner._point != OFF).any():
                break
            await asyncio.sleep(0.01)
        wall = time.perf_counter() - began
        late = float((driver.inner._point != OFF).any())
        stop.set()
        await running
    return {
        "wall_s": wall,
        "span_s": wall,
        "raises": float(driver.raises.sum()),
        "lowers": float(driver.lowers.sum()),
        "max_raises_per_miner": float(driver.raises.max()),
        "late_spikes": late,
        "taken": float(len(taken)),
        "cycles": float(loop.cycles),
    }


def bound(pacing: PacingParams, miners: int, wall_s: float) -> tuple[int, int]:
    """Most raises per miner, and most commands for the fleet, the rules allow in wall_s."""
    raises = pacing.raise_bound(wall_s)
    lowers = 1 + raises + int(wall_s // pacing.min_lower_interval_s)
    return raises, miners * (raises + lowers)


def report(title: str, miners: int, paced: dict[str, float], free: dict[str, float]) -> bool:
    """Print one pair of runs; whether the paced run kept to the bound and every spike."""
    per_miner, allowed = bound(PacingParams(), miners, paced["span_s"])
    p_cmds = int(paced["raises"] + paced["lowers"])
    f_cmds = int(free["raises"] + free["lowers"])
    print(title)
    print(
        f"  paced:       {p_cmds:>9,} commands ({int(paced['raises']):,} resumes, "
        f"{int(paced['lowers']):,} curtails) over {paced['span_s']:.1f} s "
        f"({paced['wall_s']:.1f} s wall); most resumes of one miner: "
        f"{int(paced['max_raises_per_miner'])}"
    )
    print(
        f"  bound:       {allowed:>9,} commands the pacing allows in {paced['span_s']:.1f} s "
        f"({per_miner} resumes per miner at most)"
    )
    print(
        f"  not paced:   {f_cmds:>9,} commands ({int(free['raises']):,} resumes, "
        f"{int(free['lowers']):,} curtails) over {free['span_s']:.1f} s "
        f"({free['wall_s']:.1f} s wall)"
    )
    print(f"  ratio:       paced / not paced = {p_cmds / max(f_cmds, 1):.4f}")
    late = int(paced["late_spikes"] + free["late_spikes"])
    print(f"  spikes after which a miner was still running: {late} (must be 0)")
    return p_cmds <= allowed and not late and paced["max_raises_per_miner"] <= per_miner


async def main_async(args: argparse.Namespace) -> None:
    logs.configure("warning")
    p = PacingParams()
    print(
        f"{args.prices:,} alternating valid prices ({LOW:g} / {SPIKE:g} USD/MWh), one cycle "
        f"each, {args.miners:,} simulated single-point miners; default pacing: raise "
        f"interval {p.min_raise_interval_s:g} s, lowering repeat {p.min_lower_interval_s:g} s, "
        f"backoff {p.backoff_initial_s:g}-{p.backoff_max_s:g} s."
    )
    ok = True
    for title, step in (
        ("Wall clock, prices as fast as the loop takes them:", None),
        (f"Simulated clock, a price every {args.step_s:g} s:", args.step_s),
    ):
        paced = await flap(args.miners, args.prices, p, step)
        free = await flap(args.miners, args.prices, PacingParams.off(), step)
        ok = report(title, args.miners, paced, free) and ok
    if args.mqtt:
        with tempfile.TemporaryDirectory() as d:
            proc, port = start_broker(Path(d))
            try:
                paced = await flap_mqtt(port, args.miners, args.prices, p)
                free = await flap_mqtt(port, args.miners, args.prices, PacingParams.off())
            finally:
                proc.terminate()
                proc.wait()
        title = (
            f"Live MQTT, the loop's own run() (paced: {int(paced['taken']):,} prices taken, "
            f"{int(paced['cycles']):,} cycles; not paced: {int(free['taken']):,} taken, "
            f"{int(free['cycles']):,} cycles; the last price a spike):"
        )
        ok = report(title, args.miners, paced, free) and ok
    if not ok:
        raise SystemExit("bench_pacing: the pacing bound or a spike curtail was violated")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--miners", type=int, default=100)
    parser.add_argument("--prices", type=int, default=10_000)
    parser.add_argument("--step-s", type=float, default=0.1)
    parser.add_argument("--mqtt", action="store_true", help="also over a private Mosquitto")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
