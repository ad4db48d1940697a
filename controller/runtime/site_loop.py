"""One site's reconciliation cycle: sense -> decide -> reconcile -> actuate -> account -> publish.

Over 300 lines: one cycle and the state it carries from one cycle to the next.

The loop runs identically live (system clock, live feeds, real driver) and in replay
(simulated clock, recorded feeds, simulated fleet). Settlement intervals are the spans
over which the inputs hold: a new reading, or an input turning stale, closes one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import numpy as np
import structlog

from controller.accounting.accrual import IntervalAccumulator, IntervalKey
from controller.decision.economics import energy_hashprice_usd_per_mwh
from controller.decision.policy import Plan, PolicyParams, PolicyState, Snapshot, decide
from controller.decision.reconcile import (
    Applied,
    DispatchReport,
    Unreachable,
    Unverified,
    outcome_name,
    reconcile,
)
from controller.domain import (
    OFF,
    EpochS,
    FleetSpec,
    FloatArray,
    IntArray,
    ObservedFleet,
    Reading,
    iso,
)
from controller.records import IntervalRecord
from controller.runtime.override_book import OverrideBook
from controller.runtime.ports import (
    Clock,
    CommandAudit,
    Ledger,
    LoopObserver,
    MinerDriver,
    ReadingFeed,
)
from controller.site_model import SiteModel
from controller.status import GridStatus, ModelStatus, SiteStatus

__all__ = ["SiteLoop", "SiteModel", "next_wake", "staleness_deadlines"]


#: How long an unconfirmed raise counts as drawing power (longer than a resume ramp).
IN_DOUBT_GRACE_S = 300.0


def staleness_deadlines(
    params: PolicyParams, price: Reading | None, hashprice: Reading | None
) -> tuple[EpochS | None, EpochS | None]:
    """When the current price and hashprice readings turn stale."""
    return (
        None if price is None else price.observed_at + params.price_max_age_s,
        None if hashprice is None else hashprice.observed_at + params.hashprice_max_age_s,
    )


def next_wake(now: EpochS, cycle_s: float, events: list[EpochS | None]) -> EpochS:
    """The next cycle: one period on, or sooner if an input changes or turns stale first."""
    wake = now + cycle_s
    for t in events:
        if t is not None and now < t < wake:
            wake = t
    return wake


class SiteLoop:
    """Drives one site; one instance per site, owned by the supervisor or the replay."""

    def __init__(
        self,
        site: SiteModel,
        *,
        clock: Clock,
        price_feed: ReadingFeed,
        hashprice_feed: ReadingFeed,
        driver: MinerDriver,
        ledger: Ledger,
        cycle_s: float,
        observer: LoopObserver | None = None,
        overrides: OverrideBook | None = None,
        status_sink: Callable[[SiteStatus], Awaitable[None]] | None = None,
        audit: CommandAudit | None = None,
        dry_run: bool = False,
    ) -> None:
        self.site = site
        self._clock = clock
        self._price_feed = price_feed
        self._hashprice_feed = hashprice_feed
        self._driver = driver
        self._ledger = ledger
        self._cycle_s = cycle_s
        self._observer = observer
        self.overrides = overrides or OverrideBook()
        self._status_sink = status_sink
        self._audit = audit
        self.dry_run = dry_run  # decide, log and export; command nothing
        self.state = PolicyState.initial(site.fleet.size)
        self._log = structlog.get_logger("hashspark.site").bind(site=site.site_id)
        self._onehot = np.eye(len(site.fleet.model_names))[site.fleet.model_index]  # (N, M)
        self._accrual = IntervalAccumulator(site)
        self._unwritten: list[IntervalRecord] = []  # kept until the ledger takes them
        self._in_doubt: dict[int, tuple[int, EpochS]] = {}  # miner -> (raise not confirmed, when)
        self._failsafe_reason: str | None = None
        self.cycles = 0
        self.last_plan: Plan | None = None
        self.last_status: SiteStatus | None = None
        self.cycle_started: float | None = None  # monotonic; None between cycles

    @property
    def feeds(self) -> tuple[ReadingFeed, ReadingFeed]:
        """The price and hashprice feeds the loop reads."""
        return self._price_feed, self._hashprice_feed

    # --- the cycle ---------------------------------------------------------------------

    async def cycle(self) -> Plan:
        """Run one reconciliation cycle at the clock's current time."""
        began = time.perf_counter()
        self.cycle_started = time.monotonic()
        try:
            return await self._cycle(began)
        finally:
            self.cycle_started = None

    def stuck_for(self) -> float:
        """Seconds the current cycle has been running (0 between cycles)."""
        return 0.0 if self.cycle_started is None else time.monotonic() - self.cycle_started

    async def _cycle(self, began: float) -> Plan:
        now = self._clock.now()
        self._accrual.accrue(now)
        observed = await self._driver.observe()  # sense: what miners really do
        price = self._price_feed.latest(now)
        hashprice = self._hashprice_feed.latest(now)
        snapshot = Snapshot(
            now,
            price,
            hashprice,
            self._assume_in_doubt(observed),
            observed.reachable,
            self.overrides.current(now),
        )
        plan, self.state = decide(self.site.fleet, self.site.params, snapshot, self.state)

        key = self._interval_key(now, price, hashprice)
        if self._accrual.open_key is not None and key != self._accrual.open_key:
            self._settle(now)

        batch = reconcile(plan.point, observed)
        report: DispatchReport | None = None
        if len(batch) and self.dry_run:
            self._log.info("dry_run_commands", at=iso(now), miners=len(batch))
        elif len(batch):
            report = await self._driver.apply(batch)
            for miner, outcome in report.failed:
                self._log.warning(
                    "command_failed",
                    miner=miner,
                    outcome=outcome_name(outcome),
                    reason=outcome.reason,
                )
            self._note_in_doubt(report)
        if len(batch) and self._audit is not None:
            self._audit.record(
                self.site.site_id, self.site.fleet, plan, batch, report, dry_run=self.dry_run
            )
        # Read back after commands: account what miners do, not what we sent. A cycle that
        # sent nothing has just read the fleet; a second sweep would only double the traffic
        # (the next cycle's read catches whatever changes in between).
        after = observed if report is None else await self._driver.observe()
        fleet = self.site.fleet
        model_mw = fleet.power_at(after.point) @ self._onehot / 1e6
        self._accrual.set_load(model_mw, fleet.hashrate_at(after.point) @ self._onehot / 1e3, now)

        if self._accrual.open_key is None and key is not None:
            assert price is not None
            assert hashprice is not None
            self._accrual.open(
                now,
                key,
                price,
                hashprice,
                failsafe=plan.failsafe.reason if plan.failsafe else None,
                opportunity_cost=plan.opportunity_cost_usd_per_mwh,
                running=int((after.point > OFF).sum()),
                curtailed=int((after.point == OFF).sum()),
            )
        self._flush_ledger()
        status = self._status(plan, snapshot, after, model_mw)
        self._log_transitions(plan)
        self.cycles += 1
        self.last_plan = plan
        self.last_status = status
        if self._status_sink is not None:
            await self._status_sink(status)
        if self._observer is not None:
            self._observer.status(status)
            self._observer.cycle_finished(
                self.site.site_id, time.perf_counter() - began, status.decision_reason, report
            )
        return plan

    async def run(
        self,
        until: EpochS | None = None,
        on_cycle: Callable[[Plan], Awaitable[None] | None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Cycle until ``until`` (forever if None) or ``stop``; at ``until``, settle.

        ``on_cycle`` runs after each cycle (awaited if it returns an awaitable), before the
        sleep: the place to change what the next cycle plans with.

        ``stop`` is only looked at between cycles, so a command in flight always finishes.
        """
        while (until is None or self._clock.now() < until) and not (stop and stop.is_set()):
            plan = await self.cycle()
            if on_cycle is not None:
                done = on_cycle(plan)
                if done is not None:
                    await done
            now = self._clock.now()
            price = self._price_feed.latest(now)
            hashprice = self._hashprice_feed.latest(now)
            events: list[EpochS | None] = [
                self._price_feed.next_change_after(now),
                self._hashprice_feed.next_change_after(now),
                *staleness_deadlines(self.site.params, price, hashprice),
                self.overrides.next_change_after(now),
                until,
            ]
            await self._sleep(next_wake(now, self._cycle_s, events), stop)
        if until is not None and self._clock.now() >= until:
            self.finish(until)

    def _wake_events(self) -> list[asyncio.Event]:
        """Events that end a sleep early: a live reading arrived, a command changed things."""
        events = [self.overrides.changed]
        for feed in (self._price_feed, self._hashprice_feed):
            updated = getattr(feed, "updated", None)  # live feeds have one; recordings do not
            if isinstance(updated, asyncio.Event):
                events.append(updated)
        return events

    async def _sleep(self, wake: EpochS, stop: asyncio.Event | None) -> None:
        events = self._wake_events()
        if stop is not None:
            events.append(stop)
        if not any(e.is_set() for e in events):
            waiters = [asyncio.ensure_future(e.wait()) for e in events]
            sleeper = asyncio.ensure_future(self._clock.sleep_until(wake))
            try:
                await asyncio.wait({sleeper, *waiters}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, *waiters):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        for event in events:
            if event is not stop:
                event.clear()

    async def shutdown(self, action: str) -> dict[str, int]:
        """Leave the miners as configured (keep, curtail or run), settle, return their states."""
        observed = await self._driver.observe()
        fleet = self.site.fleet
        if action != "keep":
            target = (
                np.full(fleet.size, OFF, dtype=np.int64) if action == "curtail" else fleet.top_point
            )
            batch = reconcile(target, observed)
            if len(batch):
                report = await self._driver.apply(batch)
                for miner, outcome in report.failed:
                    self._log.warning(
                        "shutdown_command_failed",
                        miner=miner,
                        outcome=outcome_name(outcome),
                        reason=outcome.reason,
                    )
            observed = await self._driver.observe()
            fleet_mw = fleet.power_at(observed.point) @ self._onehot / 1e6
            self._accrual.set_load(
                fleet_mw, fleet.hashrate_at(observed.point) @ self._onehot / 1e3, self._clock.now()
            )
        self.finish(self._clock.now())
        states = {
            "running": _count(observed.reachable & (observed.point == fleet.top_point)),
            "throttled": _count(
                observed.reachable & (observed.point > OFF) & (observed.point != fleet.top_point)
            ),
            "curtailed": _count(observed.reachable & (observed.point == OFF)),
            "unreachable": _count(~observed.reachable),
        }
        self._log.info("miners_left", action=action, **states)
        return states

    def _note_in_doubt(self, report: DispatchReport) -> None:
        """Remember raises we sent but could not confirm: the miner may be drawing power."""
        power = self.site.fleet.power_w
        now = self._clock.now()
        for d in report.dispatched:
            match d.outcome:
                case Unreachable() | Unverified() if power[d.miner, d.point] > power[d.miner, 0]:
                    self._in_doubt[d.miner] = (d.point, now)
                case Applied():
                    self._in_doubt.pop(d.miner, None)

    def _assume_in_doubt(self, observed: ObservedFleet) -> IntArray:
        """Observed points, with unconfirmed raises counted as drawing their target.

        A resume that went out but was not confirmed (the miner stopped answering, or its
        hashrate had not climbed yet) may be drawing power: counting it as off would spend
        the ramp budget twice. It counts at its target until the miner reports that point,
        or for ``IN_DOUBT_GRACE_S``, after which it is re-commanded like any other.
        """
        if not self._in_doubt:
            return observed.point
        point = observed.point.copy()
        now = self._clock.now()
        for miner, (target, since) in list(self._in_doubt.items()):
            if observed.point[miner] == target or now - since > IN_DOUBT_GRACE_S:
                del self._in_doubt[miner]
            else:
                point[miner] = max(int(point[miner]), target)
        return point

    @property
    def driver(self) -> MinerDriver:
        """The miner driver the loop commands."""
        return self._driver

    def adopt_fleet(self, fleet: FleetSpec) -> None:
        """Plan with other curves for the same miners (their capabilities, or a new source).

        Point indices change with the curves: the last planned points move to the nearest
        point by power (off stays off, so dwell clocks keep running), pending changes start
        their delays over, and raises in doubt are forgotten (the next read tells).
        """
        old = self.site.fleet
        self.reconfigure(replace(self.site, fleet=fleet), self._cycle_s)
        last = self.state.last_point
        remapped = np.where(last > OFF, _nearest_points(fleet, old.power_at(last)), last)
        self.state = replace(
            self.state,
            pending_point=np.full(fleet.size, -1, dtype=np.int64),
            last_point=remapped,
        )
        self._in_doubt.clear()

    def reconfigure(self, site: SiteModel, cycle_s: float) -> None:
        """Adopt a reloaded site model (same fleet): settle the open interval first."""
        if (
            site.fleet.size != self.site.fleet.size
            or site.fleet.model_names != self.site.fleet.model_names
        ):
            raise ValueError("a reload cannot change the fleet: restart the daemon")
        self._settle(self._clock.now())
        self._flush_ledger()
        self.site = site
        self._cycle_s = cycle_s
        self._accrual.site = site

    def finish(self, end: EpochS) -> None:
        """Account up to ``end`` and settle the interval still open."""
        self._settle(end)
        self._flush_ledger()

    # --- accounting --------------------------------------------------------------------

    def _interval_key(
        self, now: EpochS, price: Reading | None, hashprice: Reading | None
    ) -> IntervalKey | None:
        if price is None or hashprice is None:
            return None  # nothing to settle against
        price_dl, hp_dl = staleness_deadlines(self.site.params, price, hashprice)
        assert price_dl is not None
        assert hp_dl is not None
        # A grid program starting or ending also closes the interval, so that compliance
        # can be read from the ledger interval by interval.
        active = tuple(sorted(o.id for o in self.overrides.current(now) if o.active(now)))
        return (price.observed_at, hashprice.observed_at, now >= price_dl, now >= hp_dl, active)

    def _settle(self, end: EpochS) -> None:
        record = self._accrual.close(end)
        if record is not None:
            self._unwritten.append(record)

    def _flush_ledger(self) -> None:
        """Write settled intervals in order; on failure keep them and retry next cycle."""
        while self._unwritten:
            try:
                self._ledger.append(self._unwritten[0])
            except Exception as exc:  # any storage failure: keep the record and go on
                self._log.error("ledger_write_failed", error=str(exc), pending=len(self._unwritten))
                if self._observer is not None:
                    self._observer.ledger_write_failed(self.site.site_id)
                return
            self._unwritten.pop(0)

    # --- publish -----------------------------------------------------------------------

    def _status(
        self, plan: Plan, snapshot: Snapshot, after: ObservedFleet, model_mw: np.ndarray
    ) -> SiteStatus:
        fleet = self.site.fleet
        point = after.point
        top = point == fleet.top_point
        models = []
        for m, name in enumerate(fleet.model_names):
            members = fleet.model_index == m
            eff = float(
                fleet.nominal_power_w[members].sum() / fleet.nominal_hashrate_th[members].sum()
            )
            hpn = plan.net_hashprice_usd_per_ph_day
            ehp = None if hpn is None else float(energy_hashprice_usd_per_mwh(hpn, eff))
            models.append(
                ModelStatus(
                    model=name,
                    energy_hashprice_usd_per_mwh=ehp,
                    breakeven_usd_per_mwh=None
                    if ehp is None
                    else ehp - self.site.params.adders_usd_per_mwh,
                    running=_count(members & top & after.reachable),
                    throttled=_count(members & ~top & (point > OFF) & after.reachable),
                    curtailed=_count(members & (point == OFF) & after.reachable),
                    unreachable=_count(members & ~after.reachable),
                    load_mw=float(model_mw[m]),
                )
            )
        return SiteStatus(
            site_id=self.site.site_id,
            at=plan.now,
            price=snapshot.price,
            hashprice=snapshot.hashprice,
            opportunity_cost_usd_per_mwh=plan.opportunity_cost_usd_per_mwh,
            net_hashprice_usd_per_ph_day=plan.net_hashprice_usd_per_ph_day,
            decision_reason=_reason(plan),
            failsafe_reason=plan.failsafe.reason if plan.failsafe else None,
            models=tuple(models),
            load_mw=float(model_mw.sum()),
            nominal_mw=fleet.nominal_mw,
            spread_usd_per_mwh=self.site.spread_usd_per_mwh,
            ramp_limited=plan.ramp_limited,
            grid=tuple(
                GridStatus(o.kind, o.id, o.cap_mw, o.compliant(float(model_mw.sum()), plan.now))
                for o in snapshot.overrides
                if o.active(plan.now)
            ),
        )

    def _log_transitions(self, plan: Plan) -> None:
        reason = plan.failsafe.reason if plan.failsafe else None
        if (reason is None) != (self._failsafe_reason is None):
            if plan.failsafe is None:
                self._log.info("failsafe_cleared", at=iso(plan.now))
            else:
                self._log.warning(
                    "failsafe_engaged",
                    at=iso(plan.now),
                    action=str(plan.failsafe.action),
                    reason=reason,
                )
        self._failsafe_reason = reason


def _reason(plan: Plan) -> str:
    """What decided a plan: a fail-safe, an override, or the economics."""
    if plan.failsafe is not None:
        return f"failsafe_{plan.failsafe.action}"
    if plan.override is not None:
        return plan.override.split(":", 1)[0]
    return "economics"


def _nearest_points(fleet: FleetSpec, power_w: FloatArray) -> IntArray:
    """Each miner's running point whose power is nearest its ``power_w`` (vectorised: a
    curve change on a 100,000-miner fleet must not stall the event loop)."""
    gap = np.abs(fleet.power_w[:, 1:] - power_w[:, None])
    gap[~fleet.valid[:, 1:]] = np.inf
    nearest: IntArray = np.argmin(gap, axis=1).astype(np.int64) + 1
    return nearest


def _count(mask: IntArray | np.ndarray) -> int:
    return int(np.count_nonzero(mask))
