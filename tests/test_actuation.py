"""Commands beside the site loop: newest plan wins, merit order, and the truth at shutdown.

A driver whose commands take time (each held until the test releases it) shows what the
loop does while commands are in flight: the in-process fleet confirms at once and would
hide it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import numpy as np

from adapters.feeds.inprocess import InProcessFeed
from adapters.feeds.payloads import DEFAULT_HASHPRICE_BOUND, DEFAULT_PRICE_BOUND, ReadingKind
from adapters.feeds.store import FeedStats
from adapters.ledger.memory import MemoryLedger
from adapters.miners.simulated import InProcessFleet
from controller.accounting.instruments import SpotSupply
from controller.app.assemble import assemble
from controller.decision.policy import PolicyParams
from controller.decision.reconcile import CommandBatch, DispatchReport
from controller.domain import OFF, FailSafeAction, FleetSpec, ObservedFleet, build_fleet
from controller.runtime.site_loop import SiteLoop
from controller.site_model import SiteModel
from controller.status import SiteStatus, status_document

T0 = 1_750_000_000.0
#: Two models: the S21 is the more efficient (17.5 J/TH against 29.5).
FLEET = build_fleet(
    [("Antminer S19j Pro", 4, [(104.0, 3068.0)]), ("Antminer S21", 4, [(200.0, 3500.0)])]
)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(0)
        self.t = max(self.t, t)


class SlowFleet:
    """The in-process fleet, except that each apply waits for ``release`` and is recorded."""

    def __init__(self, fleet: FleetSpec, clock: Clock) -> None:
        self.inner = InProcessFleet(fleet, clock, running=False)
        self.release = asyncio.Event()
        self.sent: list[tuple[list[int], list[int]]] = []  # (miners, points) per apply
        self.cancelled = 0

    async def observe(self) -> ObservedFleet:
        return await self.inner.observe()

    async def apply(self, batch: CommandBatch) -> DispatchReport:
        self.sent.append((batch.miner.tolist(), batch.point.tolist()))
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return await self.inner.apply(batch)


def _loop(
    driver: SlowFleet | InProcessFleet, clock: Clock, chunk: int | None = None
) -> tuple[SiteLoop, InProcessFeed, list[SiteStatus]]:
    stats = FeedStats()
    price = InProcessFeed("price", ReadingKind.PRICE, DEFAULT_PRICE_BOUND, stats)
    hashprice = InProcessFeed("hashprice", ReadingKind.HASHPRICE, DEFAULT_HASHPRICE_BOUND, stats)
    hashprice.deliver(json.dumps({"usd_per_ph_day": 50.0, "ts": _iso(T0)}).encode(), T0)
    statuses: list[SiteStatus] = []

    async def sink(status: SiteStatus) -> None:
        statuses.append(status)

    params = PolicyParams(supply=SpotSupply(), failsafe_action=FailSafeAction.HOLD)
    loop = assemble(
        SiteModel("s", FLEET, params, SpotSupply(), ()),
        clock=clock,
        price_feed=price.feed,
        hashprice_feed=hashprice.feed,
        driver=driver,
        ledger=MemoryLedger(),
        cycle_s=60.0,
        status_sink=sink,
    )
    if chunk is not None:
        loop._actuator._chunk = chunk  # the driver's resume_batch_size (pyasic has one)
    return loop, price, statuses


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _price(feed: InProcessFeed, clock: Clock, value: float) -> None:
    payload = json.dumps({"usd_per_mwh": value, "ts": _iso(clock.now())}).encode()
    assert feed.deliver(payload, clock.t)


async def test_a_spike_supersedes_resumes_queued_and_in_flight() -> None:
    clock = Clock()
    driver = SlowFleet(FLEET, clock)
    loop, price, _ = _loop(driver, clock, chunk=2)
    _price(price, clock, 20.0)  # cheap: resume all eight, two at a time
    await loop.cycle()
    assert len(driver.sent) == 1  # the first chunk is out, three wait their turn
    first_chunk = driver.sent[0][0]
    # Merit order: the S21s (miners 4..7, the more efficient) come back first.
    assert first_chunk == [4, 5]

    clock.t += 1.0
    _price(price, clock, 5_000.0)  # a spike while the first chunk is in flight
    await loop.cycle()
    assert driver.cancelled == 1  # the chunk in flight is cancelled
    # Its miners may have heard the resume: they are told to stop. Nothing else is sent:
    # the queued chunks never went out, and the rest of the fleet is off already.
    assert driver.sent[1] == (first_chunk, [OFF, OFF])
    driver.release.set()
    await asyncio.sleep(0)
    await loop.cycle()
    assert all(points == [OFF] * len(points) for _, points in driver.sent[1:])
    assert not (await driver.observe()).point.any()


async def test_a_cycle_does_not_wait_behind_commands_when_a_reading_arrives() -> None:
    clock = Clock()
    driver = SlowFleet(FLEET, clock)
    loop, price, statuses = _loop(driver, clock)
    _price(price, clock, 20.0)

    async def spike_soon() -> None:
        await asyncio.sleep(0.05)
        clock.t += 1.0
        _price(price, clock, 5_000.0)

    asyncio.get_running_loop().create_task(spike_soon())
    started = asyncio.get_running_loop().time()
    await loop.cycle()  # the resume is held by the driver; the spike ends the wait
    assert asyncio.get_running_loop().time() - started < 1.0
    assert statuses[-1].load_mw == 0.0  # nothing confirmed yet: accounted as read
    await loop.cycle()  # decides on the spike at once
    assert driver.cancelled == 1
    assert driver.sent[-1][1] == [OFF] * len(driver.sent[-1][1])


async def test_shutdown_publishes_the_state_the_miners_were_left_in() -> None:
    clock = Clock()
    driver = InProcessFleet(FLEET, clock, running=True)
    loop, price, statuses = _loop(driver, clock)
    _price(price, clock, 20.0)
    await loop.cycle()
    assert statuses[-1].state == "running"
    assert statuses[-1].load_mw > 0
    await loop.shutdown("curtail")
    last = status_document(statuses[-1])
    assert last["state"] == "stopped"
    assert last["load_mw"] == 0.0
    assert {m: v["curtailed"] for m, v in last["miners"].items()} == {  # type: ignore[attr-defined]
        "Antminer S19j Pro": 4,
        "Antminer S21": 4,
    }
    assert np.all((await driver.observe()).point == OFF)


async def test_a_miner_confirmed_running_that_reads_off_is_still_curtailed() -> None:
    """Firmware re-tuning after a new target reads off for a while; a spike must stop it."""
    clock = Clock()
    driver = InProcessFleet(FLEET, clock, running=False)
    loop, price, _ = _loop(driver, clock)
    _price(price, clock, 20.0)
    await loop.cycle()
    assert (await driver.observe()).point.all()
    # The miners now read off (re-tuning), though they were confirmed running.
    driver._point[:] = OFF
    clock.t += 1.0
    _price(price, clock, 5_000.0)
    report_before = driver.commands_applied
    await loop.cycle()
    assert driver.commands_applied - report_before == FLEET.size  # each told to stop
