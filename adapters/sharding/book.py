"""The planner's book of shards: which are managed by a working worker, and why not.

Status messages (``starting``, ``online``, the last will's ``offline``, ``stopped``) and
missing reports move a shard between states; each change is logged once and reported
through ``on_change`` (the planner republishes its retained summary). Pure bookkeeping:
no I/O of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import structlog

from adapters.sharding.messages import ShardReport, ShardStatus
from adapters.sharding.shards import fingerprint, partition, shard_range
from controller.domain import FleetSpec, IntArray
from controller.runtime.ports import Clock

_log = structlog.get_logger("hashspark.shards")

ShardState = Literal[
    "unknown", "starting", "online", "unresponsive", "offline", "stopped", "mismatch"
]


class ShardLostError(Exception):
    """The shard's worker went away while a plan was out."""


@dataclass(slots=True)
class Shard:
    """The planner's view of one shard."""

    number: int
    rows: IntArray  # fleet indices, in the worker's local order
    addresses: str  # FIRST-LAST
    fingerprint: str  # of its miners as this planner's config has them
    state: ShardState = "unknown"
    reason: str = "no word from its worker yet"
    since: float = 0.0
    worker: str | None = None
    allowed: tuple[int, ...] = ()
    waiting: dict[int, asyncio.Future[ShardReport]] = field(default_factory=dict)
    online: asyncio.Event = field(default_factory=asyncio.Event)
    unmanaged_events: int = 0

    @property
    def miners(self) -> int:
        """How many miners it holds."""
        return int(self.rows.size)

    @property
    def managed(self) -> bool:
        """Its worker is online and answering."""
        return self.state == "online"

    @property
    def askable(self) -> bool:
        """Worth sending a plan: online, or online but slow to answer the last one."""
        return self.state in ("online", "unresponsive")

    def fail_waiting(self) -> None:
        """Give up on every plan out to this shard (its worker went away)."""
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(ShardLostError())
                future.exception()  # retrieved: a plan given up on needs no traceback


class ShardBook:
    """Every shard of a site and the transitions between managed and unmanaged."""

    def __init__(
        self,
        site_id: str,
        fleet: FleetSpec,
        addresses: Sequence[str],
        shards: int,
        *,
        clock: Clock,
        on_change: Callable[[], None],
    ) -> None:
        self.site_id = site_id
        self._clock = clock
        self._on_change = on_change
        self.shards = [
            Shard(n, rows, shard_range(addresses, rows), fingerprint(addresses, fleet, rows))
            for n, rows in enumerate(partition(addresses, shards))
        ]

    def on_status(self, s: Shard, status: ShardStatus) -> None:
        """A worker's retained status (or its last will) arrived."""
        if status.site != self.site_id or status.shard != s.number:
            _log.warning("shard_message_refused", shard=s.number, reason="wrong site or shard")
            return
        match status.state:
            case "online" if status.fleet != s.fingerprint:
                s.fail_waiting()
                self.unmanaged(
                    s,
                    "mismatch",
                    f"worker {status.worker} has another fleet for this shard (fingerprint"
                    f" {status.fleet}, ours {s.fingerprint}): check both configs",
                )
            case "online":
                if s.worker is not None and status.worker != s.worker:
                    s.fail_waiting()  # a new worker: what the old one owed will not come
                s.worker, s.allowed = status.worker, status.allowed
                self.managed(s, f"worker {status.worker} online")
            case "starting":
                s.worker = status.worker
                self.unmanaged(s, "starting", "its worker is discovering its miners")
            case "offline" if status.worker is not None and status.worker != s.worker:
                pass  # the will of a worker that no longer drives the shard (a standby took it)
            case "offline":
                self.unmanaged(s, "offline", f"worker offline (last will: {status.reason})")
            case "stopped":
                self.unmanaged(s, "stopped", "its worker stopped")

    def managed(self, s: Shard, why: str) -> None:
        """The shard's worker is online and answering."""
        s.online.set()
        if s.state != "online":
            _log.info("shard_managed", site=self.site_id, shard=s.number, reason=why)
        s.state, s.reason, s.since = "online", why, self._clock.now()
        self._on_change()

    def unmanaged(self, s: Shard, state: ShardState, why: str) -> None:
        """The shard has no working worker: logged once, plans out to it given up."""
        if state in ("offline", "stopped", "starting"):
            s.fail_waiting()
        if s.state == state:
            return
        was_managed = s.managed
        s.online.clear()
        s.state, s.reason, s.since = state, why, self._clock.now()
        if was_managed:
            s.unmanaged_events += 1
        if was_managed or state == "mismatch":
            _log.error(
                "shard_unmanaged",
                site=self.site_id,
                shard=s.number,
                state=state,
                reason=why,
                miners=s.miners,
                addresses=s.addresses,
                failsafe="miners unreachable, none commanded or confirmed",
            )
        self._on_change()

    def summary(self) -> dict[str, object]:
        """Every shard's state, for the retained summary topic and ``/healthz``."""
        return {
            "site": self.site_id,
            "at": self._clock.now(),
            "managed": [s.number for s in self.shards if s.managed],
            "shards": {
                str(s.number): {
                    "state": s.state,
                    "managed": s.managed,
                    "reason": s.reason,
                    "since": s.since,
                    "worker": s.worker,
                    "miners": s.miners,
                    "addresses": s.addresses,
                }
                for s in self.shards
            },
        }
