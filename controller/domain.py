"""Domain values shared by the core and the shell: readings, fleet specs, observations."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Time in the core is UTC epoch seconds (float). Only the shell turns it into datetimes.
EpochS = float

OFF = 0  #: operating-point index 0 is "off" (0 W, 0 TH/s) for every miner.


def to_datetime(t: EpochS) -> datetime:
    """Epoch seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(t, tz=UTC)


def to_epoch(dt: datetime) -> EpochS:
    """Aware datetime to epoch seconds; naive datetimes are refused (they hide the zone)."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt.isoformat()}: give a UTC offset or Z")
    return dt.timestamp()


def iso(t: EpochS) -> str:
    """Epoch seconds as ISO-8601 UTC with a Z suffix."""
    return to_datetime(t).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Reading:
    """One observed value with when it was observed and where it came from."""

    value: float
    observed_at: EpochS
    source: str

    def age_s(self, now: EpochS) -> float:
        """Seconds since observation (negative if it claims to come from the future)."""
        return now - self.observed_at

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError(f"reading from {self.source} is not finite: {self.value!r}")


class FailSafeAction(StrEnum):
    """What a site does when an input is older than its maximum age."""

    HOLD = "hold"
    CURTAIL = "curtail"
    RUN = "run"


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """The fleet as arrays: one row per miner, column 0 is off, columns 1.. are curve points.

    Points are sorted by increasing power; unused columns (miners with shorter curves)
    are marked invalid in ``valid`` and carry zeros.
    """

    hashrate_th: FloatArray  # (N, K+1)
    power_w: FloatArray  # (N, K+1)
    valid: BoolArray  # (N, K+1)
    model_index: IntArray  # (N,)
    model_names: tuple[str, ...]
    top_point: IntArray = field(init=False)  # (N,) index of the highest-power point
    class_of: IntArray = field(init=False)  # (N,) class of identical curves of each miner
    class_rows: IntArray = field(init=False)  # (C,) one miner of each class

    def __post_init__(self) -> None:
        n, k = self.hashrate_th.shape
        if self.power_w.shape != (n, k) or self.valid.shape != (n, k):
            raise ValueError("fleet arrays must share one shape")
        if k < 2 or not bool(self.valid[:, :2].all()):
            raise ValueError("every miner needs off and at least one operating point")
        top = (k - 1) - np.argmax(self.valid[:, ::-1], axis=1)
        object.__setattr__(self, "top_point", top.astype(np.int64))
        # Classes of identical curves, found once: the optimiser searches over classes.
        spec = np.column_stack([self.hashrate_th, self.power_w, self.valid])
        _, first, inverse = np.unique(spec, axis=0, return_index=True, return_inverse=True)
        object.__setattr__(self, "class_of", inverse.reshape(-1).astype(np.int64))
        object.__setattr__(self, "class_rows", first.astype(np.int64))

    @property
    def size(self) -> int:
        """Number of miners."""
        return int(self.hashrate_th.shape[0])

    @property
    def nominal_power_w(self) -> FloatArray:
        """Each miner's power at its top point (its nameplate)."""
        return self.power_w[np.arange(self.size), self.top_point]

    @property
    def nominal_hashrate_th(self) -> FloatArray:
        """Each miner's hashrate at its top point."""
        return self.hashrate_th[np.arange(self.size), self.top_point]

    @property
    def nominal_mw(self) -> float:
        """The fleet's full power in MW."""
        return float(self.nominal_power_w.sum()) / 1e6

    def power_at(self, point: IntArray) -> FloatArray:
        """Power (W) of every miner at the given point indices."""
        return self.power_w[np.arange(self.size), point]

    def hashrate_at(self, point: IntArray) -> FloatArray:
        """Hashrate (TH/s) of every miner at the given point indices."""
        return self.hashrate_th[np.arange(self.size), point]


def build_fleet(groups: list[tuple[str, int, list[tuple[float, float]]]]) -> FleetSpec:
    """Fleet arrays from (model, count, [(hashrate_th, power_w), ...]) groups."""
    names: list[str] = []
    for model, _, _ in groups:
        if model not in names:
            names.append(model)
    width = 1 + max((len(points) for _, _, points in groups), default=1)
    rows_h: list[FloatArray] = []
    rows_w: list[FloatArray] = []
    rows_v: list[BoolArray] = []
    rows_m: list[IntArray] = []
    for model, count, points in groups:
        ordered = sorted(points, key=lambda p: p[1])
        h = np.zeros(width)
        w = np.zeros(width)
        v = np.zeros(width, dtype=bool)
        v[0] = True
        for j, (th, watts) in enumerate(ordered, start=1):
            h[j], w[j], v[j] = th, watts, True
        rows_h.append(np.tile(h, (count, 1)))
        rows_w.append(np.tile(w, (count, 1)))
        rows_v.append(np.tile(v, (count, 1)))
        rows_m.append(np.full(count, names.index(model), dtype=np.int64))
    if not rows_h:
        raise ValueError("a fleet needs at least one miner")
    return FleetSpec(
        hashrate_th=np.concatenate(rows_h),
        power_w=np.concatenate(rows_w),
        valid=np.concatenate(rows_v),
        model_index=np.concatenate(rows_m),
        model_names=tuple(names),
    )


@dataclass(frozen=True, slots=True)
class ObservedFleet:
    """What the miners themselves report: the operating point each is at, and reachability."""

    point: IntArray  # (N,)
    reachable: BoolArray  # (N,)
    observed_at: EpochS


@dataclass(frozen=True, slots=True)
class Recording:
    """A recorded series: strictly increasing timestamps and finite values."""

    source: str
    path: Path
    column: str
    times: FloatArray  # epoch s
    values: FloatArray

    def __len__(self) -> int:
        return int(self.times.size)
