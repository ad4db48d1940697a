"""A supply stack: contract tranches, cheapest opportunity cost first, then spot above them.

ECONOMICS.md, "Several tranches (a supply stack)". Each tranche has a quantity per interval
(flat, shaped by local hours and days, or a schedule), a price and an optional resale cap.
In every interval the tranches are ordered by their opportunity cost (``min(P, S)`` for a
capped resale, ``P`` for resale at spot, plus adders), and spot (``P + adders``) takes any
load above them. The decision (``controller.decision.stack``) and the settlement
(``controller.accounting.settlement``) both read the stack through ``tranche_costs``, so
they share one order.

A decision reads each quantity at its instant; a settlement books each tranche's
time-weighted mean over the interval (``mean_quantity_mw``), so an interval across a shape's
change (a new local hour, a schedule entry) pays for exactly what the contract delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

import numpy as np

from controller.domain import EpochS, FloatArray


@dataclass(frozen=True, slots=True)
class HoursBlock:
    """``quantity_mw`` on the given weekdays (0 = Monday) in local hours ``[start, end)``."""

    days: tuple[int, ...]
    hour_start: int
    hour_end: int
    quantity_mw: float


@dataclass(frozen=True, slots=True)
class ShapedQuantity:
    """A quantity shaped by local hours and days (5x16 on-peak, ...); 0 outside its blocks."""

    blocks: tuple[HoursBlock, ...]
    tz: tzinfo


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """``quantity_mw`` over ``[start, end)``."""

    start: EpochS
    end: EpochS
    quantity_mw: float


@dataclass(frozen=True, slots=True)
class ScheduledQuantity:
    """Contiguous entries (a monthly schedule, ...); 0 before the first and after the last."""

    entries: tuple[ScheduleEntry, ...]


Quantity = float | ShapedQuantity | ScheduledQuantity


@dataclass(frozen=True, slots=True)
class Tranche:
    """Physically delivered power: ``quantity`` at ``price_usd_per_mwh``, spare power resold
    at spot, or at ``min(P, resale_cap_usd_per_mwh)`` when capped."""

    id: str
    quantity: Quantity
    price_usd_per_mwh: float
    resale_cap_usd_per_mwh: float | None = None


@dataclass(frozen=True, slots=True)
class SupplyStack:
    """Contract tranches with spot above them. No tranches: a spot-supplied site."""

    tranches: tuple[Tranche, ...]


#: The id under which the energy bought at spot above the tranches is booked.
SPOT_ID = "spot"


def quantity_mw(quantity: Quantity, t: FloatArray) -> FloatArray:
    """The quantity (MW) that holds at each instant ``t`` (epoch s)."""
    t = np.asarray(t, dtype=np.float64)
    match quantity:
        case float() | int():
            return np.full(t.shape, float(quantity))
        case ShapedQuantity(blocks=blocks, tz=tz):
            uniq, inverse = np.unique(t, return_inverse=True)
            local = [datetime.fromtimestamp(float(x), tz) for x in uniq]
            day = np.array([d.weekday() for d in local], dtype=np.int64)
            hour = np.array([d.hour for d in local], dtype=np.int64)
            out = np.zeros(uniq.shape)
            for b in blocks:
                inside = np.isin(day, b.days) & (hour >= b.hour_start) & (hour < b.hour_end)
                out = np.where(inside, b.quantity_mw, out)
            return np.asarray(out[inverse.reshape(t.shape)], dtype=np.float64)
        case ScheduledQuantity(entries=entries):
            starts = np.array([e.start for e in entries])
            ends = np.array([e.end for e in entries])
            values = np.array([e.quantity_mw for e in entries])
            idx = np.searchsorted(starts, t, side="right") - 1
            safe = np.clip(idx, 0, len(entries) - 1)
            inside = (idx >= 0) & (t < ends[safe])
            return np.asarray(np.where(inside, values[safe], 0.0), dtype=np.float64)
    raise TypeError(f"not a quantity: {quantity!r}")


#: Sampling step (s) for the mean of a shape over a long span: shapes change on local hours,
#: and every time zone's offset is a whole number of quarter hours.
_SHAPE_STEP_S = 900.0


def mean_quantity_mw(quantity: Quantity, start: FloatArray, end: FloatArray) -> FloatArray:
    """The time-weighted mean quantity (MW) over each span ``[start, end)``."""
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    match quantity:
        case float() | int():
            return np.full(start.shape, float(quantity))
        case ScheduledQuantity(entries=entries):
            mwh = np.zeros(start.shape)
            for e in entries:
                overlap = np.clip(np.minimum(end, e.end) - np.maximum(start, e.start), 0.0, None)
                mwh += overlap * e.quantity_mw
            return np.asarray(mwh / np.maximum(end - start, 1e-9), dtype=np.float64)
        case ShapedQuantity():
            out = quantity_mw(quantity, start)
            # Spans inside one quarter hour hold one value; only the others are integrated.
            cell_end = (np.floor(start / _SHAPE_STEP_S) + 1.0) * _SHAPE_STEP_S
            for i in np.flatnonzero(end > cell_end).tolist():
                a, b = float(start[i]), float(end[i])
                grid = np.arange(float(cell_end[i]), b, _SHAPE_STEP_S)
                cuts = np.concatenate([[a], grid])
                spans = np.diff(np.append(cuts, b))
                out[i] = float((quantity_mw(quantity, cuts) * spans).sum()) / (b - a)
            return out
    raise TypeError(f"not a quantity: {quantity!r}")


def quantity_changes(stack: SupplyStack, start: EpochS, end: EpochS) -> FloatArray:
    """Instants in ``(start, end)`` at which a tranche's quantity changes, sorted."""
    found: list[FloatArray] = []
    for tr in stack.tranches:
        match tr.quantity:
            case ShapedQuantity():
                first = (np.floor(start / _SHAPE_STEP_S) + 1.0) * _SHAPE_STEP_S
                grid = np.arange(first, end, _SHAPE_STEP_S)
                if grid.size:
                    values = quantity_mw(tr.quantity, np.append(grid[0] - _SHAPE_STEP_S, grid))
                    found.append(grid[np.diff(values) != 0])
            case ScheduledQuantity(entries=entries):
                edges = np.array([t for e in entries for t in (e.start, e.end)])
                edges = np.unique(edges[(edges > start) & (edges < end)])
                before = quantity_mw(tr.quantity, edges - 1e-3)
                found.append(edges[quantity_mw(tr.quantity, edges) != before])
    if not found:
        return np.zeros(0)
    return np.unique(np.concatenate(found))


