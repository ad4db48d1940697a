"""Pacing on the site loop: a flapping price cannot storm the miners, a rejecting miner is
backed off, and a spike's curtail never waits behind a resume.

Prices come through the in-process feed adapter (the live parser and store), so each one
wakes the loop as an MQTT message would; the clock is simulated. Commands are counted by
the driver itself, not by the loop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from adapters.feeds.inprocess import InProcessFeed
from adapters.feeds.payloads import DEFAULT_HASHPRICE_BOUND, DEFAULT_PRICE_BOUND, ReadingKind
from adapters.feeds.store import FeedStats
from adapters.ledger.memory import MemoryLedger
from adapters.metrics.book import PnlBook
from adapters.metrics.collector import Metrics
from adapters.miners.simulated import InProcessFleet
from controller.accounting.instruments import SpotSupply
from controller.app.assemble import assemble
from controller.decision.pacing import PacingParams
from controller.decision.policy import PolicyParams
from controller.decision.reconcile import (
    CommandBatch,
    Dispatched,
    DispatchReport,
    Outcome,
    Rejected,
)
from controller.domain import OFF, FailSafeAction, FleetSpec, ObservedFleet, build_fleet
from controller.runtime.site_loop import SiteLoop
from controller.site_model import SiteModel
from controller.status import SiteStatus, status_document

T0 = 1_750_000_000.0
FLEET = build_fleet([("Antminer S19j Pro", 6, [(104.0, 3068.0)])])
LOW, SPIKE = 20.0, 5_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(0)
        self.t = max(self.t, t)


@dataclass
class CountingFleet:
    """The in-process fleet; every command is logged, and ``rejecting`` miners refuse."""

    inner: InProcessFleet
    clock: Clock
    rejecting: frozenset[int] = frozenset()
    log: list[tuple[float, int, int, str]] = field(default_factory=list)  # (t, miner, point, ok)

    async def observe(self) -> ObservedFleet:
        return await self.inner.observe()

    async def apply(self, batch: CommandBatch) -> DispatchReport:
        refuse = np.isin(batch.miner, list(self.rejecting))
        obey = CommandBatch(miner=batch.miner[~refuse], point=batch.point[~refuse])
        applied = await self.inner.apply(obey) if len(obey) else DispatchReport(())
        outcomes: dict[int, Outcome] = {d.miner: d.outcome for d in applied.dispatched}
        for m in batch.miner[refuse].tolist():
            outcomes[m] = Rejected("test: the miner refuses")
        dispatched = []
        for m, p in zip(batch.miner.tolist(), batch.point.tolist(), strict=True):
            ok = "applied" if m not in self.rejecting else "rejected"
            self.log.append((self.clock.now(), m, p, ok))
            dispatched.append(Dispatched(m, p, outcomes[m]))
        return DispatchReport(tuple(dispatched))

    def sent(self, miner: int | None = None, *, point: int | None = None) -> list[float]:
        """When commands went out, to ``miner`` (any if None) and ``point`` (any if None)."""
        return [
            t
            for t, m, p, _ in self.log
            if (miner is None or m == miner) and (point is None or p == point)
        ]


@dataclass
class Site:
    loop: SiteLoop
    driver: CountingFleet
    clock: Clock
    price: InProcessFeed
    statuses: list[SiteStatus]

    def publish(self, value: float) -> None:
        ts = datetime.fromtimestamp(self.clock.now(), UTC).isoformat()
        payload = json.dumps({"usd_per_mwh": value, "ts": ts}).encode()
        assert self.price.deliver(payload, self.clock.now())

    async def settle(self) -> None:
        """A cycle, then one for the commands that ended (as the loop's wake-up would)."""
        await self.loop.cycle()
        await asyncio.sleep(0)
        await self.loop.cycle()


def _site(
    pacing: PacingParams,
    *,
    running: bool = True,
    rejecting: frozenset[int] = frozenset(),
    fleet: FleetSpec = FLEET,
) -> Site:
    clock = Clock()
    driver = CountingFleet(InProcessFleet(fleet, clock, running=running), clock, rejecting)
    stats = FeedStats()
    price = InProcessFeed("price", ReadingKind.PRICE, DEFAULT_PRICE_BOUND, stats)
    hashprice = InProcessFeed("hashprice", ReadingKind.HASHPRICE, DEFAULT_HASHPRICE_BOUND, stats)
    ts = datetime.fromtimestamp(T0, UTC).isoformat()
    hashprice.deliver(json.dumps({"usd_per_ph_day": 50.0, "ts": ts}).encode(), T0)
    statuses: list[SiteStatus] = []

    async def sink(status: SiteStatus) -> None:
        statuses.append(status)

    params = PolicyParams(
        supply=SpotSupply(), failsafe_action=FailSafeAction.HOLD, price_max_age_s=86_400.0
    )
    loop = assemble(
        SiteModel("s", fleet, params, SpotSupply(), (), pacing=pacing),
        clock=clock,
        price_feed=price.feed,
        hashprice_feed=hashprice.feed,
        driver=driver,
        ledger=MemoryLedger(),
        cycle_s=30.0,
        status_sink=sink,
    )
    return Site(loop, driver, clock, price, statuses)


async def _flap(site: Site, prices: int, step_s: float) -> None:
    """Alternate spike and low prices, one each ``step_s``, a cycle per price; after every
    spike the whole fleet must be off at once (pacing never delays a curtail)."""
    for k in range(prices):
        value = SPIKE if k % 2 == 0 else LOW
        site.publish(value)
        await site.settle()
        if value == SPIKE:
            point = (await site.driver.observe()).point
            assert (point == OFF).all(), f"price {k}: {point.tolist()} after a spike"
        site.clock.t += step_s


async def test_a_flapping_price_produces_at_most_the_commands_pacing_allows() -> None:
    paced = _site(PacingParams())
    await _flap(paced, prices=600, step_s=1.0)  # ten minutes, a new price every second
    span = paced.clock.t - T0
    raise_bound = PacingParams().raise_bound(span)  # per miner: 1 + 600 // 60 = 11
    for m in range(FLEET.size):
        raises = paced.driver.sent(m, point=1)
        curtails = paced.driver.sent(m, point=OFF)
        assert len(raises) <= raise_bound
        assert all(b - a >= 60.0 for a, b in itertools.pairwise(raises))
        # single-point miners, every command applied: each curtail undoes a resume
        assert len(curtails) <= len(raises) + 1
    # The same prices without pacing: every price moves every miner.
    free = _site(PacingParams.off())
    await _flap(free, prices=600, step_s=1.0)
    assert len(free.driver.log) == 600 * FLEET.size
    assert len(paced.driver.log) <= FLEET.size * (2 * raise_bound + 1)
    assert len(paced.driver.log) * 20 < len(free.driver.log)
    deferred = dict(paced.statuses[-1].pacing.deferred)
    assert deferred["resume_interval"] > 0
    assert deferred["backoff"] == 0


async def test_a_spike_right_after_a_resume_is_curtailed_in_the_same_cycle() -> None:
    site = _site(PacingParams(), running=False)
    site.publish(LOW)
    await site.settle()
    assert site.driver.sent(point=1) == [T0] * FLEET.size  # resumed
    site.clock.t += 0.5
    site.publish(SPIKE)
    await site.loop.cycle()  # one cycle: the curtail goes out in it
    assert site.driver.sent(point=OFF) == [T0 + 0.5] * FLEET.size
    # And the resume that follows waits out the interval, then goes out once.
    site.clock.t += 0.5
    site.publish(LOW)
    await site.settle()
    assert site.driver.sent(point=1) == [T0] * FLEET.size
    assert site.statuses[-1].pacing.paced == FLEET.size
    await site.loop.run(until=T0 + 120.0)
    assert site.driver.sent(point=1) == [T0] * FLEET.size + [T0 + 60.5] * FLEET.size


async def test_a_rejecting_miner_is_backed_off_and_shown_in_metrics_and_status() -> None:
    site = _site(PacingParams(), running=False, rejecting=frozenset({0}))
    site.publish(LOW)
    await site.loop.run(until=T0 + 1800.0)  # half an hour, the loop waking as it will
    attempts = site.driver.sent(0)
    gaps = np.diff(attempts)
    # Without backoff it would be asked every 60 s (the raise interval): 30 times.
    # With it: backoffs of 10, 20, 40, 80, 160, 320, 600 (the cap) s after each refusal,
    # never less than the raise interval.
    assert gaps.tolist() == [60.0, 60.0, 60.0, 80.0, 160.0, 320.0, 600.0]
    assert all(t == T0 for t in site.driver.sent(1) + site.driver.sent(5))  # the others once
    last = site.statuses[-1]
    assert last.pacing.in_backoff == 1
    assert dict(last.pacing.deferred)["backoff"] > 0
    assert status_document(last)["pacing"] == {
        "paced": 1,
        "in_backoff": 1,
        "deferred": dict(last.pacing.deferred),
    }
    registry = CollectorRegistry()
    metrics = Metrics(registry, PnlBook())
    metrics.status(last)
    text = generate_latest(registry).decode()
    assert 'hashspark_miners_in_backoff{site="s"} 1.0' in text
    assert 'hashspark_miner_commands_deferred_total{reason="backoff",site="s"}' in text


async def test_an_applied_command_ends_the_backoff() -> None:
    site = _site(PacingParams(), running=False, rejecting=frozenset({0}))
    site.publish(LOW)
    await site.loop.run(until=T0 + 400.0)
    assert site.statuses[-1].pacing.in_backoff == 1
    site.driver.rejecting = frozenset()  # the miner's firmware is fixed
    await site.loop.run(until=T0 + 2000.0)
    assert site.driver.log[-1][1:] == (0, 1, "applied")
    assert site.statuses[-1].pacing.in_backoff == 0
    assert (await site.driver.observe()).point.tolist() == [1] * FLEET.size


async def test_each_group_is_paced_by_its_own_interval() -> None:
    # Miners 0-2 resume a minute after a curtail (the site's), 3-5 after five (their group's).
    per_miner = PacingParams(min_raise_interval_s=np.repeat([60.0, 300.0], 3))
    site = _site(per_miner)
    site.publish(SPIKE)
    await site.settle()
    site.clock.t += 1.0
    site.publish(LOW)
    await site.loop.run(until=T0 + 400.0)
    resumed = {m: site.driver.sent(m, point=1) for m in range(FLEET.size)}
    assert resumed == {m: [T0 + (60.0 if m < 3 else 300.0)] for m in range(FLEET.size)}
