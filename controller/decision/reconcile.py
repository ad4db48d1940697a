"""Plan against observation: which miners to command, and what came of it."""

from __future__ import annotations

from dataclasses import dataclass

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


def outcome_text(outcome: Outcome) -> str:
    """The outcome's name as logs, metrics and the audit write it."""
    match outcome:
        case Applied():
            return "applied"
        case Rejected():
            return "rejected"
        case Unreachable():
            return "unreachable"
        case Unverified():
            return "unverified"


@dataclass(frozen=True, slots=True)
class CommandBatch:
    """Miners to move and the operating point each should move to."""

    miner: IntArray
    point: IntArray

    def __len__(self) -> int:
        return int(self.miner.size)


@dataclass(frozen=True, slots=True)
class DispatchReport:
    """One outcome per commanded miner; ``applied`` holds the confirmed ones."""

    applied: IntArray
    failed: tuple[tuple[int, Outcome], ...] = ()
    confirmation_s: tuple[float, ...] = ()  # command-to-telemetry latency of applied miners


def reconcile(plan_point: IntArray, observed: ObservedFleet) -> CommandBatch:
    """Command only reachable miners whose observed point differs from the plan."""
    differ = np.flatnonzero((plan_point != observed.point) & observed.reachable)
    return CommandBatch(miner=differ.astype(np.int64), point=plan_point[differ].astype(np.int64))
