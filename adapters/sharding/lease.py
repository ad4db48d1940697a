"""An epoch lease on the site's broker: which planner (or which worker of a shard) may command.

The lease is one retained message (``LeaseRecord``) on a topic every candidate subscribes
to: the holder, its epoch, and when it expires. The holder renews it every ``lease_s / 3``.
A candidate claims it when it is free (released, expired by the wall clock, or absent for
``settle_s`` after connecting) with an epoch above every epoch it has seen (and at least
the time in ms, so epochs keep growing across broker restarts), then waits ``settle_s``
(claim-then-confirm): a better claim seen meanwhile (higher epoch; equal epoch and a
smaller holder id) wins and this one stands by; otherwise it holds and republishes, so the
retained record is its own. A holder that sees a better record stands down at once; one
that cannot renew stops holding ``settle_s`` before its lease expires, before anyone may
take over (clocks in sync: NTP, as for ``plan_max_age_s``).

``Lease`` is the state machine (time passed in, no I/O); ``keep`` runs it on a ``ShardBus``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

import structlog
from pydantic import Field

from adapters.sharding.messages import JsonMessage, SiteId, WorkerId, epoch_too_far
from controller.domain import EpochS

_log = structlog.get_logger("hashspark.lease")

LeaseState = Literal["standby", "claiming", "holding"]
Scope = Annotated[str, Field(pattern=r"^(planner|shard-[0-9]{1,3})$")]


def settle_s(lease_s: float) -> float:
    """How long a claim waits for a better one: a tenth of the lease, 0.2 to 2 s."""
    return max(0.2, min(2.0, lease_s / 10))


class LeaseRecord(JsonMessage):
    """The retained lease: who holds it, under which epoch, until when."""

    v: Literal[1] = 1
    site: SiteId
    scope: Scope
    holder: WorkerId
    epoch: int = Field(ge=0, lt=2**62)
    state: Literal["held", "released"]
    at: EpochS = Field(ge=0)
    expires_at: EpochS = Field(ge=0)

    def beats(self, epoch: int, holder: str) -> bool:
        """Whether this record wins over a claim of ``epoch`` by ``holder``."""
        return self.epoch > epoch or (self.epoch == epoch and self.holder < holder)


class Lease:
    """One candidate's view of a lease; ``due`` says what to publish, ``on_record`` what came."""

    def __init__(
        self,
        site_id: str,
        scope: str,
        holder: str,
        lease_s: float,
        *,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.site_id = site_id
        self.scope = scope
        self.holder = holder
        self.lease_s = lease_s
        self.settle_s = settle_s(lease_s)
        self.state: LeaseState = "standby"
        self.epoch = 0  # ours, while claiming or holding
        self.high_epoch = 0  # the highest seen from anyone
        self.current: LeaseRecord | None = None  # the last record seen from anyone
        self._expiry: EpochS = 0.0  # its expiry, at most lease_s after we received it
        self.takeovers = 0
        self.settled = asyncio.Event()  # someone (us or another) holds a live lease
        self._on_change = on_change
        self._connected_at: EpochS | None = None
        self._claimed_at: EpochS = 0.0
        self._valid_until: EpochS = 0.0  # expiry of our last renewal the broker took
        self._renewed_at: EpochS = 0.0
        self._republish = False
        self._announced = False  # on_change(True) said for this holding

    # --- what we hold ----------------------------------------------------------------------

    def holding(self, now: EpochS) -> bool:
        """Whether we may command now: we hold it and it is not close to expiring."""
        return self.state == "holding" and now < self._valid_until - self.settle_s

    def superseded(self) -> bool:
        """Whether another holder has claimed it with a newer epoch than our last."""
        c = self.current
        return (
            c is not None and c.holder != self.holder and c.state == "held" and c.epoch > self.epoch
        )

    def describe(self, now: EpochS) -> dict[str, object]:
        """For the summary and ``/healthz``: who holds it under which epoch."""
        c = self.current
        return {
            "us": self.holder,
            "state": "holding" if self.holding(now) else self.state,
            "epoch": self.epoch if self.state != "standby" else None,
            "holder": None if c is None or c.state != "held" else c.holder,
            "holder_epoch": None if c is None else c.epoch,
            "expires_at": None if c is None else c.expires_at,
            "takeovers": self.takeovers,
        }

    # --- events ----------------------------------------------------------------------------

    def connected(self, now: EpochS) -> None:
        """A (re)connection: the retained record, if any, is on its way."""
        self._connected_at = now
        self.current = None
        self._republish = self.state == "holding"  # a broker that lost it learns it again

    def disconnected(self) -> None:
        """The connection dropped: nothing can be claimed or renewed until it is back."""
        self._connected_at = None

    def on_record(self, record: LeaseRecord, now: EpochS) -> None:
        """A record arrived on the lease topic (ours echoed back, or another's)."""
        if record.site != self.site_id or record.scope != self.scope:
            return
        if epoch_too_far(record.epoch, now):
            _log.warning("lease_refused", site=self.site_id, scope=self.scope,
                         holder=record.holder, reason="epoch more than a day ahead")  # fmt: skip
            return
        self.high_epoch = max(self.high_epoch, record.epoch)
        self.current = record
        # A record that claims to last longer than our lease_s (a bad clock, a bogus
        # message) lasts lease_s from now: nobody can hold the site off for longer.
        self._expiry = min(record.expires_at, now + self.lease_s)
        if record.holder == self.holder:
            return
        if record.state == "held" and now < self._expiry:
            self.settled.set()
        if self.state == "standby":
            return
        if record.state == "held" and record.beats(self.epoch, self.holder):
            self._stand_down(f"{record.holder} holds epoch {record.epoch}")
        elif self.state == "holding":
            self._republish = True  # a stale claim or a release overwrote ours: put it back

    def due(self, now: EpochS) -> LeaseRecord | None:
        """The record to publish now (a claim, a confirmation, a renewal), if any."""
        if self.state == "holding" and now >= self._valid_until - self.settle_s:
            self._stand_down("could not renew in time")
        if self._connected_at is None:
            return None  # nothing can be claimed or renewed without the broker
        match self.state:
            case "standby":
                return self._claim(now) if self._free(now) else None
            case "claiming":
                return self._confirm(now) if now - self._claimed_at >= self.settle_s else None
            case "holding":
                if self._republish or now - self._renewed_at >= self.lease_s / 3:
                    self._republish = False
                    return self._record("held", now)
        return None

    def _claim(self, now: EpochS) -> LeaseRecord:
        self.state = "claiming"
        self.epoch = max(self.high_epoch + 1, int(now * 1000))
        self._claimed_at = now
        self._valid_until = 0.0
        self.settled.clear()
        return self._record("held", now)

    def _confirm(self, now: EpochS) -> LeaseRecord | None:
        if self._valid_until <= now:  # the broker never took our claim: try again later
            self.state = "standby"
            return None
        self.state = "holding"
        self.takeovers += 1
        _log.info(
            "lease_acquired", site=self.site_id, scope=self.scope, holder=self.holder,
            epoch=self.epoch, lease_s=self.lease_s,
        )  # fmt: skip
        return self._record("held", now)  # the retained record is now surely ours

    def published(self, record: LeaseRecord, ok: bool) -> None:
        """The broker took ``record`` (``ok``) or the publish failed."""
        if not ok or record.state != "held" or record.epoch != self.epoch:
            return
        if self.state == "holding":
            self._valid_until = max(self._valid_until, record.expires_at)
            self._renewed_at = record.at
            self.settled.set()
            if not self._announced:
                self._announced = True
                self._changed(True)
        elif self.state == "claiming":
            self._valid_until = record.expires_at

    def release(self, now: EpochS) -> LeaseRecord | None:
        """On a clean stop: the record that frees the lease at once (None if not ours)."""
        if self.state != "holding":
            return None
        self._stand_down("stopping")
        return self._record("released", now)

    # --- internals -------------------------------------------------------------------------

    def _free(self, now: EpochS) -> bool:
        c = self.current
        if c is None:
            assert self._connected_at is not None
            return now - self._connected_at >= self.settle_s  # nothing retained: nobody holds it
        return c.state == "released" or now >= self._expiry

    def _record(self, state: Literal["held", "released"], now: EpochS) -> LeaseRecord:
        return LeaseRecord(
            site=self.site_id,
            scope=self.scope,
            holder=self.holder,
            epoch=self.epoch,
            state=state,
            at=now,
            expires_at=now + self.lease_s,
        )

    def _stand_down(self, why: str) -> None:
        was = self.state
        self.state = "standby"
        self._valid_until = 0.0
        self._announced = False
        if was == "holding":
            _log.warning(
                "lease_lost", site=self.site_id, scope=self.scope, holder=self.holder,
                epoch=self.epoch, reason=why,
            )  # fmt: skip
            self._changed(False)

    def _changed(self, holding: bool) -> None:
        if self._on_change is not None:
            self._on_change(holding)


async def keep(
    lease: Lease,
    publish: Callable[[bytes], Awaitable[bool]],
    now: Callable[[], EpochS],
    stop: asyncio.Event,
    connected: Callable[[], bool],
) -> None:
    """Run ``lease`` until ``stop``: claim, confirm and renew through ``publish``.

    The owner calls ``lease.connected`` from its bus's ``on_connect`` (before the retained
    record is handed over) and feeds every record to ``lease.on_record``.
    """
    tick = max(0.05, min(0.5, lease.settle_s / 4))
    while not stop.is_set():
        if not connected():
            lease.disconnected()
        record = lease.due(now())
        if record is not None:
            lease.published(record, await publish(record.to_bytes()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(tick):
                await stop.wait()
