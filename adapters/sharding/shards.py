"""How a sharded site is cut up and named: shards by address range, topics, watts on the wire.

Planner and workers compute the same partition from the same config, so a shard is just its
number. Plans and reports name operating points by their power in watts (0 is off), not by
index: the planner plans on a fleet restricted to what each firmware can do, whose point
indices differ from the worker's, and watts mean the same on both sides.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controller.domain import BoolArray, FleetSpec, IntArray
from controller.runtime.ports import Clock


def partition(addresses: Sequence[str], shards: int) -> list[IntArray]:
    """Fleet indices of each shard: contiguous address ranges of near-equal size.

    Addresses are ordered numerically and cut into ``shards`` runs; within a shard, miners
    keep fleet order (a worker's local index ``k`` is the fleet's ``rows[k]``).
    """
    if not 1 <= shards <= len(addresses):
        raise ValueError(f"{shards} shards for {len(addresses)} miners")
    numeric = np.array([int(ipaddress.IPv4Address(a)) for a in addresses], dtype=np.int64)
    order = np.argsort(numeric, kind="stable")
    return [np.sort(chunk).astype(np.int64) for chunk in np.array_split(order, shards)]


def shard_range(addresses: Sequence[str], rows: IntArray) -> str:
    """``FIRST-LAST`` of a shard's addresses, for logs and docs."""
    ips = sorted((ipaddress.IPv4Address(addresses[int(i)]) for i in rows), key=int)
    return f"{ips[0]}-{ips[-1]}"


@dataclass(frozen=True, slots=True)
class ShardTopics:
    """The topic layout of one sharded site under the broker's prefix."""

    prefix: str
    site_id: str

    @property
    def base(self) -> str:
        """``<prefix>/<site>/shard``."""
        return f"{self.prefix.rstrip('/')}/{self.site_id}/shard"

    def plan(self, shard: int) -> str:
        """Planner -> worker: what to read or command (QoS 1, not retained)."""
        return f"{self.base}/{shard}/plan"

    def report(self, shard: int) -> str:
        """Worker -> planner: outcomes and telemetry for one plan (QoS 1, not retained)."""
        return f"{self.base}/{shard}/report"

    def status(self, shard: int) -> str:
        """The worker's presence, retained; its last will says ``offline``."""
        return f"{self.base}/{shard}/status"

    @property
    def planner_lease(self) -> str:
        """The planner lease, retained (lease.py): holder, epoch, expiry."""
        return f"{self.prefix.rstrip('/')}/{self.site_id}/planner/lease"

    def lease(self, shard: int) -> str:
        """A shard's lease between its worker and standby workers, retained."""
        return f"{self.base}/{shard}/lease"

    @property
    def summary(self) -> str:
        """The planner's view of every shard, retained: which are managed and why not."""
        return f"{self.prefix.rstrip('/')}/{self.site_id}/shards"


def process_id(clock: Clock) -> str:
    """This process: host, pid and start time in ms (a restarted process is a new one)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:32] or "host"
    return f"{host}:{os.getpid()}:{int(clock.now() * 1000)}"


def process_tag(identity: str) -> str:
    """8 hex digits of a ``process_id``: tells processes of one role apart in client ids."""
    return hashlib.sha256(identity.encode()).hexdigest()[:8]


def watts_of(fleet: FleetSpec, rows: IntArray, points: IntArray) -> list[int]:
    """Each row's point as whole watts (0 for off)."""
    return [int(w) for w in np.rint(fleet.power_w[rows, points]).astype(np.int64).tolist()]


def points_of(fleet: FleetSpec, rows: IntArray, watts: Sequence[int]) -> IntArray:
    """Each row's valid point nearest in power to ``watts`` (0 W is off)."""
    power = np.where(fleet.valid[rows], fleet.power_w[rows], np.inf)
    target = np.asarray(watts, dtype=np.float64).reshape(-1, 1)
    nearest: IntArray = np.argmin(np.abs(power - target), axis=1).astype(np.int64)
    return nearest


def fingerprint(addresses: Sequence[str], fleet: FleetSpec, rows: IntArray) -> str:
    """A short hash of a shard's miners (addresses, curves, models), in local order.

    Planner and worker each read their own copy of the config: a worker whose shard differs
    from the planner's would map plan indices to the wrong miners, so the planner refuses it.
    """
    h = hashlib.sha256()
    h.update("\n".join(addresses[int(i)] for i in rows).encode())
    for array in (fleet.power_w[rows], fleet.hashrate_th[rows], fleet.valid[rows]):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update("\n".join(fleet.model_names[int(m)] for m in fleet.model_index[rows]).encode())
    return h.hexdigest()[:16]


def mask_bits(mask: BoolArray) -> list[int]:
    """Each row of an allowed-points mask as an integer, bit ``j`` for point ``j``."""
    weights = 1 << np.arange(mask.shape[1], dtype=np.int64)
    return [int(v) for v in (mask.astype(np.int64) @ weights).tolist()]


def bits_mask(bits: Sequence[int], width: int) -> BoolArray:
    """``mask_bits`` undone: (len(bits), width) booleans."""
    values = np.asarray(bits, dtype=np.int64).reshape(-1, 1)
    return ((values >> np.arange(width, dtype=np.int64)) & 1).astype(bool)
