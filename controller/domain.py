"""Domain values shared by the core and the shell: readings, fleet specs, observations."""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    """Epoch seconds as ISO-8601 UTC with a Z suffix; never raises (it names bad input in
    logs): a time no datetime can hold (NaN, year 0 or 10000) comes back as its number."""
    try:
        return to_datetime(t).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"{t!r} s (not a representable time)"


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
    #: Each miner's config group (``sites.miners[k]``) and the groups' names; None: one
    #: group per model. Groups only label the fleet: no decision reads them.
    groups: IntArray | None = None  # (N,)
    group_names: tuple[str, ...] = ()
    group_of: IntArray = field(init=False)  # (N,) each miner's group, always set
    top_point: IntArray = field(init=False)  # (N,) index of the highest-power point
    class_of: IntArray = field(init=False)  # (N,) class of identical curves of each miner
    class_rows: IntArray = field(init=False)  # (C,) one miner of each class
    #: Miners by efficiency at their top point, best first (ties: class, model, index):
    #: the order in which a supply stack's tranches are taken (``controller.decision.stack``).
    merit_order: IntArray = field(init=False)  # (N,)

    def __post_init__(self) -> None:
        n, k = self.hashrate_th.shape
        if self.power_w.shape != (n, k) or self.valid.shape != (n, k):
            raise ValueError("fleet arrays must share one shape")
        if k < 2 or not bool(self.valid[:, :2].all()):
            raise ValueError("every miner needs off and at least one operating point")
        if self.groups is None:
            object.__setattr__(self, "group_of", self.model_index.astype(np.int64))
            object.__setattr__(self, "group_names", self.model_names)
        else:
            group_of = np.asarray(self.groups, dtype=np.int64)
            if group_of.shape != (n,) or (n and int(group_of.max()) >= len(self.group_names)):
                raise ValueError("groups must name one of group_names for every miner")
            object.__setattr__(self, "group_of", group_of)
        top = (k - 1) - np.argmax(self.valid[:, ::-1], axis=1)
        object.__setattr__(self, "top_point", top.astype(np.int64))
        # Classes of identical curves, found once: the optimiser searches over classes.
        spec = np.column_stack([self.hashrate_th, self.power_w, self.valid])
        _, first, inverse = np.unique(spec, axis=0, return_index=True, return_inverse=True)
        object.__setattr__(self, "class_of", inverse.reshape(-1).astype(np.int64))
        object.__setattr__(self, "class_rows", first.astype(np.int64))
        rows = np.arange(n)
        eff = self.power_w[rows, top] / np.maximum(self.hashrate_th[rows, top], 1e-12)
        order = np.lexsort((rows, self.model_index, self.class_of, eff))
        object.__setattr__(self, "merit_order", order.astype(np.int64))

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

    def group_model(self, group: int) -> str:
        """The model of a group's miners (its first miner's)."""
        return self.model_names[int(self.model_index[np.argmax(self.group_of == group)])]

    def power_at(self, point: IntArray) -> FloatArray:
        """Power (W) of every miner at the given point indices."""
        return self.power_w[np.arange(self.size), point]

    def hashrate_at(self, point: IntArray) -> FloatArray:
        """Hashrate (TH/s) of every miner at the given point indices."""
        return self.hashrate_th[np.arange(self.size), point]


def group_names(
    models: Sequence[str], firmware: Sequence[str | None] | None = None
) -> tuple[str, ...]:
    """Names for config groups: the model, with the firmware (or ``#k``, the group's index
    in ``sites.miners``) when another group has the same model."""
    fw = list(firmware) if firmware is not None else [None] * len(models)
    names: list[str] = []
    for k, model in enumerate(models):
        same = [j for j, m in enumerate(models) if m == model]
        if len(same) == 1:
            names.append(model)
        elif fw[k] is not None and [fw[j] for j in same].count(fw[k]) == 1:
            names.append(f"{model} ({fw[k]})")
        else:
            names.append(f"{model} #{k}")
    return tuple(names)


def build_fleet(
    groups: list[tuple[str, int, list[tuple[float, float]]]],
    names: Sequence[str] | None = None,
) -> FleetSpec:
    """Fleet arrays from (model, count, [(hashrate_th, power_w), ...]) groups; each entry is
    one group (named by ``names``, else by ``group_names`` of the models)."""
    models: list[str] = []
    for model, _, _ in groups:
        if model not in models:
            models.append(model)
    labels = tuple(names) if names is not None else group_names([m for m, _, _ in groups])
    if len(labels) != len(groups):
        raise ValueError("one name per group")
    width = 1 + max((len(points) for _, _, points in groups), default=1)
    rows_h: list[FloatArray] = []
    rows_w: list[FloatArray] = []
    rows_v: list[BoolArray] = []
    rows_m: list[IntArray] = []
    rows_g: list[IntArray] = []
    for g, (model, count, points) in enumerate(groups):
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
        rows_m.append(np.full(count, models.index(model), dtype=np.int64))
        rows_g.append(np.full(count, g, dtype=np.int64))
    if not rows_h:
        raise ValueError("a fleet needs at least one miner")
    return FleetSpec(
        hashrate_th=np.concatenate(rows_h),
        power_w=np.concatenate(rows_w),
        valid=np.concatenate(rows_v),
        model_index=np.concatenate(rows_m),
        model_names=tuple(models),
        groups=np.concatenate(rows_g),
        group_names=labels,
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
