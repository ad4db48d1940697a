"""Operator and grid instructions that take priority over the economics while active.

An override is a plain value with its own end: nothing holds a site forever. The decision
applies them after the economics (or the fail-safe):

- ``force_resume``: every reachable miner at its top point, unless a fail-safe decides;
- ``force_curtail``, a ``peak_window`` in progress, ``demand_response``: a site power cap
  (0 MW, ``max_mw`` or 0 MW, ``max_mw``);
- ``base_point``: a target the site follows (a controllable-load resource): the cap is the
  target and the site runs up to it, efficient miners first, whatever the economics;
  compliance is ``|load - target| <= tolerance``.

Under a cap the fleet optimiser (``controller.decision.optimiser``) chooses who throttles
and who goes off; decreases happen at once, ignoring delays and minimum run times: a grid
obligation has a deadline. When the cap lifts, power comes back under the ramp limit.

Several active caps: the lowest wins. With ``force_resume`` and a cap, the site runs what
fits under the cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from controller.domain import OFF, BoolArray, EpochS, FleetSpec, IntArray

OverrideKind = Literal[
    "force_curtail", "force_resume", "demand_response", "peak_window", "base_point"
]
OVERRIDE_KINDS: tuple[str, ...] = get_args(OverrideKind)


@dataclass(frozen=True, slots=True)
class Override:
    """One active or scheduled instruction for a site."""

    id: str
    kind: OverrideKind
    start: EpochS  # from when it applies
    end: EpochS  # when it ends by itself
    max_mw: float | None = None  # the cap (demand response, peak window) or target (base point)
    issued_by: str = "operator"
    deadline: EpochS | None = None  # demand response: when the cap must be met
    tolerance_mw: float = 0.0  # base point: how far from the target still complies
    award: str | None = None  # the capacity award this deploys (grid revenue), if any

    def active(self, now: EpochS) -> bool:
        """True while ``start <= now < end``."""
        return self.start <= now < self.end

    @property
    def cap_mw(self) -> float | None:
        """The site power cap this override imposes, if any."""
        match self.kind:
            case "force_curtail":
                return 0.0
            case "peak_window":
                return 0.0 if self.max_mw is None else self.max_mw
            case "demand_response" | "base_point":
                return self.max_mw
            case "force_resume":
                return None

    @property
    def forces_run(self) -> bool:
        """A base point asks the site to draw its target, not merely to stay under it."""
        return self.kind in ("force_resume", "base_point")

    def compliant(self, load_mw: float, now: EpochS) -> bool | None:
        """Whether a measured site load meets this instruction at ``now`` (None: no test)."""
        if not self.active(now) or self.kind in ("force_resume",):
            return None
        cap = self.cap_mw
        assert cap is not None
        if self.kind == "base_point":
            return abs(load_mw - cap) <= self.tolerance_mw + 1e-9
        if self.deadline is not None and now < self.deadline:
            return None  # demand response: not yet measured
        return load_mw <= cap + 1e-9


@dataclass(frozen=True, slots=True)
class OverrideEffect:
    """What the active overrides ask of this decision."""

    cap_mw: float | None
    force_run: bool
    reason: str | None  # e.g. "demand_response:dr-17", for metrics and the status


def effect(overrides: tuple[Override, ...], now: EpochS) -> OverrideEffect:
    """Combine the overrides active at ``now``: the lowest cap, and whether to force running."""
    active = [o for o in overrides if o.active(now)]
    resume = [o for o in active if o.forces_run]
    caps = [(o.cap_mw, o) for o in active if o.cap_mw is not None]
    if caps:  # with force_resume too: run what fits under the cap
        cap, which = min(caps, key=lambda c: (c[0], c[1].id))
        return OverrideEffect(cap_mw=cap, force_run=bool(resume), reason=f"{which.kind}:{which.id}")
    if resume:
        return OverrideEffect(
            cap_mw=None, force_run=True, reason=f"{resume[0].kind}:{resume[0].id}"
        )
    return OverrideEffect(cap_mw=None, force_run=False, reason=None)


def apply_cap(fleet: FleetSpec, wanted: IntArray, movable: BoolArray, cap_mw: float) -> IntArray:
    """Switch miners off, least efficient first, until the site draws at most ``cap_mw``.

    Miners that cannot be commanded (``movable`` False: unreachable) still draw power and
    count against the cap, but are never chosen to shed it.
    """
    rows = np.arange(fleet.size)
    power = fleet.power_w[rows, wanted]
    excess_w = float(power.sum()) - cap_mw * 1e6
    if excess_w <= 0:
        return wanted
    on = np.flatnonzero((wanted > OFF) & movable)
    eff = power[on] / fleet.hashrate_th[on, wanted[on]]
    order = on[np.lexsort((on, -eff))]  # worst J/TH first; ties by index for stability
    shed = np.cumsum(power[order])
    # Take the shortest prefix that removes the excess.
    n = int(np.searchsorted(shed, excess_w - 1e-6)) + 1
    result = wanted.copy()
    result[order[:n]] = OFF
    return result
