"""The fast path: the decision and settlement core over every interval at once.

Valid when decisions carry no memory (no hysteresis, delays, dwell or ramp, and no
``hold`` fail-safe that trips): each interval's decision then depends on its inputs only,
so the whole replay is a handful of array operations. Miners with identical specs are
grouped into blocks in merit order first (``controller.decision.stack``), so the cost grows
with intervals x blocks x tranches, not x miners.
"""

from __future__ import annotations

import numpy as np

from controller.accounting.grid_revenue import GridProgram
from controller.accounting.instruments import Hedge, Supply, as_stack
from controller.accounting.pool_payout import committed_rate, committed_th
from controller.accounting.settlement import IntervalInputs, settle
from controller.accounting.supply_stack import quantity_changes, tranche_costs
from controller.decision.economics import best_point, net_hashprice
from controller.decision.policy import PolicyParams
from controller.decision.stack import block_revenue_usd_per_h, merit_blocks, stack_groups
from controller.domain import OFF, EpochS, FailSafeAction, FleetSpec, FloatArray, Recording
from controller.records import IntervalTable


class NotStatelessError(Exception):
    """The scenario's policy has memory: it must run on the site loop."""


def _deadlines(rec: Recording, max_age_s: float) -> FloatArray:
    """Instants at which a reading turns stale before the next one arrives."""
    due = rec.times + max_age_s
    nxt = np.append(rec.times[1:], np.inf)
    return due[due < nxt]


def interval_grid(
    price: Recording,
    hashprice: Recording,
    params: PolicyParams,
    start: EpochS,
    end: EpochS,
    *,
    supply: Supply | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Interval bounds: every observation, every staleness deadline and every change of a
    contract tranche's quantity inside the window (as the site loop closes intervals)."""
    stacks = {as_stack(params.supply), as_stack(supply if supply is not None else params.supply)}
    points = np.concatenate(
        [
            [start],
            price.times,
            hashprice.times,
            _deadlines(price, params.price_max_age_s),
            _deadlines(hashprice, params.hashprice_max_age_s),
            *(quantity_changes(s, start, end) for s in stacks),
        ]
    )
    cuts = np.unique(points[(points >= start) & (points < end)])
    return cuts, np.append(cuts[1:], end)


def _holding(rec: Recording, t: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Value and observation time of the reading that holds at each ``t``."""
    idx = np.searchsorted(rec.times, t, side="right") - 1
    if (idx < 0).any():
        first = t[idx < 0][0]
        raise ValueError(f"{rec.source}: no observation at or before {first}")
    return rec.values[idx], rec.times[idx]


def fast_replay(
    *,
    fleet: FleetSpec,
    params: PolicyParams,
    supply: Supply,
    hedges: tuple[Hedge, ...],
    price: Recording,
    hashprice: Recording,
    start: EpochS,
    end: EpochS,
    day_ahead: Recording | None = None,
    grid: tuple[GridProgram, ...] = (),
    btc_usd: Recording | None = None,
    difficulty: Recording | None = None,
) -> IntervalTable:
    """Decide and settle every interval of ``[start, end)`` at once.

    ``day_ahead`` (USD/MWh) is what options settled on day-ahead prices read; it never
    enters the decision. Its hourly changes fall on the real-time grid's boundaries in the
    ERCOT recording; elsewhere each interval takes the day-ahead price holding at its start.
    ``grid``'s capacity awards are settled (no grid events here: they need the site loop).
    ``btc_usd`` and ``difficulty`` are what Bitcoin instruments settle on; like the
    day-ahead price, each interval takes the value holding at its start, and neither enters
    the decision.
    """
    if not params.stateless:
        raise NotStatelessError(
            "hysteresis, delays, dwell times or a ramp limit need the site loop"
        )
    if params.site_cap_mw is not None:
        raise NotStatelessError("a site power cap is optimised per cycle on the site loop")
    t0, t1 = interval_grid(price, hashprice, params, start, end, supply=supply)
    p, p_at = _holding(price, t0)
    hp, hp_at = _holding(hashprice, t0)
    stale = ((t0 - p_at) >= params.price_max_age_s) | ((t0 - hp_at) >= params.hashprice_max_age_s)
    if stale.any() and params.failsafe_action is FailSafeAction.HOLD:
        raise NotStatelessError("a 'hold' fail-safe trips in this window: it needs the site loop")

    # Blocks of identical miners (curve, model) in merit order, as the site loop decides.
    n_models = len(fleet.model_names)
    pool = params.pool
    blocks = merit_blocks(fleet, 0.0 if pool is None else pool.hashrate_ph * 1e3)
    h_cls = fleet.hashrate_th[blocks.row]  # (B, P)
    w_cls = fleet.power_w[blocks.row]
    valid_cls = fleet.valid[blocks.row]
    model_of = np.eye(n_models)[blocks.model]  # (B, M)

    hpn = net_hashprice(hp, params.pool_fee)
    # The decision sees params.supply, as decide() does; settlement applies the actual contract.
    state = tranche_costs(as_stack(params.supply), t0, p, params.adders_usd_per_mwh)
    groups = stack_groups(blocks, w_cls, state)  # (T, B, G)
    # The first Hc PH/s of the merit order earn a delivered pool payout's committed rate.
    hpc = np.zeros_like(hpn) if pool is None else committed_rate(pool, hp)
    revenue = block_revenue_usd_per_h(blocks, h_cls, hpn, hpc, committed_th(pool, t0))
    values = revenue[:, :, None, :] - groups.cost_usd_per_h  # (T, B, G, P)
    point = best_point(values, valid_cls[None, :, None, :])  # (T, B, G)
    if stale.any():
        forced = OFF if params.failsafe_action is FailSafeAction.CURTAIL else None
        top = (valid_cls.shape[1] - 1) - np.argmax(valid_cls[:, ::-1], axis=1)
        point[stale] = forced if forced is not None else top[:, None]

    count = groups.hi - groups.lo  # (T, B, G)
    rows = np.arange(h_cls.shape[0])[None, :, None]
    w_run = (w_cls[rows, point] * count).sum(axis=2)  # (T, B)
    h_run = (h_cls[rows, point] * count).sum(axis=2)
    model_mw = w_run @ model_of / 1e6
    model_ph = h_run @ model_of / 1e3
    inputs = IntervalInputs(
        start=t0,
        end=t1,
        price_usd_per_mwh=p,
        hashprice_usd_per_ph_day=hp,
        running_mw=model_mw.sum(axis=1),
        running_ph=model_ph.sum(axis=1),
        nominal_mw=fleet.nominal_mw,
        day_ahead_usd_per_mwh=None if day_ahead is None else _holding(day_ahead, t0)[0],
        btc_usd_per_btc=None if btc_usd is None else _holding(btc_usd, t0)[0],
        difficulty_t=None if difficulty is None else _holding(difficulty, t0)[0],
    )
    settlement = settle(
        inputs,
        supply=supply,
        hedges=hedges,
        pool_fee=params.pool_fee,
        adders_usd_per_mwh=params.adders_usd_per_mwh,
        grid=grid,
    )
    return IntervalTable(
        inputs=inputs,
        settlement=settlement,
        model_running_mw=model_mw,
        model_running_ph=model_ph,
        failsafe=stale,
    )
