"""What each miner can be asked to do, read from its pyasic class, and the plan's mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from controller.domain import OFF, BoolArray, FleetSpec

Firmware = Literal["luxos", "stock", "braiins", "other"]

_FIRMWARE: dict[str, Firmware] = {"LuxOS": "luxos", "Stock": "stock", "BOS+": "braiins"}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """One miner's controls: stop/start, a settable power limit, named power modes."""

    firmware: Firmware
    model: str
    can_stop: bool  # pyasic ``supports_shutdown``
    can_throttle: bool  # the class implements ``set_power_limit``
    power_modes: bool  # pyasic ``supports_power_modes`` (reported; not used for throttling)


def capabilities_of(miner: Any, base_class: Any) -> Capabilities:
    """Read a pyasic miner's capabilities; ``base_class`` is pyasic's ``MinerProtocol``."""
    firmware_name = str(getattr(miner.firmware, "value", miner.firmware))
    firmware = _FIRMWARE.get(firmware_name, "other")
    overrides_limit = type(miner).set_power_limit is not base_class.set_power_limit
    return Capabilities(
        firmware=firmware,
        model=str(miner.model),
        can_stop=bool(miner.supports_shutdown),
        can_throttle=overrides_limit,
        power_modes=bool(miner.supports_power_modes),
    )


def allowed_row(valid: Sequence[bool], top: int, caps: Capabilities | None) -> list[bool]:
    """One miner's allowed points: off if it can stop, the top always, the rest if it throttles.

    Unknown capabilities (not discovered yet) allow only what every miner can do: run.
    """
    row = [False] * len(valid)
    row[top] = True
    if caps is None:
        return row
    row[OFF] = caps.can_stop
    if caps.can_throttle:
        for j in range(1, len(valid)):
            row[j] = row[j] or bool(valid[j])
    return row


def allowed_mask(fleet: FleetSpec, caps: Sequence[Capabilities | None]) -> BoolArray:
    """(N, K+1) mask of the points the plan may ask of each miner."""
    rows = [
        allowed_row(list(fleet.valid[i]), int(fleet.top_point[i]), caps[i])
        for i in range(fleet.size)
    ]
    return np.asarray(rows, dtype=bool).reshape(fleet.valid.shape)


def restrict_fleet(fleet: FleetSpec, mask: BoolArray) -> FleetSpec:
    """The fleet with each miner's disallowed running points removed (off is always kept).

    Allowed running points move left so column 1 stays valid, as ``FleetSpec`` requires;
    point indices therefore refer to the restricted fleet, which the site and the driver
    must then share.
    """
    n, k = fleet.valid.shape
    h = np.zeros((n, k))
    w = np.zeros((n, k))
    v = np.zeros((n, k), dtype=bool)
    v[:, OFF] = True
    for i in range(n):
        keep = [j for j in range(1, k) if fleet.valid[i, j] and mask[i, j]]
        for col, j in enumerate(keep, start=1):
            h[i, col], w[i, col], v[i, col] = fleet.hashrate_th[i, j], fleet.power_w[i, j], True
    return FleetSpec(
        hashrate_th=h,
        power_w=w,
        valid=v,
        model_index=fleet.model_index.copy(),
        model_names=fleet.model_names,
        groups=fleet.group_of.copy(),
        group_names=fleet.group_names,
    )
