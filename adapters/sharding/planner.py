"""``ShardedDriver``: the planner's ``MinerDriver`` for a site whose miners fleet workers own.

Over 300 lines: one driver whose plans, reports and shard health share per-shard state.

The site loop runs unchanged on it. ``observe()`` and ``apply()`` become plans published
to every shard's ``.../shard/<n>/plan``; each worker answers on ``.../shard/<n>/report``
with outcomes confirmed from the miners' telemetry and the shard's points afterwards.

A shard is *managed* while its worker says ``online``. Its last will (``offline``, which
the broker publishes when the worker's connection dies or its keepalive lapses), a clean
``stopped``, or a report that does not come within ``report_timeout_s`` make it
unmanaged: logged once, the ``hashspark_shard_managed`` gauge drops to 0, the retained
``<prefix>/<site>/shards`` summary says why, and the fail-safe applies: its miners read as
unreachable (so the core plans them where they were and commands none of them), and a
command in flight there ends ``Unreachable``, never ``Applied``.

Only the holder of the planner lease (``lease.py``) commands: its epoch stamps every plan.
A standby planner (a second ``hashspark run`` of the site, or one that lost its lease)
sends no plan and publishes no summary; it reads every miner as unreachable and commands
none, so its site loop plans nothing until it takes the lease over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from types import TracebackType
from typing import Literal, Self

import numpy as np
import structlog

from adapters.feeds.config import MqttBrokerConfig
from adapters.miners.capabilities import restrict_fleet
from adapters.sharding.book import Shard, ShardBook, ShardLostError
from adapters.sharding.bus import ShardBus, client_id
from adapters.sharding.config import ShardingConfig
from adapters.sharding.lease import Lease, LeaseRecord, keep
from adapters.sharding.messages import (
    MessageError,
    ShardPlan,
    ShardReport,
    ShardStatus,
)
from adapters.sharding.shards import (
    ShardTopics,
    bits_mask,
    points_of,
    process_id,
    process_tag,
    watts_of,
)
from controller.decision.reconcile import (
    Applied,
    CommandBatch,
    DispatchReport,
    Outcome,
    Unreachable,
    failed_from,
)
from controller.domain import FleetSpec, ObservedFleet
from controller.runtime.ports import Clock

_log = structlog.get_logger("hashspark.shards")


class ShardedDriver:
    """A ``MinerDriver`` that plans for shards over MQTT and reconciles from their reports."""

    def __init__(
        self,
        site_id: str,
        fleet: FleetSpec,
        addresses: Sequence[str],
        *,
        sharding: ShardingConfig,
        broker: MqttBrokerConfig,
        clock: Clock,
    ) -> None:
        if len(addresses) != fleet.size:
            raise ValueError(f"{len(addresses)} addresses for a fleet of {fleet.size} miners")
        self.site_id = site_id
        self.fleet = fleet
        self._config_fleet = fleet
        self._addresses = tuple(addresses)
        self._cfg = sharding
        self._clock = clock
        self.topics = ShardTopics(broker.topic_prefix, site_id)
        self.identity = process_id(clock)
        self.lease = Lease(
            site_id, "planner", self.identity, sharding.lease_s, on_change=self._lease_changed
        )
        self._seq = 0
        self._stop = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self.book = ShardBook(
            site_id, fleet, addresses, sharding.shards, clock=clock, on_change=self._summary_soon
        )
        self._shard_of = np.empty(fleet.size, dtype=np.int64)
        self._local_of = np.empty(fleet.size, dtype=np.int64)
        for s in self.shards:
            self._shard_of[s.rows] = s.number
            self._local_of[s.rows] = np.arange(s.rows.size)
        self._point = np.zeros(fleet.size, dtype=np.int64)  # a miner never seen counts as off
        self._reachable = np.zeros(fleet.size, dtype=bool)
        self._background: set[asyncio.Task[None]] = set()
        self.bytes_out = 0
        self.bytes_in = 0
        self.messages_out = 0
        self.messages_in = 0
        self.bus = ShardBus(
            broker,
            # One id per process: a standby planner must not take the holder's connection.
            client_id(broker, site_id, f"planner-{process_tag(self.identity)}"),
            [
                f"{self.topics.base}/+/status",
                f"{self.topics.base}/+/report",
                self.topics.planner_lease,
            ],
            self._receive,
            on_connect=self._connected,
        )

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.bus.__aenter__()
        self._keeper = asyncio.create_task(
            keep(
                self.lease,
                lambda raw: self.bus.publish(self.topics.planner_lease, raw, retain=True),
                self._clock.now,
                self._stop,
                lambda: self.bus.connected,
            ),
            name=f"lease:{self.site_id}",
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._keeper is not None:
            await self._keeper
        release = self.lease.release(self._clock.now())
        if release is not None:  # a standby takes over now, not when the lease expires
            await self.bus.publish(self.topics.planner_lease, release.to_bytes(), retain=True)
        await self.bus.__aexit__(exc_type, exc, tb)

    @property
    def epoch(self) -> int:
        """The epoch of our lease (0 before we ever held it): it stamps every plan."""
        return self.lease.epoch

    def leading(self) -> bool:
        """Whether this planner holds the lease and may command."""
        return self.lease.holding(self._clock.now())

    async def _connected(self) -> None:
        self.lease.connected(self._clock.now())
        if self.leading():
            await self._publish_summary()

    def _lease_changed(self, holding: bool) -> None:
        if not holding:  # what we asked under the old epoch will not be answered for us
            for s in self.shards:
                s.fail_waiting()
        self._summary_soon()

    async def discover(self) -> int:
        """Wait (up to ``startup_timeout_s``) for the lease settled and every worker online;
        the miners they found."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._cfg.startup_timeout_s):
                await self.lease.settled.wait()
                await asyncio.gather(*(s.online.wait() for s in self.shards))
        _log.info("planner_lease", site=self.site_id, **self.lease.describe(self._clock.now()))
        missing = [s.number for s in self.shards if not s.managed]
        if missing:
            _log.warning(
                "shards_not_online_at_start",
                site=self.site_id,
                shards=missing,
                waited_s=self._cfg.startup_timeout_s,
            )
        return sum(sum(1 for b in s.allowed if b) for s in self.shards if s.managed)

    @property
    def addresses(self) -> tuple[str, ...]:
        """Each miner's address, in fleet order."""
        return self._addresses

    def restrict_to_capabilities(self) -> FleetSpec:
        """Plan each miner with the points its worker found its firmware allows.

        A miner not discovered yet, or in a shard not online yet, keeps every configured
        point: its worker discovers it when first commanded and refuses what its firmware
        cannot do (``Rejected``); a restart of the planner plans it with what it can do.
        """
        width = self._config_fleet.valid.shape[1]
        mask = self._config_fleet.valid.copy()
        for s in self.shards:
            if len(s.allowed) == s.rows.size:
                bits = np.asarray(s.allowed, dtype=np.int64)
                known = s.rows[bits != 0]
                mask[known] = bits_mask(bits[bits != 0], width) & self._config_fleet.valid[known]
        self.adopt_fleet(restrict_fleet(self._config_fleet, mask))
        return self.fleet

    def adopt_fleet(self, fleet: FleetSpec) -> None:
        """Plan with new curves for the same miners."""
        if fleet.size != self.fleet.size:
            raise ValueError(f"a fleet of {fleet.size} for {self.fleet.size} miners")
        watts = np.rint(self.fleet.power_at(self._point))
        every = np.arange(fleet.size, dtype=np.int64)
        self._point = points_of(fleet, every, [int(w) for w in watts])
        self.fleet = fleet

    # --- MinerDriver -----------------------------------------------------------------------

    async def observe(self) -> ObservedFleet:
        """Every askable shard reads its miners; an unmanaged shard's read as unreachable.

        A standby planner asks nothing and reads every miner as unreachable."""
        if not self.leading():
            return ObservedFleet(
                point=self._point.copy(),
                reachable=np.zeros(self.fleet.size, dtype=bool),
                observed_at=self._clock.now(),
            )
        plans = {s.number: self._plan(s, "observe", (), ()) for s in self.shards if s.askable}
        reports = await self._ask_all(plans)
        for s in self.shards:
            report = reports.get(s.number)
            if report is None:
                self._reachable[s.rows] = False
            else:
                self._take_telemetry(s, report)
        return ObservedFleet(
            point=self._point.copy(),
            reachable=self._reachable.copy(),
            observed_at=self._clock.now(),
        )

    async def apply(self, batch: CommandBatch) -> DispatchReport:
        """Send each shard its commands; outcomes from the reports, Unreachable where none came."""
        by_shard: dict[int, tuple[list[int], list[int]]] = {}
        miners = batch.miner
        watts = watts_of(self.fleet, miners, batch.point)
        for i, w in zip(miners.tolist(), watts, strict=True):
            local, target = by_shard.setdefault(int(self._shard_of[i]), ([], []))
            local.append(int(self._local_of[i]))
            target.append(w)
        outcomes: dict[int, tuple[Outcome, float | None]] = {}
        plans: dict[int, ShardPlan] = {}
        leading = self.leading()
        for n, (local, target) in by_shard.items():
            s = self.shards[n]
            if not leading:
                why = Unreachable(f"standby planner: {self._holder_text()}")
                outcomes.update({int(s.rows[k]): (why, None) for k in local})
            elif s.askable:
                plans[n] = self._plan(s, "apply", tuple(local), tuple(target))
            else:
                why = Unreachable(f"shard {n} unmanaged ({s.state}): {s.reason}")
                outcomes.update({int(s.rows[k]): (why, None) for k in local})
        reports = await self._ask_all(plans)
        for n, plan in plans.items():
            s = self.shards[n]
            report = reports.get(n)
            if report is None:
                why = Unreachable(f"shard {n}: no report ({s.state}: {s.reason})")
                outcomes.update({int(s.rows[k]): (why, None) for k in plan.miners})
                continue
            self._take_telemetry(s, report)
            outcomes.update(self._outcomes(s, plan, report))
        return DispatchReport.of(batch, outcomes)

    # --- plans and reports -----------------------------------------------------------------

    def _plan(
        self,
        s: Shard,
        kind: Literal["observe", "apply"],
        local: tuple[int, ...],
        target: tuple[int, ...],
    ) -> ShardPlan:
        self._seq += 1
        return ShardPlan(
            site=self.site_id,
            shard=s.number,
            epoch=self.epoch,
            seq=self._seq,
            issued_at=self._clock.now(),
            kind=kind,
            miners=local,
            target_w=target,
        )

    async def _ask_all(self, plans: dict[int, ShardPlan]) -> dict[int, ShardReport]:
        results = await asyncio.gather(*(self._ask(self.shards[n], p) for n, p in plans.items()))
        return {n: r for n, r in zip(plans, results, strict=True) if r is not None}

    async def _ask(self, s: Shard, plan: ShardPlan) -> ShardReport | None:
        """Publish a plan and wait for its report; None if the shard went or stayed silent."""
        future: asyncio.Future[ShardReport] = asyncio.get_running_loop().create_future()
        s.waiting[plan.seq] = future
        try:
            payload = plan.to_bytes()
            if not self.leading():  # lost the lease since the cycle began: not ours to send
                return None
            if not await self.bus.publish(self.topics.plan(s.number), payload):
                self.book.unmanaged(s, "unresponsive", "the planner has no broker connection")
                return None
            self.bytes_out += len(payload)
            self.messages_out += 1
            try:
                async with asyncio.timeout(self._cfg.report_timeout_s):
                    return await future
            except TimeoutError:
                self.book.unmanaged(
                    s,
                    "unresponsive",
                    f"no report within {self._cfg.report_timeout_s:g} s (plan {plan.seq})",
                )
                return None
            except ShardLostError:
                return None
        finally:
            s.waiting.pop(plan.seq, None)

    def _take_telemetry(self, s: Shard, report: ShardReport) -> None:
        if len(report.point_w) != s.rows.size:
            _log.warning("shard_report_wrong_size", shard=s.number, miners=len(report.point_w))
            self._reachable[s.rows] = False
            return
        self._point[s.rows] = points_of(self.fleet, s.rows, report.point_w)
        self._reachable[s.rows] = np.asarray(report.reachable, dtype=bool)

    def _outcomes(
        self, s: Shard, plan: ShardPlan, report: ShardReport
    ) -> dict[int, tuple[Outcome, float | None]]:
        out: dict[int, tuple[Outcome, float | None]] = {}
        for k, seconds in zip(report.applied, report.confirmation_s, strict=True):
            out[int(s.rows[k])] = (Applied(), seconds)
        for f in report.failures:
            out[int(s.rows[f.miner])] = (failed_from(f.outcome, f.reason), None)
        for k in plan.miners:
            out.setdefault(
                int(s.rows[k]), (Unreachable(f"shard {s.number} reported no outcome"), None)
            )
        return out

    # --- incoming --------------------------------------------------------------------------

    def _receive(self, topic: str, raw: bytes, retained: bool) -> None:
        if topic == self.topics.planner_lease:
            if raw:
                try:
                    self.lease.on_record(LeaseRecord.parse(raw), self._clock.now())
                except MessageError as exc:
                    _log.warning("shard_message_refused", topic=topic, reason=str(exc))
            return
        parts = topic.split("/")
        try:
            n = int(parts[-2])
        except (ValueError, IndexError):
            return
        if not 0 <= n < len(self.shards) or not raw:
            return
        self.bytes_in += len(raw)
        self.messages_in += 1
        s = self.shards[n]
        try:
            if parts[-1] == "status":
                self.book.on_status(s, ShardStatus.parse(raw))
            elif parts[-1] == "report":
                self._on_report(s, ShardReport.parse(raw))
        except MessageError as exc:
            _log.warning("shard_message_refused", topic=topic, reason=str(exc))

    def _on_report(self, s: Shard, report: ShardReport) -> None:
        if report.site != self.site_id or report.epoch != self.epoch:
            return  # for another planner (an earlier run of ours)
        future = s.waiting.get(report.seq)
        if future is None or future.done():
            return  # late (timed out) or a duplicate
        if s.state == "unresponsive":
            self.book.managed(s, f"worker {report.worker} answering again")
        future.set_result(report)

    # --- the retained summary --------------------------------------------------------------

    @property
    def shards(self) -> list[Shard]:
        """The shards, in number order."""
        return self.book.shards

    def summary(self) -> dict[str, object]:
        """Every shard's state and the lease, for the retained summary topic and ``/healthz``."""
        return self.book.summary() | {"planner": self.lease.describe(self._clock.now())}

    def _holder_text(self) -> str:
        c = self.lease.current
        if c is None or c.state != "held":
            return "no planner holds the lease yet"
        return f"planner {c.holder} holds the lease (epoch {c.epoch})"

    def _summary_soon(self) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to publish to
            task = asyncio.get_running_loop().create_task(self._publish_summary())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _publish_summary(self) -> None:
        if not self.leading():
            return  # only the lease holder speaks for the site
        payload = json.dumps(self.summary(), separators=(",", ":")).encode()
        await self.bus.publish(self.topics.summary, payload, retain=True)
