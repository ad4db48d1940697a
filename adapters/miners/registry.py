"""The miner-driver family's registry: each driver module registers its config model and builder.

A builder makes a ``MinerDriver`` for a site's fleet from the driver's config, the site's
clock and, for drivers that talk to real miners, the inventory (every miner's address and
expected firmware, in fleet order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from controller.domain import FleetSpec
from controller.runtime.ports import Clock, MinerDriver
from controller.runtime.registry import Registry


@dataclass(frozen=True, slots=True)
class Inventory:
    """Where a site's miners are: one address and expected firmware per miner, fleet order."""

    addresses: Sequence[str]
    firmware: Sequence[str | None]


#: Builds one driver: ``(config, fleet, clock, inventory) -> MinerDriver``.
DriverBuilder = Callable[[Any, FleetSpec, Clock, Inventory], MinerDriver]

#: Every driver type, by its config ``type``; a driver module registers itself on import.
DRIVERS: Registry[DriverBuilder] = Registry("driver")