def next_quantity_change(
    stack: SupplyStack, now: EpochS, horizon_s: float = 86_400.0
) -> EpochS | None:
    """The first change of a tranche's quantity after ``now`` (within the horizon), or None."""
    changes = quantity_changes(stack, now, now + horizon_s)
    return float(changes[0]) if changes.size else None


def quantities_at(stack: SupplyStack, now: EpochS) -> tuple[float, ...]:
    """Each tranche's quantity (MW) at ``now``: what an interval's settlement depends on."""
    t = np.array([now])
    return tuple(float(quantity_mw(tr.quantity, t)[0]) for tr in stack.tranches)


@dataclass(frozen=True, slots=True)
class StackState:
    """The stack in each of ``T`` intervals, tranches ordered by cost, spot last.

    Arrays are ``(T, K + 1)`` for ``K`` tranches; column ``K`` is spot.
    """

    order: np.ndarray  # (T, K) tranche index in each position (int)
    cost_usd_per_mwh: FloatArray  # (T, K+1) opportunity cost of each position
    upper_w: FloatArray  # (T, K+1) cumulative load (W) at the top of each position; inf: spot
    quantity_mw: FloatArray  # (T, K) each tranche's quantity, in config order
    resale_usd_per_mwh: FloatArray  # (T, K) each tranche's resale price, in config order


