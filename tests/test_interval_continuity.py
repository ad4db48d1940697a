"""No time goes unbooked: a reload neither cuts nor loses time, down time is booked as down."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from adapters.feeds.recorded import RecordedFeed
from adapters.ledger.memory import MemoryLedger
from adapters.miners.simulated import InProcessFleet
from controller.accounting.instruments import FixedPpa, ShortCall
from controller.app.assemble import assemble
from controller.decision.policy import PolicyParams
from controller.decision.reconcile import CommandBatch, DispatchReport
from controller.domain import ObservedFleet, Recording, build_fleet
from controller.runtime.clocks.simulated import SimulatedClock
from controller.runtime.site_loop import SiteLoop, SiteModel
from tests.scenario_kit import T0

PPA = FixedPpa(0.007, 45.0)  # two S21 at 3,500 W
CALL = ShortCall("call-200", 0.007, 200.0, 3.5)


def _feed(value: float, column: str) -> RecordedFeed:
    # One reading an hour before T0: it holds (and goes stale at the default ages) all along.
    times = np.array([T0 - 3600.0])
    return RecordedFeed(Recording("test", Path("test.csv"), column, times, np.array([value])))


class GatedFleet:
    """The in-process fleet, whose ``observe`` waits at a gate while it is closed."""

    def __init__(self, inner: InProcessFleet) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    async def observe(self) -> ObservedFleet:
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        return await self.inner.observe()

    async def apply(self, batch: CommandBatch) -> DispatchReport:
        return await self.inner.apply(batch)


def _loop(clock: SimulatedClock, ledger: MemoryLedger) -> tuple[SiteLoop, GatedFleet]:
    fleet = build_fleet([("Antminer S21", 2, [(200.0, 3500.0)])])
    params = PolicyParams(
        supply=PPA, price_max_age_s=10 * 86400.0, hashprice_max_age_s=10 * 86400.0
    )
    driver = GatedFleet(InProcessFleet(fleet, clock))
    loop = assemble(
        SiteModel("s", fleet, params, PPA, (CALL,)),
        clock=clock,
        price_feed=_feed(30.0, "price_usd_per_mwh"),
        hashprice_feed=_feed(50.0, "hashprice_usd_per_ph_day"),
        driver=driver,
        ledger=ledger,
        cycle_s=5.0,
    )
    return loop, driver


def _contiguous(ledger: MemoryLedger, start: float, end: float) -> None:
    spans = [(r.start, r.end) for r in ledger.records]
    assert spans[0][0] == start
    assert spans[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), spans


async def test_a_reload_with_the_same_terms_does_not_cut_the_interval() -> None:
    clock, ledger = SimulatedClock(T0), MemoryLedger()
    loop, _ = _loop(clock, ledger)
    await loop.cycle()
    await clock.sleep_until(T0 + 3.0)
    same_terms = replace(loop.site, params=replace(loop.site.params, hysteresis_usd_per_mwh=2.0))
    loop.reconfigure(same_terms, 5.0)
    await clock.sleep_until(T0 + 7.0)
    await loop.cycle()
    loop.finish(T0 + 10.0)
    assert [(r.start, r.end) for r in ledger.records] == [(T0, T0 + 10.0)]


async def test_a_reload_with_new_terms_splits_the_interval_at_that_instant() -> None:
    clock, ledger = SimulatedClock(T0), MemoryLedger()
    loop, _ = _loop(clock, ledger)
    await loop.cycle()
    await clock.sleep_until(T0 + 1800.0)
    dearer = replace(loop.site, supply=FixedPpa(0.007, 60.0))
    loop.reconfigure(dearer, 5.0)  # between cycles: at once
    await clock.sleep_until(T0 + 3600.0)
    await loop.cycle()
    loop.finish(T0 + 3600.0)
    _contiguous(ledger, T0, T0 + 3600.0)
    first, second = ledger.records
    assert first.end == T0 + 1800.0
    assert first.component("power_cost_usd") == pytest.approx(45.0 * 0.007 * 0.5)
    assert second.component("power_cost_usd") == pytest.approx(60.0 * 0.007 * 0.5)
    assert second.price_usd_per_mwh == first.price_usd_per_mwh  # the same inputs go on


async def test_a_reload_during_a_cycle_is_adopted_as_it_ends_without_overlap() -> None:
    clock, ledger = SimulatedClock(T0), MemoryLedger()
    loop, driver = _loop(clock, ledger)
    await loop.cycle()
    await clock.sleep_until(T0 + 900.0)
    driver.gate.clear()
    cycle = asyncio.create_task(loop.cycle())
    await driver.waiting.wait()  # the cycle began at T0 + 900 and waits on the fleet
    await clock.sleep_until(T0 + 905.0)
    loop.reconfigure(replace(loop.site, supply=FixedPpa(0.007, 60.0)), 5.0)
    assert loop.site.supply == PPA  # not in the middle of the cycle
    driver.gate.set()
    await cycle
    assert loop.site.supply == FixedPpa(0.007, 60.0)
    await clock.sleep_until(T0 + 1800.0)
    loop.finish(T0 + 1800.0)
    _contiguous(ledger, T0, T0 + 1800.0)
    assert [r.end for r in ledger.records] == [T0 + 905.0, T0 + 1800.0]


async def test_time_since_the_ledger_ended_is_booked_down_up_to_the_first_interval() -> None:
    clock, ledger = SimulatedClock(T0), MemoryLedger()
    loop, _ = _loop(clock, ledger)
    loop.resume_from(T0 - 2.5 * 3600.0)  # the last run's ledger ended 2 h 30 min ago
    await loop.cycle()
    loop.finish(T0 + 900.0)
    down, settled = ledger.records
    assert (down.kind, down.start, down.end) == ("down", T0 - 9000.0, T0)
    assert settled.kind == "settled"
    # By hand: PPA 45 * 0.007 * 2.5 = 0.7875; premium 3.5 * 0.007 * 2.5 = 0.06125.
    assert down.component("power_cost_usd") == pytest.approx(0.7875)
    assert down.component("call_premium_usd") == pytest.approx(0.06125)
    assert down.component("net_usd") == pytest.approx(0.06125 - 0.7875)
    assert down.component("mining_revenue_usd") == 0.0  # not booked: unknown
    [(inst, comp, usd)] = down.instruments
    assert (inst, comp) == ("call-200", "call_premium_usd")
    assert usd == pytest.approx(0.06125)


async def test_a_run_that_never_settles_books_its_span_as_down_at_the_finish() -> None:
    clock, ledger = SimulatedClock(T0), MemoryLedger()
    loop, _ = _loop(clock, ledger)
    loop.resume_from(T0 - 600.0)
    loop.finish(T0)  # stopped before a cycle ran
    assert [(r.kind, r.start, r.end) for r in ledger.records] == [("down", T0 - 600.0, T0)]
