"""Ports: the small interfaces the site loop talks to. Adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from controller.decision.policy import Plan
from controller.decision.reconcile import CommandBatch, DispatchReport
from controller.domain import EpochS, FleetSpec, ObservedFleet, Reading
from controller.records import IntervalRecord
from controller.status import SiteStatus


class Clock(Protocol):
    """Wall time for the daemon, simulated time for replays and tests."""

    def now(self) -> EpochS:
        """Current UTC time in epoch seconds."""
        ...

    async def sleep_until(self, t: EpochS) -> None:
        """Return once ``now() >= t``."""
        ...


class ReadingFeed(Protocol):
    """A price or hashprice source: the latest valid reading at a given time."""

    @property
    def name(self) -> str:
        """Human-readable name for logs (e.g. the file or topic)."""
        ...

    def latest(self, now: EpochS) -> Reading | None:
        """The newest reading observed at or before ``now``, or None if there is none yet."""
        ...

    def next_change_after(self, now: EpochS) -> EpochS | None:
        """When the next reading becomes available, if the feed knows (recordings do)."""
        ...


class MinerDriver(Protocol):
    """Reads and commands a site's fleet; every result comes from the miners' own telemetry."""

    async def observe(self) -> ObservedFleet:
        """Read every miner's current operating point and reachability."""
        ...

    async def apply(self, batch: CommandBatch) -> DispatchReport:
        """Command the miners in ``batch``; report one outcome per miner."""
        ...


class LoopObserver(Protocol):
    """Receives what each cycle did, for metrics (histograms and counters)."""

    def cycle_finished(
        self, site_id: str, duration_s: float, decision_reason: str, report: DispatchReport | None
    ) -> None:
        """One cycle ended; ``report`` is None when no miner needed a command."""
        ...

    def ledger_write_failed(self, site_id: str) -> None:
        """A settled interval could not be written (it is kept and retried)."""
        ...

    def status(self, status: SiteStatus) -> None:
        """The site's latest status."""
        ...


class CommandAudit(Protocol):
    """Keeps a durable record of every miner command and what came of it."""

    def record(
        self,
        site_id: str,
        fleet: FleetSpec,
        plan: Plan,
        batch: CommandBatch,
        report: DispatchReport | None,
        *,
        dry_run: bool,
    ) -> None:
        """Record one cycle's commands (``report`` is None in a dry run)."""
        ...


class Ledger(Protocol):
    """Where settled intervals go, durably in the daemon."""

    def append(self, record: IntervalRecord) -> None:
        """Store one settled interval."""
        ...


class ShardView(Protocol):
    """What the metrics read of one shard of a sharded site."""

    @property
    def number(self) -> int:
        """The shard's number."""
        ...

    @property
    def managed(self) -> bool:
        """Its worker is online and answering."""
        ...

    @property
    def miners(self) -> int:
        """How many miners it holds."""
        ...

    @property
    def unmanaged_events(self) -> int:
        """Times it went from managed to unmanaged."""
        ...


# --- capabilities: what some drivers offer beyond MinerDriver; the shell asks for these ---


@runtime_checkable
class Discovers(Protocol):
    """A driver that finds its miners and learns which operating points each can reach."""

    async def discover(self) -> int:
        """Find the miners not found yet; how many are known now."""
        ...

    def restrict_to_capabilities(self) -> FleetSpec:
        """The fleet with the points each miner cannot reach removed, adopted."""
        ...

    def adopt_fleet(self, fleet: FleetSpec) -> None:
        """Use new curves for the same miners."""
        ...


@runtime_checkable
class Addressed(Protocol):
    """A driver whose miners have network addresses (named in the command audit)."""

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every miner's address, in fleet order."""
        ...


@runtime_checkable
class ReportsShards(Protocol):
    """A driver that drives its miners through fleet workers, and reports on them."""

    @property
    def shards(self) -> Sequence[ShardView]:
        """The shards, in number order."""
        ...

    def summary(self) -> dict[str, object]:
        """Every shard's state (for ``/healthz``)."""
        ...

    def leading(self) -> bool:
        """Whether this planner holds the site's lease (a standby speaks for no one)."""
        ...


@runtime_checkable
class PacesResumes(Protocol):
    """A driver that says how many miners to resume at once (the rest wait their turn)."""

    @property
    def resume_batch_size(self) -> int:
        """Miners resumed per chunk."""
        ...


@runtime_checkable
class RemembersFleet(Protocol):
    """A driver that can say what its miners last reported, without reading them again."""

    def current(self) -> ObservedFleet:
        """The last reads and confirmations of every miner."""
        ...
