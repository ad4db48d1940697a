"""A fleet worker: owns one shard's miners, runs the planner's plans through pyasic.

``hashspark worker CONFIG --shard N`` connects to the site's broker with a last will
(retained ``offline`` on ``.../shard/<n>/status``), says ``starting``, discovers its
miners, says ``online`` with what each can do, then runs plans from ``.../shard/<n>/plan``
one at a time through the existing ``PyasicDriver`` (semaphore, deadlines, confirmation from
telemetry) and answers each on ``.../shard/<n>/report``. A plan that is stale, a duplicate or
from an older planner is ignored (``PlanGate``); a newer plan that arrives while one runs
replaces any that was still waiting.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket

import numpy as np
import structlog

from adapters.miners.config import PyasicDriverConfig
from adapters.miners.driver import PyasicDriver
from adapters.sharding.bus import ShardBus, client_id
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
    watts_of,
)
from controller.config import ConfigError, SiteConfig
from controller.decision.reconcile import CommandBatch, DispatchReport, failed_name
from controller.domain import FleetSpec, IntArray, ObservedFleet
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


def worker_id(clock: Clock) -> str:
    """This process: host, pid and start time (a restarted worker is a new one)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:32] or "host"
    return f"{host}:{os.getpid()}:{int(clock.now() * 1000)}"


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
        self.worker = worker_id(clock)
        self.topics = ShardTopics(broker.topic_prefix, site.id)
        self.gate = PlanGate(sharding.plan_max_age_s)
        self.state: ShardStatus = self._status("starting")
        self.plans_run = 0
        self.plans_ignored = 0
        self._next: ShardPlan | None = None
        self._wake = asyncio.Event()
        will = ShardStatus(site=site.id, shard=shard, state="offline", reason="connection lost")
        self.bus = ShardBus(
            broker,
            client_id(broker, site.id, f"shard-{shard}"),
            [self.topics.plan(shard)],
            self._receive,
            will=(self.topics.status(shard), will.to_bytes()),
            on_connect=self._publish_status,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Discover, go online, run plans until ``stop``; then say ``stopped``."""
        async with self.bus:
            found = await self.driver.discover()
            for k in range(1, DISCOVERY_ROUNDS):
                if found == len(self.addresses) or stop.is_set():
                    break
                # On a loaded host pyasic's own probe timeouts give up all at once: ask
                # again, fewer at a time.
                await asyncio.sleep(1.0)
                found = await self.driver.discover(max(10, self._concurrency >> (2 * k)))
            self.state = self._status("online", allowed=self._allowed())
            await self._publish_status()
            _log.info(
                "worker_online",
                site=self.site_id,
                shard=self.shard,
                worker=self.worker,
                miners=len(self.addresses),
                found=found,
                addresses=f"{self.addresses[0]}..{self.addresses[-1]}",
            )
            while not stop.is_set():
                await _first(self._wake, stop)
                self._wake.clear()
                plan, self._next = self._next, None
                if plan is None:
                    continue
                if not self.gate.fresh(plan, self._clock.now()):
                    self._ignored(plan, "stale: it waited too long behind the previous plan")
                    continue
                report = await self.execute(plan)
                self.plans_run += 1
                await self.bus.publish(self.topics.report(self.shard), report.to_bytes())
                allowed = self._allowed()
                if allowed != self.state.allowed:  # a miner found since: a restarted planner
                    self.state = self._status("online", allowed=allowed)  # plans it with it
                    await self._publish_status()
            self.state = self._status("stopped")
            await self._publish_status()

    async def execute(self, plan: ShardPlan) -> ShardReport:
        """Run one plan through the pyasic driver and say what came of it."""
        report: DispatchReport | None = None
        if plan.kind == "apply":
            rows = np.asarray(plan.miners, dtype=np.int64)
            batch = CommandBatch(rows, points_of(self.fleet, rows, plan.target_w))
            report = await self.driver.apply(batch)
            observed = self.driver.current()
            _log.info(
                "plan_applied",
                shard=self.shard,
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
        why = self.gate.admit(plan, self._clock.now())
        if why is not None:
            self._ignored(plan, why)
            return
        if self._next is not None:
            self._ignored(self._next, f"superseded by plan {plan.seq}")
        self._next = plan
        self._wake.set()

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
