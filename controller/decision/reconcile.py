"""Plan against observation: which miners to command, and what came of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from controller.domain import IntArray, ObservedFleet


@dataclass(frozen=True, slots=True)
class Applied:
    """The miner's telemetry shows the commanded state."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The miner refused the command (permanent: unsupported, bad credentials)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Unreachable:
    """The miner did not answer within the deadline."""

    reason: str


@dataclass(frozen=True, slots=True)
class Unverified:
    """The miner accepted the command but its telemetry never confirmed it."""

    reason: str


Outcome = Applied | Rejected | Unreachable | Unverified
Failed = Rejected | Unreachable | Unverified  # every outcome but Applied: each has a reason

#: An outcome as text: metric labels, the command audit, logs and shard reports spell it so.
OutcomeName = Literal["applied", "rejected", "unreachable", "unverified"]
FailedName = Literal["rejected", "unreachable", "unverified"]

_FAILED: dict[FailedName, type[Failed]] = {
    "rejected": Rejected,
    "unreachable": Unreachable,
    "unverified": Unverified,
}
_FAILED_NAME: dict[type[Failed], FailedName] = {kind: name for name, kind in _FAILED.items()}


def outcome_name(outcome: Outcome) -> OutcomeName:
    """The outcome's text: ``applied``, ``rejected``, ``unreachable`` or ``unverified``."""
    return "applied" if isinstance(outcome, Applied) else failed_name(outcome)


def failed_name(outcome: Failed) -> FailedName:
    """A failed outcome's text (narrower than ``outcome_name``, for shard reports)."""
    return _FAILED_NAME[type(outcome)]


def failed_from(name: FailedName, reason: str) -> Failed:
    """The failed outcome a text names (the inverse of ``failed_name``)."""
    return _FAILED[name](reason)


def outcome_reason(outcome: Outcome) -> str | None:
    """Why a command failed; None for an applied one."""
    return None if isinstance(outcome, Applied) else outcome.reason


@dataclass(frozen=True, slots=True)
class CommandBatch:
    """Miners to move and the operating point each should move to."""

    miner: IntArray
    point: IntArray

    def __len__(self) -> int:
        return int(self.miner.size)


@dataclass(frozen=True, slots=True)
class Dispatched:
    """One commanded miner: the point it was sent to and what came of it."""

    miner: int
    point: int
    outcome: Outcome
    confirmation_s: float | None = None  # command-to-telemetry latency, if applied and timed


@dataclass(frozen=True, slots=True)
class DispatchReport:
    """What came of a batch: one entry per commanded miner, in batch order."""

    dispatched: tuple[Dispatched, ...]

    @classmethod
    def of(
        cls, batch: CommandBatch, results: Mapping[int, tuple[Outcome, float | None]]
    ) -> DispatchReport:
        """The report of ``batch`` from each miner's outcome and, if applied, its latency."""
        dispatched = []
        for i, p in zip(batch.miner.tolist(), batch.point.tolist(), strict=True):
            outcome, seconds = results[i]
            timed = seconds if isinstance(outcome, Applied) else None
            dispatched.append(Dispatched(i, p, outcome, timed))
        return cls(tuple(dispatched))

    @property
    def applied(self) -> IntArray:
        """The miners whose telemetry confirmed the command, in batch order."""
        miners = [d.miner for d in self.dispatched if isinstance(d.outcome, Applied)]
        return np.array(miners, dtype=np.int64)

    @property
    def confirmation_s(self) -> tuple[float, ...]:
        """Command-to-telemetry latency of the applied miners that were timed."""
        return tuple(
            d.confirmation_s
            for d in self.dispatched
            if isinstance(d.outcome, Applied) and d.confirmation_s is not None
        )

    @property
    def failed(self) -> tuple[tuple[int, Failed], ...]:
        """The miners whose command did not apply, each with its outcome, in batch order."""
        return tuple(
            (d.miner, d.outcome) for d in self.dispatched if not isinstance(d.outcome, Applied)
        )

    def counts(self) -> dict[OutcomeName, int]:
        """Miners per outcome, only outcomes that occurred: ``applied`` first, then failures
        in the order they first occur."""
        counts = Counter(outcome_name(d.outcome) for d in self.dispatched)
        return dict(sorted(counts.items(), key=lambda kv: kv[0] != "applied"))


def reconcile(plan_point: IntArray, observed: ObservedFleet) -> CommandBatch:
    """Command only reachable miners whose observed point differs from the plan."""
    differ = np.flatnonzero((plan_point != observed.point) & observed.reachable)
    return CommandBatch(miner=differ.astype(np.int64), point=plan_point[differ].astype(np.int64))