def tranche_costs(
    stack: SupplyStack,
    t: FloatArray,
    price_usd_per_mwh: FloatArray,
    adders_usd_per_mwh: float = 0.0,
    end: FloatArray | None = None,
) -> StackState:
    """Order the tranches by opportunity cost in each interval (stable), spot last.

    A tranche's opportunity cost is its resale price plus adders (every MWh not burnt also
    saves the charges on consumption); spot's is ``P + adders``. Quantities are those at
    ``t`` (a decision), or their mean over ``[t, end)`` when ``end`` is given (a settlement).
    """
    price = np.asarray(price_usd_per_mwh, dtype=np.float64).reshape(-1)
    t = np.broadcast_to(np.asarray(t, dtype=np.float64).reshape(-1), price.shape)
    n_t, k = price.shape[0], len(stack.tranches)
    qty = np.zeros((n_t, k))
    resale = np.zeros((n_t, k))
    for i, tr in enumerate(stack.tranches):
        qty[:, i] = (
            quantity_mw(tr.quantity, t)
            if end is None
            else mean_quantity_mw(tr.quantity, t, np.broadcast_to(end, t.shape))
        )
        cap = tr.resale_cap_usd_per_mwh
        resale[:, i] = price if cap is None else np.minimum(price, cap)
    order = np.argsort(resale, axis=1, kind="stable")
    rows = np.arange(n_t)[:, None]
    cost = np.concatenate([resale[rows, order], price[:, None]], axis=1) + adders_usd_per_mwh
    upper = np.concatenate(
        [np.cumsum(qty[rows, order], axis=1) * 1e6, np.full((n_t, 1), np.inf)], axis=1
    )
    return StackState(order, cost, upper, qty, resale)


def cost_at(state: StackState, position_w: float) -> float:
    """Opportunity cost of the next watt above ``position_w`` in the first interval."""
    idx = int(np.searchsorted(state.upper_w[0], position_w, side="right"))
    return float(state.cost_usd_per_mwh[0, min(idx, state.upper_w.shape[1] - 1)])


@dataclass(frozen=True, slots=True)
class StackFlows:
    """Each tranche's flows per interval (USD, MWh), with the spot energy above them."""

    contract_energy_usd: FloatArray  # (T, K) K * Q * dt_h
    used_mwh: FloatArray  # (T, K) load served by each tranche
    resale_usd: FloatArray  # (T, K) spare power resold
    spot_mwh: FloatArray  # (T,) load above the tranches, bought at spot
    spot_energy_usd: FloatArray  # (T,) P * spot_mwh


def settle_stack(
    stack: SupplyStack,
    start: FloatArray,
    end: FloatArray,
    price_usd_per_mwh: FloatArray,
    running_mw: FloatArray,
) -> StackFlows:
    """Fill the tranches with the load in the decision's order; spare resold, excess at spot.

    Each tranche's quantity is its mean over the interval: ``K * Q * dt_h`` is exact even
    when a shape changes inside an interval.
    """
    dt_h = np.asarray((end - start) / 3600.0, dtype=np.float64)
    state = tranche_costs(stack, start, price_usd_per_mwh, end=end)
    n_t, k = state.quantity_mw.shape
    rows = np.arange(n_t)[:, None]
    qty_sorted = state.quantity_mw[rows, state.order]
    lower = np.concatenate([np.zeros((n_t, 1)), np.cumsum(qty_sorted, axis=1)[:, :-1]], axis=1)
    used_sorted = np.clip(running_mw[:, None] - lower, 0.0, qty_sorted)
    used = np.zeros((n_t, k))
    used[rows, state.order] = used_sorted
    dt = dt_h[:, None]
    price = np.asarray(price_usd_per_mwh, dtype=np.float64)
    excess = np.maximum(running_mw - qty_sorted.sum(axis=1), 0.0)
    prices = np.array([tr.price_usd_per_mwh for tr in stack.tranches]).reshape(1, k)
    return StackFlows(
        contract_energy_usd=prices * state.quantity_mw * dt,
        used_mwh=used * dt,
        resale_usd=(state.quantity_mw - used) * state.resale_usd_per_mwh * dt,
        spot_mwh=excess * dt_h,
        spot_energy_usd=price * excess * dt_h,
    )
