"""An in-process fleet model that obeys every command at once (stands in for real miners)."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

from adapters.miners.registry import DRIVERS, Inventory
from controller.decision.reconcile import (
    Applied,
    CommandBatch,
    DispatchReport,
    Outcome,
    Rejected,
)
from controller.domain import OFF, FleetSpec, ObservedFleet
from controller.runtime.config_base import Strict
from controller.runtime.ports import Clock


class SimulatedDriverConfig(Strict):
    """The in-process fleet model: obeys every command at once (replays and tests)."""

    needs_addresses: ClassVar[bool] = False  # the driver talks to miners at addresses

    type: Literal["simulated"]
    initial_state: Literal["running", "curtailed"] = "running"


class InProcessFleet:
    """A ``MinerDriver`` over an array of operating points; every miner is always reachable."""

    def __init__(self, fleet: FleetSpec, clock: Clock, *, running: bool = True) -> None:
        self._fleet = fleet
        self._clock = clock
        self._point = (
            fleet.top_point.copy() if running else np.full(fleet.size, OFF, dtype=np.int64)
        )
        self._reachable = np.ones(fleet.size, dtype=bool)
        self.commands_applied = 0

    async def observe(self) -> ObservedFleet:
        """Every miner's operating point, as of now."""
        return ObservedFleet(
            point=self._point.copy(),
            reachable=self._reachable.copy(),
            observed_at=self._clock.now(),
        )

    async def apply(self, batch: CommandBatch) -> DispatchReport:
        """Move the miners; refuse points a miner does not have."""
        ok = self._fleet.valid[batch.miner, batch.point]
        self._point[batch.miner[ok]] = batch.point[ok]
        self.commands_applied += int(ok.sum())

        results: dict[int, tuple[Outcome, float | None]] = {}
        for m, p, fine in zip(batch.miner.tolist(), batch.point.tolist(), ok.tolist(), strict=True):
            outcome: Outcome = Applied() if fine else Rejected(f"miner has no operating point {p}")
            results[m] = (outcome, None)
        return DispatchReport.of(batch, results)


def _build(
    config: SimulatedDriverConfig, fleet: FleetSpec, clock: Clock, _: Inventory
) -> InProcessFleet:
    return InProcessFleet(fleet, clock, running=config.initial_state == "running")


DRIVERS.register("simulated", SimulatedDriverConfig, _build)
