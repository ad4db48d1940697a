"""One site's reconciliation cycle: sense -> decide -> reconcile -> actuate -> account -> publish.

Over 300 lines: one cycle and the state it carries from one cycle to the next.

The loop runs identically live (system clock, live feeds, real driver) and in replay
(simulated clock, recorded feeds, simulated fleet). Settlement intervals are the spans
over which the inputs hold: a new reading, or an input turning stale, closes one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import numpy as np
import structlog

from controller.accounting.accrual import IntervalAccumulator, IntervalKey
from controller.accounting.instruments import as_stack
from controller.accounting.supply_stack import next_quantity_change, quantities_at
from controller.decision import pacing
from controller.decision.economics import energy_hashprice_usd_per_mwh
from controller.decision.explain import GroupState, changes, group_states, reason_of
from controller.decision.policy import Plan, PolicyParams, PolicyState, Snapshot, decide
from controller.decision.reconcile import (
    Applied,
    CommandBatch,
    Dispatched,
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
from controller.runtime.actuator import Actuator
from controller.runtime.override_book import OverrideBook
from controller.runtime.ports import (
    Addressed,
    Clock,
    CommandAudit,
    Ledger,
    LoopObserver,
    MinerDriver,
    ReadingFeed,
    RemembersFleet,
)
from controller.runtime.retry import caller_cancelled, reap
from controller.runtime.storage import StorageHealth
from controller.site_model import SiteModel
from controller.status import GridStatus, ModelStatus, PacingStatus, SiteStatus

__all__ = ["SiteLoop", "SiteModel", "next_wake", "staleness_deadlines"]


#: How long an unconfirmed raise counts as drawing power (longer than a resume ramp).
IN_DOUBT_GRACE_S = 300.0
#: How long a miner confirmed at a running point may read as off (re-tuning, ramping).
SETTLE_GRACE_S = 120.0
#: Longest a cycle waits (wall seconds) for its commands before publishing its status; the
#: commands go on beside the loop and wake it when they end.
ACTUATION_WAIT_S = 2.0
#: Resumes go out in chunks of this many miners unless the driver says otherwise.
DEFAULT_RESUME_CHUNK = 1 << 30
#: Settled intervals kept in memory while the ledger cannot take them (``daemon.
#: ledger_max_unwritten``): 10,000 is a month of 5-minute prices, about 7 MB.
DEFAULT_MAX_UNWRITTEN = 10_000
#: Longest a cycle spends writing held intervals once the ledger takes them again (wall
#: seconds; at least one is written): a backlog is caught up over cycles, never in one that
#: holds up the decisions (each write is an fsync).
LEDGER_CATCH_UP_S = 0.25


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
        day_ahead_feed: ReadingFeed | None = None,
        btc_usd_feed: ReadingFeed | None = None,
        difficulty_feed: ReadingFeed | None = None,
        fees_feed: ReadingFeed | None = None,
        driver: MinerDriver,
        ledger: Ledger,
        cycle_s: float,
        observer: LoopObserver | None = None,
        overrides: OverrideBook | None = None,
        status_sink: Callable[[SiteStatus], Awaitable[None]] | None = None,
        audit: CommandAudit | None = None,
        dry_run: bool = False,
        resume_chunk: int | None = None,
        storage: StorageHealth | None = None,
        max_unwritten: int = DEFAULT_MAX_UNWRITTEN,
    ) -> None:
        self.site = site
        self._clock = clock
        self._price_feed = price_feed
        self._hashprice_feed = hashprice_feed
        self._day_ahead_feed = day_ahead_feed
        # What Bitcoin instruments settle on (the BTC price and difficulty; never decides,
        # docs/economics.md), and all three shown in the status (and so the metrics).
        self._bitcoin_inputs = tuple(
            (name, f)
            for name, f in (
                ("btc_usd", btc_usd_feed),
                ("difficulty", difficulty_feed),
                ("fees", fees_feed),
            )
            if f is not None
        )
        self._driver = driver
        self._ledger = ledger
        self._cycle_s = cycle_s
        self._observer = observer
        self.overrides = overrides or OverrideBook()
        self._status_sink = status_sink
        self._audit = audit
        self.dry_run = dry_run  # decide, log and export; command nothing
        self.state = PolicyState.initial(site.fleet.size)
        self._next_state = self.state
        self._sent_early = False  # this cycle sent curtails before reading the fleet
        self._latest: tuple[Plan, Snapshot] | None = None  # the newest decision and its inputs
        self._actuator = Actuator(
            driver,
            resume_chunk=resume_chunk or DEFAULT_RESUME_CHUNK,
            current=self._plan_is_current,
            on_send=self._paced_send,
        )
        self._pacing = pacing.PacingState.initial(site.fleet.size)
        self._deferred: dict[str, int] = dict.fromkeys(pacing.REASONS, 0)
        self._log = structlog.get_logger("hashspark.site").bind(site=site.site_id)
        self._onehot = np.eye(len(site.fleet.model_names))[site.fleet.model_index]  # (N, M)
        self._accrual = IntervalAccumulator(site)
        self._unwritten: list[IntervalRecord] = []  # kept until the ledger takes them
        self.max_unwritten = max_unwritten  # beyond it, newer intervals are dropped (counted)
        self.dropped = 0  # settled intervals dropped because the backlog was full
        self.storage = storage or StorageHealth()
        # Accounting time never runs back: after the wall clock steps back behind what is
        # booked, intervals go on from there at the clock's rate, ``_clock_lag`` ahead.
        self._accounted: EpochS | None = None
        self._clock_lag = 0.0
        self._in_doubt: dict[int, tuple[int, EpochS]] = {}  # miner -> (raise not confirmed, when)
        self._settling: dict[int, tuple[int, EpochS]] = {}  # miner -> (confirmed running, when)
        self._failsafe_reason: str | None = None
        self._logged: tuple[IntArray, str, tuple[GroupState, ...]] | None = None  # last decision
        self.cycles = 0
        self.last_plan: Plan | None = None
        self.last_status: SiteStatus | None = None
        self.cycle_started: float | None = None  # monotonic; None between cycles
        self._reload: tuple[SiteModel, float] | None = None  # arrived mid-cycle: adopted after

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
            if self._reload is not None:  # a reload that came in during the cycle
                self._adopt(*self._reload)

    def stuck_for(self) -> float:
        """Seconds the current cycle has been running (0 between cycles)."""
        return 0.0 if self.cycle_started is None else time.monotonic() - self.cycle_started

    async def _cycle(self, began: float) -> Plan:
        now = self._clock.now()
        at = self._account_at(now)  # where this cycle accounts: ``now`` unless the clock ran back
        self._accrual.accrue(at)
        earlier = self._take_finished()  # jobs that ended between cycles
        arrived = self._inputs_arrived()
        self._clear(self._wake_events())  # this cycle decides on everything arrived so far
        # A reading or command woke the loop: its curtails go first, and take the driver's
        # slots before the sweep's reads do. Otherwise the last cycle's plan acted already.
        self._sent_early = arrived and self._act_early(now)
        observed = await self._sense()  # what miners really do
        plan, snapshot = self._decide(now, observed)
        # A reading or command that arrived while the fleet was read makes this plan old:
        # decide again on the newest inputs, so that no command goes out on a superseded
        # plan. Whatever arrives after the last check sets an event: a cycle of its own.
        for _ in range(3):
            if not self._inputs_arrived():
                break
            self._clear(self._input_events())
            plan, snapshot = self._decide(max(now, self._clock.now()), observed)
        self.state = self._next_state
        self._count_deferred(plan)

        key = self._interval_key(now, snapshot.price, snapshot.hashprice)
        if self._accrual.open_key is not None and key != self._accrual.open_key:
            self._settle(at)

        batch = self._commands(plan, observed)
        if len(batch) and self.dry_run:
            self._log.info("dry_run_commands", at=iso(now), miners=len(batch))
            if self._audit is not None:
                self._audit.record(
                    self.site.site_id, self.site.fleet, plan, batch, None, dry_run=True
                )
        elif len(batch):
            self._actuator.submit(batch, plan, self.site.fleet, observed.point)
        if (len(batch) and not self.dry_run) or self._sent_early:
            # Commands run beside the loop: wait for this cycle's to end unless a newer input
            # (a reading, a command, a stale feed) needs a decision first, or the status is due.
            await self._actuator.wait(self._input_events(), ACTUATION_WAIT_S)
        ended = self._take_finished()
        # Read back after commands: account what miners do, not what we sent. A cycle whose
        # commands did not end has nothing new to read (the next cycle catches it).
        after = observed if ended is None else await self._sense()
        report = _merged(earlier, ended)
        booked, model_mw = self._set_load(after, at)

        if self._accrual.open_key is None and key is not None:
            assert snapshot.price is not None
            assert snapshot.hashprice is not None
            down = self._accrual.open(
                at,
                key,
                snapshot.price,
                snapshot.hashprice,
                failsafe=plan.failsafe.reason if plan.failsafe else None,
                opportunity_cost=plan.opportunity_cost_usd_per_mwh,
                running=int((booked > OFF).sum()),
                curtailed=int((booked == OFF).sum()),
                day_ahead=self._day_ahead(now),
                bitcoin=self._bitcoin(now),
                overrides=tuple(o for o in self.overrides.current(now) if o.active(now)),
            )
            self._book(down)
        self._flush_ledger()
        status = self._status(plan, snapshot, after, model_mw)
        self._log_transitions(plan)
        self._log_decision(plan, snapshot)
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

    def _set_load(self, after: ObservedFleet, at: EpochS) -> tuple[IntArray, FloatArray]:
        """The points booked from ``at``, and each group's load (MW) on them.

        A miner that stopped answering (or answers with impossible telemetry) while a raise
        to it was unconfirmed may be drawing power: it is booked at the raise's target, as
        the decision counts it (``_assume_in_doubt``), never as curtailed. Miners that answer
        are booked as read.
        """
        fleet = self.site.fleet
        booked = after.point
        if not after.reachable.all():
            booked = np.where(after.reachable, after.point, self._assume_in_doubt(after))
        model_mw = fleet.power_at(booked) @ self._onehot / 1e6
        self._accrual.set_load(
            model_mw,
            fleet.hashrate_at(booked) @ self._onehot / 1e3,
            at,
            draw_mw=self.site.draw_mw(booked),
        )
        return booked, model_mw

    async def _sense(self) -> ObservedFleet:
        """Read the fleet. A reading that arrives during the sweep stops it: the curtails
        are sent at once, on what the miners last reported, then the fleet is read again
        (the sweep's reads would otherwise hold the driver's slots ahead of the commands)."""
        if self.dry_run or not isinstance(self._driver, RemembersFleet):
            return await self._driver.observe()  # nothing could be sent early anyway
        acted = False
        while True:
            sweep = asyncio.ensure_future(self._driver.observe())
            waiters = (
                [] if acted else [asyncio.ensure_future(e.wait()) for e in self._input_events()]
            )
            try:
                await asyncio.wait({sweep, *waiters}, return_when=asyncio.FIRST_COMPLETED)
                if sweep.done():
                    return sweep.result()
                # A reading arrived: the curtails go out (and resumes in flight are cancelled)
                # before anything else, even before the sweep has wound down.
                acted = True
                if self._act_early(self._clock.now()):  # the events stay set: decided again
                    self._sent_early = True
            finally:
                await reap(sweep, *waiters)  # ends the sweep early, or if we are cancelled

    def _act_early(self, now: EpochS) -> bool:
        """Curtails and throttle-downs first, on what the miners last reported.

        A spike must not wait for a sweep of the whole fleet: a driver that remembers its
        last reads lets the loop decide on them at once and send every lowering the plan
        makes. Raises wait for the fresh read that follows (the same plan then keeps these
        commands, and sends nothing twice).
        """
        if self.dry_run or not isinstance(self._driver, RemembersFleet):
            return False
        known = self._driver.current()
        plan, _ = self._decide(now, known)
        batch = self._commands(plan, known)
        power = self.site.fleet.power_w
        current = self._assume_in_doubt(known)
        lower = (batch.point == OFF) | (
            power[batch.miner, batch.point] < power[batch.miner, current[batch.miner]]
        )
        if not lower.any():
            return False
        early = CommandBatch(miner=batch.miner[lower], point=batch.point[lower])
        self._actuator.submit(early, plan, self.site.fleet, current)
        return True

    def _decide(self, now: EpochS, observed: ObservedFleet) -> tuple[Plan, Snapshot]:
        """Decide on the newest inputs; the state is kept only for the plan that is used."""
        snapshot = Snapshot(
            now,
            self._price_feed.latest(now),
            self._hashprice_feed.latest(now),
            self._assume_in_doubt(observed),
            observed.reachable,
            self.overrides.current(now),
            pacing.gate(self.site.pacing, self._pacing, now, self._heading()),
        )
        plan, self._next_state = decide(self.site.fleet, self.site.params, snapshot, self.state)
        self._latest = (plan, snapshot)
        return plan, snapshot

    def _plan_is_current(self, plan: Plan) -> bool:
        """Whether ``plan`` is the newest decision and no input arrived since (chunks of
        resumes start only then)."""
        return self._latest is not None and self._latest[0] is plan and not self._inputs_arrived()

    def _input_events(self) -> list[asyncio.Event]:
        """Set when a live reading is accepted or a command changes the overrides."""
        events = [self.overrides.changed]
        for feed in (self._price_feed, self._hashprice_feed):
            updated = getattr(feed, "updated", None)  # live feeds have one; recordings do not
            if isinstance(updated, asyncio.Event):
                events.append(updated)
        return events

    def _inputs_arrived(self) -> bool:
        return any(e.is_set() for e in self._input_events())

    @staticmethod
    def _clear(events: list[asyncio.Event]) -> None:
        for event in events:
            event.clear()

    def _commands(self, plan: Plan, observed: ObservedFleet) -> CommandBatch:
        """Miners to command: those the plan moves, less those already on their way there,
        plus those whose superseded command may have reached them (sent again)."""
        batch = self._reconcile(plan, observed)
        if self.dry_run:
            return batch
        again = self._actuator.supersede(plan)
        flying = self._actuator.targets()
        keep = [
            k
            for k, m in enumerate(batch.miner.tolist())
            if flying.get(m) != int(batch.point[k]) and m not in set(again.tolist())
        ]
        miners = batch.miner[keep]
        if again.size:
            reachable = again[observed.reachable[again]]
            miners = np.concatenate([miners, reachable])
        order = np.argsort(miners, kind="stable")
        miners = miners[order]
        return self._paced(
            CommandBatch(miner=miners, point=plan.point[miners].astype(np.int64)), observed
        )

    # --- pacing ------------------------------------------------------------------------

    def _paced_send(self, batch: CommandBatch, raises: bool) -> None:
        """A job starts: its miners' commands count from now (``controller.decision.pacing``)."""
        target_w = self.site.fleet.power_w[batch.miner, batch.point]
        self._pacing = pacing.sent(
            self._pacing, batch.miner, target_w, raises=raises, now=self._clock.now()
        )

    def _heading(self) -> IntArray:
        """Each miner's command in flight (its point), -1 where none is."""
        heading = np.full(self.site.fleet.size, -1, dtype=np.int64)
        flying = self._actuator.targets(sent_only=True)
        if flying:
            heading[list(flying)] = list(flying.values())
        return heading

    def _paced(self, batch: CommandBatch, observed: ObservedFleet) -> CommandBatch:
        """The batch less the commands pacing holds: raises of miners commanded too
        recently or backing off (the plan holds most; this catches re-sends of raises in
        doubt), and repeats of a miner's last lowering."""
        if not len(batch):
            return batch
        now = self._clock.now()
        power = self.site.fleet.power_w
        miners, points = batch.miner, batch.point
        target_w = power[miners, points]
        up = target_w > power[miners, observed.point[miners]]
        due = np.where(
            up,
            pacing.raise_due(self.site.pacing, self._pacing, now, miners),
            pacing.lowering_due(self.site.pacing, self._pacing, now, miners, target_w),
        )
        if due.all():
            return batch
        held = ~due
        for reason in pacing.reasons(self._pacing, now, miners[held], up[held]):
            self._deferred[reason] += 1
        return CommandBatch(miner=miners[due], point=points[due])

    def _count_deferred(self, plan: Plan) -> None:
        """Count the raises this cycle's plan holds back for pacing, by reason (the plan
        holds raises only: a repeated lowering is dropped from the commands instead)."""
        held = plan.paced
        if not held.size:
            return
        raising = np.ones(held.size, dtype=bool)
        for reason in pacing.reasons(self._pacing, plan.now, held, raising):
            self._deferred[reason] += 1

    def _pacing_release(self, now: EpochS) -> EpochS | None:
        """When a miner the last plan held for pacing may be commanded (wake then)."""
        if self.last_plan is None:
            return None
        return pacing.next_release(self.site.pacing, self._pacing, self.last_plan.paced, now)

    def _pacing_status(self, plan: Plan) -> PacingStatus:
        return PacingStatus(
            paced=int(plan.paced.size),
            in_backoff=_count(self._pacing.in_backoff(plan.now)),
            deferred=tuple(self._deferred.items()),
        )

    def _reconcile(self, plan: Plan, observed: ObservedFleet) -> CommandBatch:
        """What the miners report against the plan, and against what may be on its way.

        A miner that reads off but may be running (a raise in doubt, a miner settling after
        a confirmed command) is commanded off when the plan wants it off. One settling at
        the point the plan wants is left alone: sending the same target again would only
        restart its re-tune.
        """
        assumed = self._assume_in_doubt(observed)
        move = (plan.point != observed.point) | (
            (assumed != observed.point) & (plan.point != assumed)
        )
        for miner, (target, _) in self._settling.items():
            if plan.point[miner] == target:
                move[miner] = False
        differ = np.flatnonzero(move & observed.reachable)
        return CommandBatch(
            miner=differ.astype(np.int64), point=plan.point[differ].astype(np.int64)
        )

    def _take_finished(self) -> DispatchReport | None:
        """File the jobs that ended: log, audit, in-doubt raises; one report for the cycle."""
        self._actuator.raise_errors()
        finished = self._actuator.collect()
        if not finished:
            return None
        dispatched: list[Dispatched] = []
        for job in finished:
            report = job.report
            if report is None:  # superseded in flight: it may have reached the miners
                self._note_cancelled(job.batch)
                continue
            for miner, outcome in report.failed:
                self._log.warning(
                    "command_failed",
                    miner=self._miner_name(miner),
                    outcome=outcome_name(outcome),
                    reason=outcome.reason,
                )
            self._note_in_doubt(report)
            self._pacing = pacing.settled(
                self.site.pacing,
                self._pacing,
                np.array([d.miner for d in report.dispatched], dtype=np.int64),
                np.array([isinstance(d.outcome, Applied) for d in report.dispatched], dtype=bool),
                now=self._clock.now(),
            )
            if self._audit is not None:
                self._audit.record(
                    self.site.site_id, self.site.fleet, job.plan, job.batch, report, dry_run=False
                )
            dispatched += report.dispatched
        return DispatchReport(tuple(dispatched))

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
                next_quantity_change(as_stack(self.site.params.supply), now),
                next_quantity_change(as_stack(self.site.supply), now),
                self._pacing_release(now),
                until,
            ]
            await self._sleep(next_wake(now, self._cycle_s, events), stop)
        if until is not None and self._clock.now() >= until:
            self.finish(until)

    def _wake_events(self) -> list[asyncio.Event]:
        """Events that end a sleep early: a live reading arrived, a command changed things,
        commands sent earlier ended (their effect is to be accounted)."""
        return [*self._input_events(), self._actuator.done]

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
                # One by one, as before (the spike tests time this path); but a cancellation
                # of this task, arriving while a waiter ends, is passed on, not swallowed.
                cancelled = False
                for task in (sleeper, *waiters):
                    task.cancel()
                    try:
                        await task
                    except asyncio.CancelledError:
                        cancelled = cancelled or caller_cancelled()
                if cancelled:
                    raise asyncio.CancelledError
        for event in events:
            if event is not stop:
                event.clear()

    async def shutdown(self, action: str) -> dict[str, int]:
        """Leave the miners as configured (keep, curtail or run), settle, return their states."""
        await self._actuator.cancel_all()
        self._take_finished()
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
                        miner=self._miner_name(miner),
                        outcome=outcome_name(outcome),
                        reason=outcome.reason,
                    )
            observed = await self._driver.observe()
            fleet_mw = fleet.power_at(observed.point) @ self._onehot / 1e6
            self._accrual.set_load(
                fleet_mw,
                fleet.hashrate_at(observed.point) @ self._onehot / 1e3,
                self._clock.now(),
                draw_mw=self.site.draw_mw(observed.point),
            )
        self.finish(self._clock.now())
        await self._publish_final(observed)
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
        """Remember miners told to run that may read as off while they are not.

        A raise we sent but could not confirm may be drawing power (it is sent again while
        the plan wants it). A miner confirmed at a running point may still read as off for
        a while: firmware that re-tunes on a new power target winds its boards down and up
        again (it is left to settle). Either counts at its target until the miner reports
        that point (or for ``IN_DOUBT_GRACE_S``, ``SETTLE_GRACE_S``), so the next plan that
        wants it off commands it off.
        """
        power = self.site.fleet.power_w
        now = self._clock.now()
        for d in report.dispatched:
            match d.outcome:
                case Unreachable() | Unverified() if power[d.miner, d.point] > power[d.miner, 0]:
                    self._in_doubt[d.miner] = (d.point, now)
                case Applied():
                    self._in_doubt.pop(d.miner, None)
                    if d.point > OFF:
                        self._settling[d.miner] = (d.point, now)
                    else:
                        self._settling.pop(d.miner, None)

    async def _publish_final(self, observed: ObservedFleet) -> None:
        """The last status says what shutdown left the miners doing, not the last cycle."""
        if self._latest is None:
            return
        plan, snapshot = self._latest
        fleet = self.site.fleet
        model_mw = fleet.power_at(observed.point) @ self._onehot / 1e6
        status = replace(
            self._status(plan, snapshot, observed, model_mw),
            state="stopped",
            at=self._clock.now(),
        )
        self.last_status = status
        if self._status_sink is not None:
            await self._status_sink(status)
        if self._observer is not None:
            self._observer.status(status)

    def _note_cancelled(self, batch: CommandBatch) -> None:
        """A superseded job's raises may have reached their miners: count them in doubt."""
        power = self.site.fleet.power_w
        now = self._clock.now()
        for miner, target in zip(batch.miner.tolist(), batch.point.tolist(), strict=True):
            if power[miner, target] > power[miner, 0]:
                self._in_doubt[miner] = (target, now)

    def _miner_name(self, miner: int) -> str:
        """A miner as operators know it: its address where the driver has one."""
        if isinstance(self._driver, Addressed):
            addresses = self._driver.addresses
            if 0 <= miner < len(addresses):
                return addresses[miner]
        return f"#{miner}"

    def _assume_in_doubt(self, observed: ObservedFleet) -> IntArray:
        """Observed points, with unconfirmed raises counted as drawing their target.

        A resume that went out but was not confirmed (the miner stopped answering, or its
        hashrate had not climbed yet) may be drawing power: counting it as off would spend
        the ramp budget twice. It counts at its target until the miner reports that point,
        or for ``IN_DOUBT_GRACE_S``, after which it is re-commanded like any other.
        """
        # Raises sent and not yet ended; queued ones have sent nothing.
        flying = {m: t for m, t in self._actuator.targets(sent_only=True).items() if t > OFF}
        if not self._in_doubt and not self._settling and not flying:
            return observed.point
        point = observed.point.copy()
        for miner, target in flying.items():  # a raise on its way counts at its target
            point[miner] = max(int(point[miner]), target)
        now = self._clock.now()
        for book, grace in ((self._in_doubt, IN_DOUBT_GRACE_S), (self._settling, SETTLE_GRACE_S)):
            for miner, (target, since) in list(book.items()):
                if observed.point[miner] == target or now - since > grace:
                    del book[miner]
                elif book is self._in_doubt or observed.point[miner] == OFF:
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
        self._settling.clear()

    def reconfigure(self, site: SiteModel, cycle_s: float) -> None:
        """Adopt a reloaded site model (same fleet) without cutting or losing time.

        The open interval goes on, or is split at this instant if the settlement terms
        changed (``IntervalAccumulator.rebase``). A reload that arrives during a cycle is
        adopted as the cycle ends: the cycle's intervals open and close at its start.
        """
        if (
            site.fleet.size != self.site.fleet.size
            or site.fleet.model_names != self.site.fleet.model_names
        ):
            raise ValueError("a reload cannot change the fleet: restart the daemon")
        if self.cycle_started is not None:
            self._reload = (site, cycle_s)
            return
        self._adopt(site, cycle_s)

    def _adopt(self, site: SiteModel, cycle_s: float) -> None:
        self._reload = None
        self._book(self._accrual.rebase(site, self._account_at(self._clock.now())))
        self._flush_ledger()
        self.site = site
        self._cycle_s = cycle_s

    def resume_from(self, booked_until: EpochS | None) -> None:
        """The ledger holds this site up to ``booked_until``: the span from there to the
        first interval this run opens is booked as ``down``. A clock behind ``booked_until``
        books from there on (``_account_at``)."""
        self._accrual.resume_from(booked_until)
        if booked_until is not None:
            self._accounted = booked_until

    def finish(self, end: EpochS) -> None:
        """Account up to ``end`` and settle the interval still open (or the down time, if
        no interval opened)."""
        end = self._account_at(end)
        self._book(self._accrual.take_down(end))
        self._settle(end)
        self._flush_ledger(budget_s=None)
        if self._unwritten:
            self._log.error(
                "ledger_intervals_lost",
                intervals=len(self._unwritten),
                first=iso(self._unwritten[0].start),
                last=iso(self._unwritten[-1].end),
                reason="the ledger could not take them before the daemon stopped",
            )

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
        # A capacity award's deployment is measured from its deadline: that closes one too.
        active = tuple(
            sorted(
                o.id
                + (":measured" if o.award and o.deadline is not None and now >= o.deadline else "")
                for o in self.overrides.current(now)
                if o.active(now)
            )
        )
        # So does a contract tranche's quantity changing (a 5x16 block starting, ...).
        quantities = quantities_at(as_stack(self.site.supply), now)
        return (
            price.observed_at,
            hashprice.observed_at,
            now >= price_dl,
            now >= hp_dl,
            active,
            quantities,
        )

    def _account_at(self, now: EpochS) -> EpochS:
        """The accounting time of wall time ``now``: never before what is already accounted.

        A wall clock stepped back behind the booked time (an NTP correction, a reset RTC)
        would settle intervals over time the ledger holds already, which it refuses. Instead
        the books go on from where they are at the clock's rate, ``_clock_lag`` seconds ahead
        of the wall clock (logged once per step), so no interval is lost and none overlaps.
        The time the clock ran back by is booked once, not twice; the time a restart is down
        shortens the lead (``resume_from``).
        """
        at = now + self._clock_lag
        if self._accounted is not None and at < self._accounted:
            step = self._accounted - at
            self._clock_lag = self._accounted - now
            self._log.warning(
                "clock_behind_ledger",
                now=iso(now),
                booked_until=iso(self._accounted),
                step_s=round(step, 6),
                booking_ahead_s=round(self._clock_lag, 6),
            )
            at = self._accounted
        self._accounted = at
        return at

    @property
    def unwritten(self) -> int:
        """Settled intervals kept in memory until the ledger takes them."""
        return len(self._unwritten)

    def _day_ahead(self, now: EpochS) -> float | None:
        """The day-ahead price holding at ``now``, if the site has a day-ahead feed."""
        if self._day_ahead_feed is None:
            return None
        reading = self._day_ahead_feed.latest(now)
        return None if reading is None else reading.value

    def _bitcoin(self, now: EpochS) -> tuple[float | None, float | None]:
        """The BTC price and difficulty holding at ``now``, where the site has the feeds."""
        held = {
            name: r.value
            for name, f in self._bitcoin_inputs
            if name != "fees" and (r := f.latest(now)) is not None
        }
        return held.get("btc_usd"), held.get("difficulty")

    def _settle(self, end: EpochS) -> None:
        self._book(self._accrual.close(end))

    def _book(self, record: IntervalRecord | None) -> None:
        if record is not None:
            self._unwritten.append(record)

    def _flush_ledger(self, budget_s: float | None = LEDGER_CATCH_UP_S) -> None:
        """Write settled intervals in order, for at most ``budget_s`` (None: all of them);
        on failure keep them (up to ``max_unwritten``, the oldest first) and retry next
        cycle."""
        began = time.monotonic()
        while self._unwritten:
            if budget_s is not None and time.monotonic() - began > budget_s:
                return  # the rest next cycle
            try:
                self._ledger.append(self._unwritten[0])
            except Exception as exc:  # any storage failure: keep the record and go on
                self._log.error("ledger_write_failed", error=str(exc), pending=len(self._unwritten))
                self.storage.failed("ledger", exc, logged=True)
                if self._observer is not None:
                    self._observer.ledger_write_failed(self.site.site_id)
                self._drop_beyond_bound()
                return
            self._unwritten.pop(0)
            self.storage.succeeded("ledger")

    def _drop_beyond_bound(self) -> None:
        """Memory is bounded: the newest intervals beyond ``max_unwritten`` are dropped (the
        oldest are kept, so the ledger stays contiguous up to where the gap begins)."""
        while len(self._unwritten) > self.max_unwritten:
            record = self._unwritten.pop()
            self.dropped += 1
            self._log.error(
                "ledger_interval_dropped",
                start=iso(record.start),
                end=iso(record.end),
                kind=record.kind,
                max_unwritten=self.max_unwritten,
                reason="the ledger has not taken the intervals held in memory",
            )

    # --- publish -----------------------------------------------------------------------

    def _status(
        self, plan: Plan, snapshot: Snapshot, after: ObservedFleet, model_mw: np.ndarray
    ) -> SiteStatus:
        fleet = self.site.fleet
        point = after.point
        top = point == fleet.top_point
        # Grid programs are measured on what the site draws, sleeping miners included.
        draw_mw = self.site.draw_mw(point)
        spread = self.site.spread(plan.now)  # the PPA and the forwards in term now
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
        params = self.site.params
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
            spread_usd_per_mwh=spread.usd_per_mwh if spread else None,
            hedged_share=spread.hedged_share if spread else None,
            margin_floor_usd_per_mwh=spread.margin_floor_usd_per_mwh if spread else None,
            ramp_limited=plan.ramp_limited,
            grid=tuple(
                GridStatus(o.kind, o.id, o.cap_mw, o.compliant(draw_mw, plan.now))
                for o in snapshot.overrides
                if o.active(plan.now)
            ),
            draw_mw=draw_mw,
            # Per group and point: for whoever reads the status (the daemon's topic, /healthz
            # and metrics); a replay that publishes nothing does not pay for it every cycle.
            groups=group_states(
                fleet,
                point,
                after.reachable,
                net_hashprice_usd_per_ph_day=plan.net_hashprice_usd_per_ph_day,
                opportunity_cost_usd_per_mwh=plan.opportunity_cost_usd_per_mwh,
                adders_usd_per_mwh=params.adders_usd_per_mwh,
            )
            if self._status_sink is not None or self._observer is not None
            else (),
            reason=reason_of(plan),
            commands=snapshot.overrides,
            pacing=self._pacing_status(plan),
            bitcoin=tuple(
                (name, r)
                for name, f in self._bitcoin_inputs
                if (r := f.latest(plan.now)) is not None
            ),
        )

    def _log_decision(self, plan: Plan, snapshot: Snapshot) -> None:
        """One ``decision`` line per change of plan (not per cycle): what changed per
        config group, the inputs, each group's energy hashprice and margin, and the rule."""
        reason = reason_of(plan)
        action = "" if plan.failsafe is None else str(plan.failsafe.action)
        key = f"{reason.rule}|{reason.override_id}|{action}"  # not the details: ages move
        last = self._logged
        if last is not None and np.array_equal(last[0], plan.point) and last[1] == key:
            return
        groups = group_states(
            self.site.fleet,
            plan.point,
            snapshot.reachable,
            net_hashprice_usd_per_ph_day=plan.net_hashprice_usd_per_ph_day,
            opportunity_cost_usd_per_mwh=plan.opportunity_cost_usd_per_mwh,
            adders_usd_per_mwh=self.site.params.adders_usd_per_mwh,
        )
        changed = changes(None if last is None else last[2], groups)
        self._logged = (plan.point.copy(), key, groups)
        self._log.info(
            "decision",
            at=iso(plan.now),
            rule=reason.rule,
            reason=reason.detail,
            override=None if reason.override_id is None else reason.override_id,
            override_kind=reason.override_kind,
            ramp_limited=reason.ramp_limited,
            paced=int(plan.paced.size),  # miners whose resume waits for actuation pacing
            price_usd_per_mwh=None if snapshot.price is None else snapshot.price.value,
            hashprice_usd_per_ph_day=None
            if snapshot.hashprice is None
            else snapshot.hashprice.value,
            opportunity_cost_usd_per_mwh=plan.opportunity_cost_usd_per_mwh,
            changed={c.name: c.describe() for c in changed},
            groups={
                g.name: {
                    "running": g.running,
                    "throttled": g.throttled,
                    "curtailed": g.curtailed,
                    "energy_hashprice_usd_per_mwh": _rounded(g.energy_hashprice_usd_per_mwh),
                    "margin_usd_per_mwh": _rounded(g.margin_usd_per_mwh),
                }
                for g in groups
            },
            dry_run=self.dry_run,
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


def _merged(*reports: DispatchReport | None) -> DispatchReport | None:
    """One report of the jobs that ended in or before a cycle (None if none did)."""
    present = [r for r in reports if r is not None]
    if not present:
        return None
    return DispatchReport(tuple(d for r in present for d in r.dispatched))


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


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _count(mask: IntArray | np.ndarray) -> int:
    return int(np.count_nonzero(mask))
