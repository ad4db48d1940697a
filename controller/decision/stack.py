"""Each miner's opportunity cost from the tranche its load falls in (ECONOMICS.md,
"Several tranches (a supply stack)").

Miners are ordered by efficiency at their top point, best first (ties: curve class, model,
index). A miner occupies the load span ``[a, a + w_top]`` where ``a`` is the top power of
every miner before it, and each of its points costs the tranche costs over
``[a, a + w_point]``: the same rule applied to each point's marginal watts. With one
tranche this is exactly the uniform ``c`` of ``point_value_usd_per_h``.

Miners with one curve and model form contiguous blocks in that order. In each interval a
block splits into groups: the miners wholly inside one tranche (they all see its cost) and
the few that straddle a tranche boundary (one per boundary at most). The site loop and the
fast replay both decide through ``stack_groups``, so they take the same decisions.

A fixed pool payout delivered on hashrate (``controller.accounting.pool_payout``) is the
same rule on the revenue side: the first ``Hc`` PH/s of the merit order (top hashrate) earn
the committed rate ``HPc``, the rest ``HPn``; a point spanning ``[a_h, a_h + h_point]`` earns
the blend (``block_revenue_usd_per_h``). Blocks are split at ``Hc`` so that each block is
wholly inside, wholly outside, or the one miner across it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.accounting.supply_stack import StackState
from controller.decision.economics import point_value_usd_per_h
from controller.domain import FleetSpec, FloatArray, IntArray

#: Tolerance (W) on span boundaries: a miner ending this close to a boundary is inside.
_TOL_W = 1e-6
#: Tolerance (TH/s) on the pool commitment's boundary, likewise.
_TOL_TH = 1e-9


@dataclass(frozen=True, slots=True)
class MeritBlocks:
    """Runs of identical miners (curve and model) in merit order."""

    start_w: FloatArray  # (B,) load below the block's first miner
    start_th: FloatArray  # (B,) top hashrate (TH/s) below the block's first miner
    unit_w: FloatArray  # (B,) each miner's top power
    count: IntArray  # (B,)
    row: IntArray  # (B,) one miner of the block: its curve
    model: IntArray  # (B,)
    members: tuple[IntArray, ...]  # each block's miners, in merit order


def merit_blocks(fleet: FleetSpec, split_th: float = 0.0) -> MeritBlocks:
    """The fleet in merit order, best J/TH at the top point first, as blocks; split at the
    top hashrate ``split_th`` (TH/s, a pool payout's commitment) when positive."""
    order = fleet.merit_order
    cls, model = fleet.class_of[order], fleet.model_index[order]
    cuts = np.flatnonzero((cls[1:] != cls[:-1]) | (model[1:] != model[:-1])) + 1
    top_h = fleet.hashrate_th[order, fleet.top_point[order]]
    if split_th > 0.0 and fleet.size:
        ends_h = np.cumsum(top_h)
        k = int(np.searchsorted(ends_h, split_th + _TOL_TH, side="right"))  # wholly inside
        extra = [k, k + 1] if k < fleet.size and ends_h[k] - top_h[k] < split_th else [k]
        cuts = np.unique(np.concatenate([cuts, [x for x in extra if 0 < x < fleet.size]]))
        cuts = cuts.astype(np.int64)
    firsts = np.concatenate([[0], cuts]).astype(np.int64)
    ends = np.append(cuts, fleet.size).astype(np.int64)
    rows = order[firsts]
    unit = fleet.power_w[rows, fleet.top_point[rows]]
    counts = ends - firsts
    start = np.concatenate([[0.0], np.cumsum(unit * counts)[:-1]])
    start_h = np.concatenate([[0.0], np.cumsum(top_h)])[firsts]
    return MeritBlocks(
        start_w=start,
        start_th=start_h,
        unit_w=unit,
        count=counts,
        row=rows,
        model=fleet.model_index[rows].astype(np.int64),
        members=tuple(order[a:b] for a, b in zip(firsts, ends, strict=True)),
    )


@dataclass(frozen=True, slots=True)
class StackGroups:
    """Per interval ``T``, block ``B`` and group ``G``: miners ``[lo, hi)`` of the block
    (merit order) and what each of its points costs (USD/h). Groups ``0..K`` are the miners
    wholly inside each position of the stack; the rest straddle a boundary."""

    lo: IntArray  # (T, B, G)
    hi: IntArray  # (T, B, G)
    cost_usd_per_h: FloatArray  # (T, B, G, P)


def stack_groups(blocks: MeritBlocks, power_w: FloatArray, state: StackState) -> StackGroups:
    """Split every block by the stack of each interval. ``power_w`` is ``(B, P)``."""
    upper = state.upper_w  # (T, K1)
    cost = state.cost_usd_per_mwh
    n_t, k1 = upper.shape
    lower = np.concatenate([np.zeros((n_t, 1)), upper[:, :-1]], axis=1)
    a = blocks.start_w[None, :, None]  # (1, B, 1)
    u = blocks.unit_w[None, :, None]
    n = blocks.count[None, :, None]
    with np.errstate(invalid="ignore"):
        # Wholly inside position k: start >= L - tol and end <= U + tol.
        lo_in = np.ceil((lower[:, None, :] - _TOL_W - a) / u)
        hi_in = np.floor((upper[:, None, :] + _TOL_W - a) / u)
    hi_in = np.where(np.isinf(upper)[:, None, :], n, hi_in)
    lo_in = np.clip(lo_in, 0, n).astype(np.int64)
    hi_in = np.maximum(np.clip(hi_in, 0, n).astype(np.int64), lo_in)
    # Straddling boundary k (a finite upper): start < U - tol and end > U + tol.
    bound = upper[:, None, :-1]  # (T, 1, K)
    j = np.ceil((bound + _TOL_W - a) / u) - 1
    straddles = (j >= 0) & (j < n) & (a + j * u < bound - _TOL_W)
    j = np.where(straddles, j, -1).astype(np.int64)
    if j.shape[2] > 1:  # one miner across several boundaries: keep it once
        dupe = np.zeros(j.shape, dtype=bool)
        dupe[:, :, 1:] = (j[:, :, 1:] == j[:, :, :-1]) & (j[:, :, 1:] >= 0)
        j = np.where(dupe, -1, j)
    lo_s = np.where(j >= 0, j, 0)
    hi_s = np.where(j >= 0, j + 1, 0)

    w = power_w[None, :, None, :]  # (1, B, 1, P)
    cost_in = w * (cost[:, None, :, None] / 1e6)  # (T, B, K1, P), as point_value_usd_per_h
    # A straddler's points: integrate the stack's cost over [s, s + w_point].
    s = (blocks.start_w[None, :, None] + lo_s * blocks.unit_w[None, :, None])[..., None]
    end = s + w  # (T, B, K, P)
    lo_k = lower[:, None, None, None, :]
    up_k = upper[:, None, None, None, :]
    overlap = np.clip(np.minimum(end[..., None], up_k) - np.maximum(s[..., None], lo_k), 0, None)
    cost_s = (overlap * cost[:, None, None, None, :]).sum(axis=-1) / 1e6  # (T, B, K, P)
    broadcast = (n_t, blocks.count.size, k1)
    return StackGroups(
        lo=np.concatenate([np.broadcast_to(lo_in, broadcast), lo_s], axis=2),
        hi=np.concatenate([np.broadcast_to(hi_in, broadcast), hi_s], axis=2),
        cost_usd_per_h=np.concatenate([cost_in, cost_s], axis=2),
    )


def block_revenue_usd_per_h(
    blocks: MeritBlocks,
    hashrate_th: FloatArray,
    hpn: FloatArray,
    hpc: FloatArray,
    committed_th: FloatArray,
) -> FloatArray:
    """Revenue of every point of every block (USD/h) in each of ``T`` intervals: ``(T, B, P)``.

    ``hashrate_th`` is ``(B, P)``; ``hpn``, ``hpc`` (the committed rate) and ``committed_th``
    are ``(T,)``. The share of a point's hashrate within the commitment earns ``hpc``, the
    rest ``hpn``. Exact when the blocks were split at the commitment (``merit_blocks``).
    """
    h = hashrate_th[None]  # (1, B, P)
    within = np.clip(committed_th[:, None, None] - blocks.start_th[None, :, None], 0.0, h)
    floating = point_value_usd_per_h(h - within, 0.0, hpn[:, None, None], 0.0)
    return floating + point_value_usd_per_h(within, 0.0, hpc[:, None, None], 0.0)


def stack_values(
    fleet: FleetSpec,
    blocks: MeritBlocks,
    state: StackState,
    hpn: float,
    *,
    hpc: float = 0.0,
    committed_th: float = 0.0,
) -> FloatArray:
    """Margin of every point of every miner (USD/h) under the stack of one interval, the
    first ``committed_th`` of the merit order earning ``hpc`` (a delivered pool payout)."""
    rows = blocks.row
    groups = stack_groups(blocks, fleet.power_w[rows], state)
    one = np.ones(1)
    revenue = block_revenue_usd_per_h(
        blocks, fleet.hashrate_th[rows], hpn * one, hpc * one, committed_th * one
    )[0]  # (B, P)
    values = np.zeros(fleet.power_w.shape)
    for b, members in enumerate(blocks.members):
        for g in range(groups.lo.shape[2]):
            lo, hi = int(groups.lo[0, b, g]), int(groups.hi[0, b, g])
            if hi > lo:
                values[members[lo:hi]] = revenue[b] - groups.cost_usd_per_h[0, b, g]
    return values
