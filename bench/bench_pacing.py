"""A flapping price against actuation pacing: miner commands with and without it.

10,000 valid prices alternating between far above and far below every breakeven go through
the daemon's own site loop (``assemble``), one cycle per price, on the wall clock. Prices
come through the in-process feed adapter (the live parser and store), as an MQTT message
would. The miners are the in-process simulated fleet (every command applied at once);
each command is counted by the driver, not the loop.

The same prices run twice in one process: with the default pacing (``[sites.pacing]``)
and with pacing off. For the paced run it prints the bound the pacing rules allow for the
run's wall time T, per miner of a single-point fleet whose commands all apply:
raises <= 1 + floor(T / min_raise_interval_s); lowerings <= 1 + raises +
floor(T / min_lower_interval_s) (one undoing each raise, plus repeats).
It also checks that every spike left the whole fleet off (no curtail waited).

    .venv/bin/python bench/bench_pacing.py [--miners 100] [--prices 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime

import numpy as np

from adapters.feeds.inprocess import InProcessFeed
from adapters.feeds.payloads import DEFAULT_HASHPRICE_BOUND, DEFAULT_PRICE_BOUND, ReadingKind
from adapters.feeds.store import FeedStats
from adapters.ledger.memory import MemoryLedger
from adapters.miners.simulated import InProcessFleet
from controller.accounting.instruments import SpotSupply
from controller.app.assemble import assemble
from controller.decision.pacing import PacingParams
from controller.decision.policy import PolicyParams
from controller.decision.reconcile import CommandBatch, DispatchReport
from controller.domain import OFF, FailSafeAction, FleetSpec, ObservedFleet, build_fleet
from controller.runtime import logs
from controller.runtime.clocks.system import SystemClock
from controller.site_model import SiteModel

LOW, SPIKE, HASHPRICE = 20.0, 5_000.0, 50.0


class Counting:
    """The in-process fleet, counting the commands it is sent, by direction."""

    def __init__(self, fleet: FleetSpec, clock: SystemClock) -> None:
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


def _payload(key: str, value: float) -> bytes:
    ts = datetime.now(UTC).isoformat(timespec="microseconds")
    return json.dumps({key: value, "ts": ts}).encode()


async def flap(miners: int, prices: int, pacing: PacingParams) -> dict[str, float]:
    """Run the prices through a fresh loop; commands, wall time, spikes not fully obeyed."""
    clock = SystemClock()
    fleet = build_fleet([("Antminer S19j Pro", miners, [(104.0, 3068.0)])])
    driver = Counting(fleet, clock)
    stats = FeedStats()
    price = InProcessFeed("price", ReadingKind.PRICE, DEFAULT_PRICE_BOUND, stats)
    hashprice = InProcessFeed("hashprice", ReadingKind.HASHPRICE, DEFAULT_HASHPRICE_BOUND, stats)
    hashprice.deliver(_payload("usd_per_ph_day", HASHPRICE), time.time())
    params = PolicyParams(supply=SpotSupply(), failsafe_action=FailSafeAction.HOLD)
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
    began = time.perf_counter()
    for k in range(prices):
        spike = k % 2 == 0
        if not price.deliver(_payload("usd_per_mwh", SPIKE if spike else LOW), time.time()):
            raise SystemExit(f"bench_pacing: price {k} was rejected")
        await loop.cycle()
        if spike and (driver.inner._point != OFF).any():
            late_spikes += 1
    wall = time.perf_counter() - began
    await loop.shutdown("keep")
    return {
        "wall_s": wall,
        "raises": float(driver.raises.sum()),
        "lowers": float(driver.lowers.sum()),
        "max_raises_per_miner": float(driver.raises.max()),
        "late_spikes": float(late_spikes),
    }


def bound(pacing: PacingParams, miners: int, wall_s: float) -> tuple[int, int]:
    """Most raises per miner, and most commands for the fleet, the rules allow in wall_s."""
    raises = pacing.raise_bound(wall_s)
    lowers = 1 + raises + int(wall_s // pacing.min_lower_interval_s)
    return raises, miners * (raises + lowers)


async def main_async(args: argparse.Namespace) -> None:
    logs.configure("warning")
    paced_params = PacingParams()
    paced = await flap(args.miners, args.prices, paced_params)
    free = await flap(args.miners, args.prices, PacingParams.off())
    per_miner, allowed = bound(paced_params, args.miners, paced["wall_s"])
    p_cmds = int(paced["raises"] + paced["lowers"])
    f_cmds = int(free["raises"] + free["lowers"])
    print(
        f"{args.prices:,} alternating valid prices ({LOW:g} / {SPIKE:g} USD/MWh), one cycle "
        f"each, {args.miners:,} simulated single-point miners, default pacing "
        f"(raise interval {paced_params.min_raise_interval_s:g} s, lowering repeat "
        f"{paced_params.min_lower_interval_s:g} s, backoff {paced_params.backoff_initial_s:g}"
        f"-{paced_params.backoff_max_s:g} s):"
    )
    print(
        f"  paced:       {p_cmds:>9,} commands ({int(paced['raises']):,} resumes, "
        f"{int(paced['lowers']):,} curtails) in {paced['wall_s']:.1f} s; "
        f"most resumes of one miner: {int(paced['max_raises_per_miner'])}"
    )
    print(
        f"  bound:       {allowed:>9,} commands the pacing allows in {paced['wall_s']:.1f} s "
        f"({per_miner} resumes per miner at most)"
    )
    print(
        f"  not paced:   {f_cmds:>9,} commands ({int(free['raises']):,} resumes, "
        f"{int(free['lowers']):,} curtails) in {free['wall_s']:.1f} s"
    )
    print(f"  ratio:       paced / not paced = {p_cmds / max(f_cmds, 1):.4f}")
    late = int(paced["late_spikes"] + free["late_spikes"])
    print(f"  spikes after which a miner was still running: {late} (must be 0)")
    if p_cmds > allowed or late or paced["max_raises_per_miner"] > per_miner:
        raise SystemExit("bench_pacing: the pacing bound or a spike curtail was violated")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--miners", type=int, default=100)
    parser.add_argument("--prices", type=int, default=10_000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
