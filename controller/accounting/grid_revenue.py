"""Grid revenue: capacity awards, their deployments, and 4CP avoided transmission charges.

Conventions (docs/economics.md, "Grid revenue"; ECONOMICS.md says nothing on grid programs):

- A **capacity award** (ECRS, RRS, Non-Spin, ERS, ...) pays ``price_usd_per_mw_h`` per MW
  awarded per hour of its delivery blocks (``quantity``: flat, shaped by hours or scheduled,
  as a tranche's) inside its term: ``K_cap * Q_award * dt_h``.
- An override whose ``award`` names the award is a **deployment**. From its deadline on it is
  measured: the interval complies when its average metered load (sleeping miners' draw
  included, as the live compliance gauge counts it) is at most the override's cap (a base
  point: within its tolerance of the target). A
  compliant deployed hour pays ``deployment_price_usd_per_mwh`` on the awarded MWh (default 0:
  the curtailed energy's value is already in the resale or the spot power not bought). A
  non-compliant one forfeits that interval's capacity payment and is charged
  ``penalty_usd_per_mwh`` on the MWh above the cap (outside a base point's band).
- A **4CP credit** books, while a ``peak_window`` override is active, the estimated avoided
  transmission charge ``rate_usd_per_mw_year / 4 / windows_per_peak * (nominal - load) * h / H``
  (``H`` the window's length): the site's reduction averaged over the window, one quarter of
  the annual rate per coincident peak. It is an estimate until the 4CP intervals are published.

None of this changes ``c``: an award obliges availability, and a deployment is an override
that the decision already obeys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.accounting.instruments import active_fraction
from controller.accounting.supply_stack import Quantity, mean_quantity_mw
from controller.decision.overrides import Override
from controller.domain import EpochS, FloatArray

#: Components a grid instrument books (USD per interval); penalties are money out.
GRID_COMPONENTS = (
    "capacity_payment_usd",
    "deployment_energy_usd",
    "nonperformance_penalty_usd",
    "avoided_transmission_usd",
)


@dataclass(frozen=True, slots=True)
class CapacityAward:
    """MW awarded in a grid program at a capacity price, over delivery blocks and a term."""

    id: str
    program: str  # ECRS, RRS, Non-Spin, ERS, ...
    quantity: Quantity  # MW awarded per interval
    price_usd_per_mw_h: float
    deployment_price_usd_per_mwh: float = 0.0
    penalty_usd_per_mwh: float = 0.0
    start: EpochS | None = None
    end: EpochS | None = None


@dataclass(frozen=True, slots=True)
class FourCpCredit:
    """The site's transmission charge avoided by curtailing in 4CP peak windows (estimate)."""

    id: str
    rate_usd_per_mw_year: float
    windows_per_peak: int = 1  # peak windows curtailed per coincident peak


GridProgram = CapacityAward | FourCpCredit


def _overlap(o: Override, t0: FloatArray, t1: FloatArray, from_: EpochS) -> FloatArray:
    """Share of each interval inside ``[max(o.start, from_), o.end)``."""
    return active_fraction(max(o.start, from_), o.end, t0, t1)


def _miss_mw(o: Override, cap_mw: float, load_mw: FloatArray) -> FloatArray:
    """How far the load is outside what ``o`` asks (MW): above a cap, or outside a base
    point's tolerance band; 0 when it complies (``Override.compliant``)."""
    if o.kind == "base_point":
        return np.maximum(np.abs(load_mw - cap_mw) - o.tolerance_mw, 0.0)
    return np.maximum(load_mw - cap_mw, 0.0)


def settle_grid(
    programs: tuple[GridProgram, ...],
    overrides: tuple[Override, ...],
    *,
    start: FloatArray,
    end: FloatArray,
    running_mw: FloatArray,
    nominal_mw: float,
) -> tuple[tuple[str, str, FloatArray], ...]:
    """Each grid program's flows per interval: (program id, component, USD). Pure; vectorised.

    ``running_mw`` is the load the grid measures: the meter's, sleeping miners included.
    """
    dt_h = np.asarray((end - start) / 3600.0, dtype=np.float64)
    flows: list[tuple[str, str, FloatArray]] = []
    for prog in programs:
        match prog:
            case CapacityAward():
                award_mw = mean_quantity_mw(prog.quantity, start, end)
                awarded = award_mw * dt_h * active_fraction(prog.start, prog.end, start, end)
                payment = prog.price_usd_per_mw_h * awarded
                energy = np.zeros_like(dt_h)
                penalty = np.zeros_like(dt_h)
                for o in overrides:
                    cap = o.cap_mw
                    if o.award != prog.id or cap is None:
                        continue
                    measured = _overlap(o, start, end, o.deadline or o.start)
                    miss_mw = _miss_mw(o, cap, running_mw)
                    ok = miss_mw <= 1e-9
                    on = measured > 0
                    energy += np.where(on & ok, prog.deployment_price_usd_per_mwh, 0.0) * (
                        awarded * measured
                    )
                    payment = np.where(on & ~ok, 0.0, payment)
                    penalty += np.where(
                        on & ~ok,
                        prog.penalty_usd_per_mwh * miss_mw * dt_h * measured,
                        0.0,
                    )
                flows += [
                    (prog.id, "capacity_payment_usd", payment),
                    (prog.id, "deployment_energy_usd", energy),
                    (prog.id, "nonperformance_penalty_usd", penalty),
                ]
            case FourCpCredit():
                avoided = np.zeros_like(dt_h)
                per_window = prog.rate_usd_per_mw_year / 4.0 / prog.windows_per_peak
                for o in overrides:
                    if o.kind != "peak_window" or o.end <= o.start:
                        continue
                    window_h = (o.end - o.start) / 3600.0
                    share = _overlap(o, start, end, o.start)
                    reduced = np.maximum(nominal_mw - running_mw, 0.0)
                    avoided += per_window * reduced * dt_h * share / window_h
                flows.append((prog.id, "avoided_transmission_usd", avoided))
    return tuple(flows)


def grid_net_usd(flows: tuple[tuple[str, str, FloatArray], ...], n: int) -> FloatArray:
    """What the grid flows add to the net: revenue in, penalties out."""
    net = np.zeros(n)
    for _, comp, usd in flows:
        net = net - usd if comp == "nonperformance_penalty_usd" else net + usd
    return net
