"""A fleet worker: owns one shard's miners, runs the planner's plans through pyasic.

Over 300 lines: one worker whose plans, shard lease and planner-silence fail-safe share the
shard's state (its driver, its gate, whether it drives the shard).

``hashspark worker CONFIG --shard N`` connects to the site's broker with a last will
(retained ``offline`` on ``.../shard/<n>/status``), says ``starting``, discovers its
miners, says ``online`` with what each can do, then runs plans from ``.../shard/<n>/plan``
one at a time through the existing ``PyasicDriver`` (semaphore, deadlines, confirmation from
telemetry) and answers each on ``.../shard/<n>/report``. A plan that is stale, a duplicate or
from an older planner is ignored (``PlanGate``); a newer plan that arrives while one runs
replaces any that was still waiting.

Two more duties keep a site controlled when a process dies (docs/scaling.md):

- **The shard's lease.** Several workers may run for one shard (a hot standby on another
  host: the same command). They hold a lease per shard on the broker (``lease.py``); only
  the holder says ``online`` (with its last will armed), runs plans and commands miners;
  the others discover the miners and wait. When the holder dies, a standby takes the shard
  over within ``lease_s``.
- **The planner's silence.** Workers follow the planner lease: a plan of an epoch older
  than the newest lease seen is refused. When no live planner is heard (no plan, no lease
  renewal) for ``planner_silence_s``, the worker applies the site's fail-safe action
  (``[sites.failsafe] action``) to its miners itself, once per silence; the next plan of a
  live planner takes over again.
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import structlog

from adapters.miners.config import PyasicDriverConfig
from adapters.miners.driver import PyasicDriver
from adapters.sharding.bus import ShardBus, client_id
from adapters.sharding.lease import Lease, LeaseRecord, keep
from adapters.sharding.messages import (
    MAX_REASON_CHARS,
    Failure,
    MessageError,
    PlanGate,
    ShardPlan,
    ShardReport,
    ShardStatus,
)
from adapters.sharding.shards import (
    ShardTopics,
    fingerprint,
    mask_bits,
    partition,
    points_of,
    process_id,
    process_tag,
    watts_of,
)
from controller.config import ConfigError, SiteConfig
from controller.decision.reconcile import CommandBatch, DispatchReport, failed_name
from controller.domain import OFF, FailSafeAction, FleetSpec, IntArray, ObservedFleet
from controller.runtime.ports import Clock

_log = structlog.get_logger("hashspark.worker")

DISCOVERY_ROUNDS = 5  #: tries at start-up for miners that did not answer (later: every read)


def sub_fleet(fleet: FleetSpec, rows: IntArray) -> FleetSpec:
    """The rows of ``fleet`` as a fleet of their own (same models and point columns)."""
    return FleetSpec(
        hashrate_th=fleet.hashrate_th[rows],
        power_w=fleet.power_w[rows],
        valid=fleet.valid[rows],
        model_index=fleet.model_index[rows],
        model_names=fleet.model_names,
        groups=fleet.group_of[rows],
        group_names=fleet.group_names,
    )


class ShardWorker:
    """One shard's miners, driven by the planner's plans."""

    def __init__(self, site: SiteConfig, shard: int, clock: Clock) -> None:
        sharding, broker, driver_cfg = site.sharding, site.shard_broker, site.driver
        if sharding is None or broker is None or not isinstance(driver_cfg, PyasicDriverConfig):
            raise ConfigError([f"sites[{site.id}]: not a sharded pyasic site"])
        if not 0 <= shard < sharding.shards:
            raise ConfigError([f"sites[{site.id}]: shard {shard} not in 0..{sharding.shards - 1}"])
        addresses, firmware = site.addresses()
        rows = partition(addresses, sharding.shards)[shard]
        self.site_id = site.id
        self.shard = shard
        self.fleet = sub_fleet(site.fleet(), rows)
        self.addresses = [addresses[int(i)] for i in rows]
        self.fingerprint = fingerprint(addresses, site.fleet(), rows)
        self._clock = clock
        self.driver = PyasicDriver(
            self.fleet,
            self.addresses,
            driver_cfg,
            clock,
            firmware=[firmware[int(i)] for i in rows],
        )
        self._concurrency = driver_cfg.concurrency
        self.worker = process_id(clock)
        self.topics = ShardTopics(broker.topic_prefix, site.id)
        self.gate = PlanGate(sharding.plan_max_age_s)
        self.state: ShardStatus = self._status("starting")
        self.plans_run = 0
        self.plans_ignored = 0
        self.failsafe_action = site.failsafe.action
        self.planner_silence_s = sharding.planner_silence_s
        self.failsafes = 0
        self.silent = False  # the fail-safe was applied for the current silence
        self._last_word = clock.now()  # last sign of a live planner (plan or lease renewal)
        self._next: ShardPlan | None = None
        self._running: tuple[ShardPlan, asyncio.Task[ShardReport]] | None = None
        self._wake = asyncio.Event()
        self._stop_lease = asyncio.Event()
        self.lease = Lease(
            site.id, f"shard-{shard}", self.worker, sharding.lease_s, on_change=self._lease_changed
        )
        self._drove = False  # held the shard's lease and was not superseded since
        self._stopping = False
        will = ShardStatus(
            site=site.id, shard=shard, state="offline", worker=self.worker, reason="connection lost"
        )
        self._will = (self.topics.status(shard), will.to_bytes())
        self.bus = ShardBus(
            broker,
            client_id(broker, site.id, f"shard-{shard}-{process_tag(self.worker)}"),
            [self.topics.plan(shard), self.topics.planner_lease, self.topics.lease(shard)],
            self._receive,
            on_connect=self._connected,  # the will is armed once this worker holds the shard
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Discover, take the shard's lease, run plans until ``stop``; then say ``stopped``."""
        async with self.bus:
            keeper = asyncio.create_task(
                keep(
                    self.lease,
                    lambda raw: self.bus.publish(self.topics.lease(self.shard), raw, retain=True),
                    self._clock.now,
                    self._stop_lease,
                    lambda: self.bus.connected,
                ),
                name=f"lease:shard-{self.shard}",
            )
            try:
                await self._discover(stop)
                await self._serve(stop)
            finally:
                self._stop_lease.set()
                await keeper
            if self.lease.holding(self._clock.now()):
                self.state = self._status("stopped")
                await self._publish_status()
                self._stopping = True  # no reconnect for a will: we are leaving
                release = self.lease.release(self._clock.now())
                if release is not None:  # a standby takes the shard over now
                    await self.bus.publish(
                        self.topics.lease(self.shard), release.to_bytes(), retain=True
                    )

    async def _discover(self, stop: asyncio.Event) -> None:
        found = await self.driver.discover()
        for k in range(1, DISCOVERY_ROUNDS):
            if found == len(self.addresses) or stop.is_set():
                break
            # On a loaded host pyasic's own probe timeouts give up all at once: ask
            # again, fewer at a time.
            await asyncio.sleep(1.0)
            found = await self.driver.discover(max(10, self._concurrency >> (2 * k)))
        self.state = self._status("online", allowed=self._allowed())
        _log.info(
            "worker_online",
            site=self.site_id,
            shard=self.shard,
            worker=self.worker,
            miners=len(self.addresses),
            found=found,
            addresses=f"{self.addresses[0]}..{self.addresses[-1]}",
        )
        if self.lease.holding(self._clock.now()):
            await self._publish_status()

    async def _serve(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = self._clock.now()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(1.0, max(0.05, self._silence_left(now)))):
                    await _first(self._wake, stop)
            if self._silence_left(self._clock.now()) <= 0 and not self.silent:
                await self._fail_safe()
            self._wake.clear()
            plan, self._next = self._next, None
            if plan is None:
                continue
            if not self.lease.holding(self._clock.now()):
                self._ignored(plan, "this worker does not hold the shard's lease")
                continue
            if not self.gate.fresh(plan, self._clock.now()):
                self._ignored(plan, "stale: it waited too long behind the previous plan")
                continue
            report = await self._run_plan(plan)
            if report is None:
                continue  # cancelled: a newer planner took over while it ran
            self.plans_run += 1
            await self.bus.publish(self.topics.report(self.shard), report.to_bytes())
            allowed = self._allowed()
            if allowed != self.state.allowed:  # a miner found since: a restarted planner
                self.state = self._status("online", allowed=allowed)  # plans it with it
                await self._publish_status()
        self.state = self._status("stopped")

    async def _run_plan(self, plan: ShardPlan) -> ShardReport | None:
        """Execute ``plan``; None if a newer epoch cancelled it: no stale command goes on."""
        task = asyncio.create_task(self.execute(plan), name=f"plan:{plan.epoch}:{plan.seq}")
        self._running = (plan, task)
        try:
            await asyncio.wait({task})
        finally:
            self._running = None
            if not task.done():  # we were cancelled (stopping): so is the plan
                task.cancel()
        if task.cancelled():
            why = (
                f"a newer planner holds epoch {self.gate.epoch}"
                if plan.epoch < self.gate.epoch
                else "this worker no longer holds the shard's lease"
            )
            _log.warning("plan_cancelled", shard=self.shard, epoch=plan.epoch, seq=plan.seq,
                         reason=why)  # fmt: skip
            return None
        return task.result()

    def _cancel_stale(self) -> None:
        """A newer epoch was seen: stop the plan of an older one that is still running."""
        if self._running is not None and self._running[0].epoch < self.gate.epoch:
            self._running[1].cancel()

    # --- the planner's silence: the site's fail-safe, applied here -------------------------

    def _silence_left(self, now: float) -> float:
        """Seconds until the planner counts as silent (inf while we do not drive the shard)."""
        if not self._drove or self.lease.superseded():
            return float("inf")
        return self._last_word + self.planner_silence_s - now

    def _heard_planner(self, now: float) -> None:
        self._last_word = now
        if self.silent:
            self.silent = False
            _log.info("planner_back", site=self.site_id, shard=self.shard, epoch=self.gate.epoch)

    async def _fail_safe(self) -> None:
        """No live planner for ``planner_silence_s``: the site's fail-safe, on our miners."""
        self.silent = True
        self.failsafes += 1
        silent_s = self._clock.now() - self._last_word
        _log.error(
            "planner_silent",
            site=self.site_id,
            shard=self.shard,
            silent_s=round(silent_s, 1),
            epoch=self.gate.epoch,
            action=self.failsafe_action.value,
        )
        if self.failsafe_action is FailSafeAction.HOLD:
            return  # miners stay as they are: what hold means
        observed = await self.driver.observe()
        if self.failsafe_action is FailSafeAction.CURTAIL:
            target = np.full(self.fleet.size, OFF, dtype=np.int64)
        else:
            allowed = self.driver.allowed_points()
            width = allowed.shape[1]
            target = (width - 1 - np.argmax(allowed[:, ::-1], axis=1)).astype(np.int64)
        rows = np.flatnonzero(observed.reachable & (observed.point != target)).astype(np.int64)
        report = await self.driver.apply(CommandBatch(rows, target[rows]))
        _log.warning(
            "failsafe_applied",
            site=self.site_id,
            shard=self.shard,
            action=self.failsafe_action.value,
            commanded=int(rows.size),
            applied=int(report.applied.size),
            failed=len(report.failed),
        )

    # --- the shard's lease -----------------------------------------------------------------

    async def _connected(self) -> None:
        self.lease.connected(self._clock.now())
        if self.lease.holding(self._clock.now()):
            await self._publish_status()

    def _lease_changed(self, holding: bool) -> None:
        now = self._clock.now()
        if holding:
            self._drove = True
            self._last_word = max(self._last_word, now)  # silence counts from taking over
            _log.info("shard_taken", site=self.site_id, shard=self.shard, worker=self.worker,
                      epoch=self.lease.epoch)  # fmt: skip
            self.bus.rearm(self._will)  # reconnects with the will; on_connect says online
        else:
            if self._running is not None:  # not ours to drive any more: stop commanding
                self._running[1].cancel()
            if not self._stopping:
                self.bus.rearm(None)  # the shard's status is the new holder's to give

    async def execute(self, plan: ShardPlan) -> ShardReport:
        """Run one plan through the pyasic driver and say what came of it."""
        report: DispatchReport | None = None
        if plan.kind == "apply":
            rows = np.asarray(plan.miners, dtype=np.int64)
            batch = CommandBatch(rows, points_of(self.fleet, rows, plan.target_w))
            _log.info("plan_started", shard=self.shard, epoch=plan.epoch, seq=plan.seq,
                      commands=len(batch))  # fmt: skip
            report = await self.driver.apply(batch)
            observed = self.driver.current()
            _log.info(
                "plan_applied",
                shard=self.shard,
                epoch=plan.epoch,
                seq=plan.seq,
                commanded=len(batch),
                applied=int(report.applied.size),
                failed=len(report.failed),
            )
        else:
            observed = await self.driver.observe()
        return self._report(plan, observed, report)

    def _report(
        self, plan: ShardPlan, observed: ObservedFleet, report: DispatchReport | None
    ) -> ShardReport:
        every = np.arange(self.fleet.size, dtype=np.int64)
        power_w = hashrate_th = 0.0
        for t, ok in zip(self.driver.telemetry, observed.reachable.tolist(), strict=True):
            if t is not None and ok:
                power_w += t.power_w or 0.0
                hashrate_th += t.hashrate_th or 0.0
        failures = (
            ()
            if report is None
            else tuple(
                Failure(miner=int(i), outcome=failed_name(o), reason=o.reason[:MAX_REASON_CHARS])
                for i, o in report.failed
            )
        )
        return ShardReport(
            site=self.site_id,
            shard=self.shard,
            epoch=plan.epoch,
            seq=plan.seq,
            worker=self.worker,
            finished_at=self._clock.now(),
            applied=() if report is None else tuple(int(i) for i in report.applied.tolist()),
            confirmation_s=()
            if report is None
            else tuple(round(s, 3) for s in report.confirmation_s),
            failures=failures,
            point_w=tuple(watts_of(self.fleet, every, observed.point)),
            reachable=tuple(bool(r) for r in observed.reachable.tolist()),
            power_w=max(power_w, 0.0),
            hashrate_th=max(hashrate_th, 0.0),
        )

    def _receive(self, topic: str, raw: bytes, retained: bool) -> None:
        if topic in (self.topics.planner_lease, self.topics.lease(self.shard)):
            self._on_lease(topic, raw)
            return
        if retained or not raw:
            return  # a retained plan would replay on every reconnect: never act on one
        try:
            plan = ShardPlan.parse(raw)
        except MessageError as exc:
            _log.warning("plan_refused", shard=self.shard, reason=str(exc))
            return
        if plan.site != self.site_id or plan.shard != self.shard:
            self._ignored(plan, "for another site or shard")
            return
        if not self.lease.holding(self._clock.now()):
            self.plans_ignored += 1  # a standby: every plan is the holder's, nothing to log
            return
        why = self.gate.admit(plan, self._clock.now())
        if why is not None:
            self._ignored(plan, why)
            return
        self._heard_planner(self._clock.now())
        self._cancel_stale()
        if self._next is not None:
            self._ignored(self._next, f"superseded by plan {plan.seq}")
        self._next = plan
        self._wake.set()

    def _on_lease(self, topic: str, raw: bytes) -> None:
        if not raw:
            return
        try:
            record = LeaseRecord.parse(raw)
        except MessageError as exc:
            _log.warning("lease_refused", shard=self.shard, topic=topic, reason=str(exc))
            return
        now = self._clock.now()
        if topic != self.topics.planner_lease:
            self.lease.on_record(record, now)
            if self.lease.superseded() and self._drove:
                self._drove = False
                _log.warning("shard_handed_over", site=self.site_id, shard=self.shard,
                             to=record.holder, epoch=record.epoch)  # fmt: skip
            return
        if record.site != self.site_id or record.scope != "planner":
            return
        if self.gate.fence(record.epoch, now):  # plans of an older planner are refused from now
            _log.info("planner_epoch", site=self.site_id, shard=self.shard,
                      holder=record.holder, epoch=record.epoch)  # fmt: skip
            self._cancel_stale()
        if record.state == "held" and record.epoch >= self.gate.epoch and now < record.expires_at:
            self._heard_planner(now)

    def _allowed(self) -> tuple[int, ...]:
        """Each miner's allowed points as bits; 0 for one not discovered yet (unknown)."""
        bits = mask_bits(self.driver.allowed_points())
        return tuple(
            b if caps is not None else 0
            for b, caps in zip(bits, self.driver.capabilities, strict=True)
        )

    def _ignored(self, plan: ShardPlan, why: str) -> None:
        self.plans_ignored += 1
        _log.warning("plan_ignored", shard=self.shard, epoch=plan.epoch, seq=plan.seq, reason=why)

    def _status(self, state: str, allowed: tuple[int, ...] = ()) -> ShardStatus:
        return ShardStatus.model_validate(
            {
                "site": self.site_id,
                "shard": self.shard,
                "state": state,
                "worker": self.worker,
                "at": self._clock.now(),
                "allowed": allowed,
                "fleet": self.fingerprint,
            },
            strict=False,
        )

    async def _publish_status(self) -> None:
        await self.bus.publish(self.topics.status(self.shard), self.state.to_bytes(), retain=True)


async def _first(*events: asyncio.Event) -> None:
    """Return once any of ``events`` is set."""
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
