"""The pure decision: ``decide(fleet, params, snapshot, state) -> (plan, new_state)``.

Over 300 lines: decide() and the state it carries are one algorithm, read top to bottom.

Rules, in the order they apply to each miner:

1. **Economics**: each point's margin ``h * HPn / 24000 - w / 1e6 * c`` (USD/h), off = 0;
   the best point wins, ties to the higher-power point (run iff ``EHP >= c``). With
   contract tranches ``c`` is each miner's: the cost of the tranches its load falls in,
   most efficient miners first (``controller.decision.stack``).
2. **Fail-safe**: if an input is missing or older than its maximum age, the site's action
   replaces the economics: ``hold`` keeps every miner where it is, ``curtail`` wants all
   off, ``run`` wants all at their top point.
3. **Overrides** (``controller.decision.overrides``): ``force_resume`` wants every miner
   at its top point unless a fail-safe decides; a power cap (force curtail, a 4CP peak
   window, demand response) switches miners off, least efficient first, until the site
   fits under it.
4. **Hysteresis band** (USD/MWh): leaving the current point for another needs a gain above
   ``band * |delta MW|`` per hour, so a single-point miner curtails when
   ``c > EHP + band`` and resumes when ``c < EHP - band``.
5. **Delays**: the wanted change must persist ``curtail_delay_s`` (lower power) or
   ``resume_delay_s`` (higher power) before it is made.
6. **Dwell**: a miner that started running stays on ``min_run_s``; one that stopped stays
   off ``min_off_s``. A ``curtail`` fail-safe or a power cap makes decreases immediate,
   overriding delays and ``min_run_s``: it is the safe way, and the grid has deadlines.
7. **Pacing** (``controller.decision.pacing``): a snapshot's ``pacing`` gate holds a raise
   of a miner commanded too recently (or backing off from failures) where the miner is
   headed (its command in flight, else its point), the change pending. Lowerings are never
   held here: the site loop only drops a repeat of the last one.
8. **Ramp**: power increases are admitted in merit order (best J/TH first) while the site's
   increase fits ``ramp_up_mw_per_min`` times the minutes since the last decision;
   decreases are never limited (curtailing is the safe direction).

With every band, delay, dwell and ramp at zero this is exactly the pure rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from controller.accounting.instruments import PoolPayout, Supply, as_stack
from controller.accounting.pool_payout import committed_rate, committed_th
from controller.accounting.supply_stack import StackState, cost_at, tranche_costs
from controller.decision.economics import best_point, net_hashprice, point_value_usd_per_h
from controller.decision.optimiser import allocate_under_cap
from controller.decision.overrides import Override, apply_cap, effect
from controller.decision.pacing import PacingGate
from controller.decision.stack import merit_blocks, stack_values
from controller.domain import (
    OFF,
    BoolArray,
    EpochS,
    FailSafeAction,
    FleetSpec,
    FloatArray,
    IntArray,
    Reading,
)

#: Elapsed time assumed for the ramp budget of the first decision (no previous one).
FIRST_DECISION_ELAPSED_S = 60.0


@dataclass(frozen=True, slots=True)
class PolicyParams:
    """A site's decision parameters (all zero = the pure rule)."""

    supply: Supply
    pool_fee: float = 0.0
    adders_usd_per_mwh: float = 0.0
    hysteresis_usd_per_mwh: float = 0.0
    curtail_delay_s: float = 0.0
    resume_delay_s: float = 0.0
    min_run_s: float = 0.0
    min_off_s: float = 0.0
    ramp_up_mw_per_min: float | None = None
    site_cap_mw: float | None = None  # interconnect or contract limit: never draw more
    price_max_age_s: float = 900.0
    hashprice_max_age_s: float = 2 * 86_400.0
    failsafe_action: FailSafeAction = FailSafeAction.HOLD
    #: A fixed pool payout delivered on hashrate: the first Hc PH/s earn its committed rate.
    pool: PoolPayout | None = None

    @property
    def stateless(self) -> bool:
        """True when decisions depend only on the inputs, never on the fleet's history."""
        return (
            self.hysteresis_usd_per_mwh == 0.0
            and self.curtail_delay_s == 0.0
            and self.resume_delay_s == 0.0
            and self.min_run_s == 0.0
            and self.min_off_s == 0.0
            and self.ramp_up_mw_per_min is None
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a decision sees: the time, the latest readings, what the miners do."""

    now: EpochS
    price: Reading | None
    hashprice: Reading | None
    observed_point: IntArray  # (N,) point each miner reports being at
    reachable: BoolArray  # (N,)
    overrides: tuple[Override, ...] = ()  # operator and grid instructions, active or not
    pacing: PacingGate | None = None  # which miners may be commanded now; None: all


@dataclass(frozen=True, slots=True)
class PolicyState:
    """Explicit memory of the policy: pending changes and when each miner last switched."""

    pending_point: IntArray  # (N,) the change being waited for, or -1
    pending_since: FloatArray  # (N,)
    on_since: FloatArray  # (N,) when the miner last went from off to running (-inf: unknown)
    off_since: FloatArray  # (N,) when the miner last went from running to off
    last_point: IntArray  # (N,) the point last planned: what the next observation should show
    last_decided_at: EpochS | None

    @classmethod
    def initial(cls, fleet_size: int) -> PolicyState:
        """State before the first decision: nothing pending, no dwell yet served or owed."""
        return cls(
            pending_point=np.full(fleet_size, -1, dtype=np.int64),
            pending_since=np.zeros(fleet_size),
            on_since=np.full(fleet_size, -np.inf),
            off_since=np.full(fleet_size, -np.inf),
            last_point=np.full(fleet_size, -1, dtype=np.int64),
            last_decided_at=None,
        )


@dataclass(frozen=True, slots=True)
class FailSafe:
    """An engaged fail-safe and why."""

    action: FailSafeAction
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The operating point every miner should be at, and the inputs that chose it."""

    now: EpochS
    point: IntArray  # (N,)
    opportunity_cost_usd_per_mwh: float | None
    net_hashprice_usd_per_ph_day: float | None
    failsafe: FailSafe | None
    ramp_limited: int  # miners whose increase waits for ramp budget
    override: str | None = None  # the override that shaped the plan, e.g. "peak_window:4cp-1"
    #: What overrode the economics: an override ("demand_response:dr-17") whose cap bound
    #: or that forces running, or "site_cap" (the site's own limit bound); None: nothing.
    bound_by: str | None = None
    #: Miners whose wanted change waits for actuation pacing (``Snapshot.pacing``).
    paced: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def check_inputs(params: PolicyParams, snapshot: Snapshot) -> FailSafe | None:
    """The fail-safe to engage when an input is missing, stale or from the future, else None."""
    problems: list[str] = []
    for name, reading, max_age in (
        ("price", snapshot.price, params.price_max_age_s),
        ("hashprice", snapshot.hashprice, params.hashprice_max_age_s),
    ):
        if reading is None:
            problems.append(f"{name} missing")
            continue
        age = reading.age_s(snapshot.now)
        if age >= max_age:  # a reading is usable for max_age seconds after it was observed
            problems.append(f"{name} stale: {age:.0f} s old >= {max_age:.0f} s ({reading.source})")
    if not problems:
        return None
    return FailSafe(params.failsafe_action, "; ".join(problems))


def economic_points(
    fleet: FleetSpec,
    params: PolicyParams,
    price_usd_per_mwh: float,
    hashprice: float,
    now: EpochS = 0.0,
) -> tuple[FloatArray, float, float]:
    """Margin of every point for every miner (USD/h), with the marginal ``c`` and ``HPn``.

    Spot supply: one ``c`` for all. Contract tranches: each miner's cost comes from the
    tranches its load falls in (``controller.decision.stack``); the ``c`` returned is the
    cost of the next watt above the load the economics want.
    """
    hpn = float(net_hashprice(hashprice, params.pool_fee))
    state = supply_state(params, price_usd_per_mwh, now)
    pool = params.pool
    hc_th = float(committed_th(pool, np.array([now]))[0])
    if state.cost_usd_per_mwh.shape[1] == 1 and hc_th == 0.0:  # spot only: one cost for all
        c = float(state.cost_usd_per_mwh[0, 0])
        return point_value_usd_per_h(fleet.hashrate_th, fleet.power_w, hpn, c), c, hpn
    split = 0.0 if pool is None else pool.hashrate_ph * 1e3
    hpc = 0.0 if pool is None else float(committed_rate(pool, np.array([hashprice]))[0])
    values = stack_values(
        fleet, merit_blocks(fleet, split), state, hpn, hpc=hpc, committed_th=hc_th
    )
    load_w = float(fleet.power_at(best_point(values, fleet.valid)).sum())
    return values, cost_at(state, load_w), hpn


def supply_state(params: PolicyParams, price_usd_per_mwh: float, now: EpochS) -> StackState:
    """The supply stack at ``now``: its tranches in cost order, spot last."""
    return tranche_costs(
        as_stack(params.supply),
        np.array([now], dtype=np.float64),
        np.array([price_usd_per_mwh], dtype=np.float64),
        params.adders_usd_per_mwh,
    )


def decide(
    fleet: FleetSpec, params: PolicyParams, snapshot: Snapshot, state: PolicyState
) -> tuple[Plan, PolicyState]:
    """Choose every miner's operating point. Pure: no I/O, no clock, no logging."""
    now = snapshot.now
    rows = np.arange(fleet.size)
    current = snapshot.observed_point
    failsafe = check_inputs(params, snapshot)
    instructed = effect(snapshot.overrides, now)
    on_since, off_since = _dwell_clocks(state, current, now)
    wanted, c, hpn = _wanted(fleet, params, snapshot, failsafe)
    if instructed.force_run and failsafe is None:
        wanted = fleet.top_point.copy()
    is_on = current > OFF

    # Unreachable miners cannot be commanded: plan them where they are.
    wanted = np.where(snapshot.reachable, wanted, current)
    caps = [x for x in (instructed.cap_mw, params.site_cap_mw) if x is not None]
    cap_mw = min(caps) if caps else None
    cap_binds = cap_mw is not None and float(fleet.power_at(wanted).sum()) > cap_mw * 1e6 + 1e-6
    if cap_mw is not None and cap_binds:
        if c is not None and hpn is not None and snapshot.price is not None:
            # Under a cap the load sits at the cap: the marginal cost is the tranche's there.
            c = cost_at(supply_state(params, snapshot.price.value, now), cap_mw * 1e6)
            wanted = allocate_under_cap(
                fleet,
                wanted,
                snapshot.reachable,
                cap_mw,
                net_hashprice_usd_per_ph_day=hpn,
                opportunity_cost_usd_per_mwh=c,
                force_run=instructed.force_run and failsafe is None,
            )
        else:  # no economics to optimise with (a fail-safe decides): shed worst J/TH first
            wanted = apply_cap(fleet, wanted, snapshot.reachable, cap_mw)

    bound_by = instructed.reason if instructed.force_run and failsafe is None else None
    if cap_binds and cap_mw is not None:
        bound_by = (
            instructed.reason
            if instructed.cap_mw is not None and instructed.cap_mw <= cap_mw
            else "site_cap"
        )

    p_now = fleet.power_w[rows, current]
    p_want = fleet.power_w[rows, wanted]
    change = wanted != current
    up = change & (p_want > p_now)
    down = change & ~up

    # Delays: a change must be wanted continuously for its delay before it is made.
    pending_same = state.pending_point == wanted
    pending_since = np.where(change & pending_same, state.pending_since, now)
    delay = np.where(up, params.resume_delay_s, params.curtail_delay_s)
    matured = (now - pending_since) >= delay
    # Curtailing for safety or for the grid cannot wait for delays or minimum run times.
    forced_off = (failsafe is not None and failsafe.action is FailSafeAction.CURTAIL) or cap_binds
    if forced_off:
        matured = matured | down

    # Dwell: minimum run and off times guard on/off transitions only.
    turning_off = change & is_on & (wanted == OFF)
    turning_on = change & ~is_on & (wanted > OFF)
    run_served = (now - on_since) >= params.min_run_s
    off_served = (now - off_since) >= params.min_off_s
    allowed = matured & ~(turning_off & ~run_served & ~forced_off) & ~(turning_on & ~off_served)
    point = np.where(change & allowed, wanted, current)
    point, paced = _apply_pacing(fleet, snapshot.pacing, current, point)

    ramp_limited = 0
    if params.ramp_up_mw_per_min is not None:
        point, ramp_limited = _apply_ramp(
            fleet, params=params, state=state, now=now, current=current, point=point
        )

    pending = np.where(change & (point != wanted), wanted, -1)
    new_state = replace(
        state,
        pending_point=pending.astype(np.int64),
        pending_since=np.where(pending >= 0, pending_since, 0.0),
        # Planned transitions start the dwell clocks now; a miner that does not follow the
        # plan shows up at the next decision as a change we did not make.
        on_since=np.where((point > OFF) & ~is_on, now, on_since),
        off_since=np.where((point == OFF) & is_on, now, off_since),
        last_point=point.astype(np.int64),
        last_decided_at=now,
    )
    plan = Plan(
        now=now,
        point=point.astype(np.int64),
        opportunity_cost_usd_per_mwh=c,
        net_hashprice_usd_per_ph_day=hpn,
        failsafe=failsafe,
        ramp_limited=ramp_limited,
        override=instructed.reason,
        bound_by=bound_by,
        paced=paced,
    )
    return plan, new_state


def _apply_pacing(
    fleet: FleetSpec, gate: PacingGate | None, current: IntArray, point: IntArray
) -> tuple[IntArray, IntArray]:
    """Hold raises the gate holds where the miner is headed; the points, and the held."""
    if gate is None:
        return point, np.zeros(0, dtype=np.int64)
    rows = np.arange(fleet.size)
    base = np.where(gate.heading >= 0, gate.heading, current)
    raising = (point != base) & (fleet.power_w[rows, point] > fleet.power_w[rows, base])
    hold = raising & gate.raise_held
    paced: IntArray = np.flatnonzero(hold).astype(np.int64)
    return np.where(hold, base, point), paced


def _dwell_clocks(
    state: PolicyState, current: IntArray, now: EpochS
) -> tuple[FloatArray, FloatArray]:
    """When each miner started running / stopped, from what the miners actually do.

    Changes we did not make (a reboot, a manual stop) restart the clocks too. A miner seen
    for the first time has served its dwell: there is nothing to protect yet.
    """
    was_on = state.last_point > OFF
    is_on = current > OFF
    known = state.last_point >= 0
    on_since = np.where(is_on & known & ~was_on, now, state.on_since)
    off_since = np.where(~is_on & known & was_on, now, state.off_since)
    on_since = np.where(is_on & ~known, -np.inf, on_since)
    off_since = np.where(~is_on & ~known, -np.inf, off_since)
    return on_since, off_since


def _wanted(
    fleet: FleetSpec, params: PolicyParams, snapshot: Snapshot, failsafe: FailSafe | None
) -> tuple[IntArray, float | None, float | None]:
    """The point each miner should be at before delays, dwell and ramp; with ``c`` and ``HPn``."""
    current = snapshot.observed_point
    if failsafe is not None:
        match failsafe.action:
            case FailSafeAction.CURTAIL:
                return np.full(fleet.size, OFF, dtype=np.int64), None, None
            case FailSafeAction.RUN:
                return fleet.top_point.copy(), None, None
            case FailSafeAction.HOLD:
                return current.copy(), None, None
    assert snapshot.price is not None
    assert snapshot.hashprice is not None
    values, c, hpn = economic_points(
        fleet, params, snapshot.price.value, snapshot.hashprice.value, snapshot.now
    )
    if params.hysteresis_usd_per_mwh > 0.0:
        return _apply_hysteresis(fleet, params, values, current), c, hpn
    return best_point(values, fleet.valid), c, hpn


def _apply_hysteresis(
    fleet: FleetSpec, params: PolicyParams, values: FloatArray, current: IntArray
) -> IntArray:
    """Best point among those that beat staying put by more than ``band * |delta MW|``."""
    rows = np.arange(fleet.size)
    v_now = values[rows, current]
    p_now = fleet.power_w[rows, current]
    band_per_w = params.hysteresis_usd_per_mwh / 1e6
    best = current.copy()
    best_v = v_now.copy()
    for j in range(values.shape[1]):  # few points: a loop over columns, vectorised over miners
        v = values[:, j]
        gain_needed = band_per_w * np.abs(fleet.power_w[:, j] - p_now)
        better = fleet.valid[:, j] & (v - v_now > gain_needed) & (v >= best_v)
        best[better] = j
        best_v = np.where(better, v, best_v)
    return best


def _apply_ramp(
    fleet: FleetSpec,
    *,
    params: PolicyParams,
    state: PolicyState,
    now: EpochS,
    current: IntArray,
    point: IntArray,
) -> tuple[IntArray, int]:
    """Admit power increases in merit order within the ramp budget; keep all decreases."""
    assert params.ramp_up_mw_per_min is not None
    rows = np.arange(fleet.size)
    delta_w = fleet.power_w[rows, point] - fleet.power_w[rows, current]
    rising = np.flatnonzero(delta_w > 0)
    if rising.size == 0:
        return point, 0
    elapsed_s = (
        FIRST_DECISION_ELAPSED_S if state.last_decided_at is None else now - state.last_decided_at
    )
    budget_w = params.ramp_up_mw_per_min * 1e6 * max(elapsed_s, 0.0) / 60.0
    # Merit order: the most efficient target points first; ties by miner index for stability.
    target_eff = fleet.power_w[rising, point[rising]] / fleet.hashrate_th[rising, point[rising]]
    order = rising[np.lexsort((rising, target_eff))]
    admitted = np.cumsum(delta_w[order]) <= budget_w + 1e-6
    held = order[~admitted]
    result = point.copy()
    result[held] = current[held]
    return result, int(held.size)
