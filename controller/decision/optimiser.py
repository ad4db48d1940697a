"""The fleet optimiser: every miner's operating point under a site power cap.

Without a cap the site's margin is a sum over miners, so each miner's best point (the
economics of ``decide``) is already optimal. With a cap ``B`` the problem is a knapsack:
maximise ``sum(value)`` subject to ``sum(power) <= B``. hashspark solves its Lagrangian
relaxation: raise the price of power by ``lambda`` until the fleet's best points fit, then
fill what is left under the cap by moving whole miners of the boundary classes up one
step, best value per watt first. Miners with identical curves form classes, so the search
runs over a handful of classes, not 100,000 miners.

With ``force_run`` (an operator's force-resume, a base point to follow) the value of
hashing is counted without the power price, so the site runs as much as the cap allows,
most efficient first.
"""

from __future__ import annotations

import numpy as np

from controller.decision.economics import best_point, point_value_usd_per_h
from controller.domain import OFF, BoolArray, FleetSpec, IntArray

_BISECTIONS = 48


def allocate_under_cap(
    fleet: FleetSpec,
    wanted: IntArray,
    movable: BoolArray,
    cap_mw: float,
    *,
    net_hashprice_usd_per_ph_day: float,
    opportunity_cost_usd_per_mwh: float,
    force_run: bool = False,
) -> IntArray:
    """``wanted`` if it fits under ``cap_mw``; otherwise the best allocation that does.

    Miners that are not ``movable`` (unreachable) keep their point and their power counts
    against the cap.
    """
    rows = np.arange(fleet.size)
    power = fleet.power_w[rows, wanted]
    cap_w = cap_mw * 1e6
    if float(power.sum()) <= cap_w + 1e-6:
        return wanted
    budget_w = cap_w - float(power[~movable].sum())
    result = wanted.copy()
    moving = np.flatnonzero(movable)
    if budget_w <= 0 or moving.size == 0:
        result[moving] = OFF
        return result

    # Classes of identical curves (found once per fleet), counted among the movable miners.
    cls_of = fleet.class_of[moving]
    counts = np.bincount(cls_of, minlength=fleet.class_rows.size)
    rows_c = fleet.class_rows
    h, w, valid = fleet.hashrate_th[rows_c], fleet.power_w[rows_c], fleet.valid[rows_c]
    hpn = net_hashprice_usd_per_ph_day
    c = 0.0 if force_run else opportunity_cost_usd_per_mwh

    def best(lam: float) -> IntArray:
        return best_point(point_value_usd_per_h(h, w, hpn, c + lam), valid)

    def load(points: IntArray) -> float:
        return float((w[np.arange(w.shape[0]), points] * counts).sum())

    # lambda_hi: every point worth less than off (value per MWh below the price of power).
    safe_w = np.where(valid & (w > 0), w, np.inf)
    lam_hi = float(np.max(h * hpn / 24_000.0 / safe_w * 1e6)) - c + 1.0
    lam_lo = 0.0
    if load(best(lam_lo)) <= budget_w:
        lam_hi = lam_lo
    for _ in range(_BISECTIONS):
        if lam_hi - lam_lo < 1e-9:
            break
        mid = (lam_lo + lam_hi) / 2
        if load(best(mid)) <= budget_w:
            lam_hi = mid
        else:
            lam_lo = mid
    low = best(lam_hi)  # fits
    high = best(lam_lo) if lam_hi > 0 else low  # the step just above: does not fit
    result[moving] = low[cls_of]
    values = point_value_usd_per_h(h, w, hpn, c)
    for u, n in _fill_slack(w, values, counts, low=low, high=high, slack=budget_w - load(low)):
        result[moving[cls_of == u][:n]] = high[u]
    return result


def _fill_slack(
    w: np.ndarray,
    values: np.ndarray,
    counts: np.ndarray,
    *,
    low: IntArray,
    high: IntArray,
    slack: float,
) -> list[tuple[int, int]]:
    """(class, miners) to move up from ``low`` to ``high``, best gain per watt first."""
    moves: list[tuple[int, int]] = []
    up = np.flatnonzero(high != low)
    if up.size == 0 or slack <= 0:
        return moves
    extra_w = w[up, high[up]] - w[up, low[up]]
    gain = values[up, high[up]] - values[up, low[up]]
    for u in up[np.argsort(-(gain / np.maximum(extra_w, 1e-9)))]:
        step = float(w[u, high[u]] - w[u, low[u]])
        n = min(int(slack // step), int(counts[u])) if step > 0 else 0
        if n > 0:
            moves.append((int(u), n))
            slack -= n * step
    return moves


def onoff_fleet(fleet: FleetSpec) -> FleetSpec:
    """The same fleet restricted to off and its top point: on/off dispatch, for comparison."""
    rows = np.arange(fleet.size)
    top = fleet.top_point
    width = 2
    h = np.zeros((fleet.size, width))
    w = np.zeros((fleet.size, width))
    h[:, 1] = fleet.hashrate_th[rows, top]
    w[:, 1] = fleet.power_w[rows, top]
    return FleetSpec(
        hashrate_th=h,
        power_w=w,
        valid=np.ones((fleet.size, width), dtype=bool),
        model_index=fleet.model_index.copy(),
        model_names=fleet.model_names,
        groups=fleet.group_of.copy(),
        group_names=fleet.group_names,
    )


def site_power_mw(fleet: FleetSpec, points: IntArray) -> float:
    """The site's draw at the given points."""
    return float(fleet.power_at(points).sum()) / 1e6
