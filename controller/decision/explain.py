"""Why a plan is what it is: per config group, what runs and at what margin, and the rule.

Pure. The site loop logs a ``decision`` line when a plan changes and publishes the groups
and the reason in its status; ``hashspark explain`` prints ``explain()``, which runs
``decide()`` itself, so what it says cannot drift from what the daemon does.

Groups are the config's (``sites.miners[k]``), not models: two groups of one model with
other firmware or curves are told apart. Energy hashprice, breakeven and margin follow
ECONOMICS.md: ``EHP = HPn * 1000 / (24 * E)``, breakeven = EHP less the consumption
adders, margin = EHP less the opportunity cost ``c`` (a point runs iff its margin >= 0
when the economics decide and it is the miner's only point).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from controller.accounting.instruments import as_stack
from controller.decision.economics import energy_hashprice_usd_per_mwh
from controller.decision.policy import (
    Plan,
    PolicyParams,
    PolicyState,
    Snapshot,
    decide,
    supply_state,
)
from controller.domain import OFF, BoolArray, FleetSpec, IntArray

#: The rules that decide a plan, strongest first.
RULES = ("failsafe", "override", "site_cap", "economics")


@dataclass(frozen=True, slots=True)
class PointEconomics:
    """One operating point of a group's curve, what it earns per MWh, and who is there."""

    point: int  # the point's column in the fleet (1 = lowest power)
    hashrate_th: float
    power_w: float
    energy_hashprice_usd_per_mwh: float | None  # None: no hashprice to value it with
    breakeven_usd_per_mwh: float | None  # energy hashprice less the consumption adders
    margin_usd_per_mwh: float | None  # energy hashprice less the opportunity cost
    miners: int  # the group's miners at this point

    @property
    def efficiency_j_per_th(self) -> float:
        """Watts per TH/s."""
        return self.power_w / self.hashrate_th


@dataclass(frozen=True, slots=True)
class GroupState:
    """One config group: how many miners run, throttle, are off; its economics."""

    group: int  # index in ``sites.miners``
    name: str
    model: str
    miners: int
    running: int  # at the top point
    throttled: int  # at a lower power point
    curtailed: int  # off
    unreachable: int
    load_mw: float
    energy_hashprice_usd_per_mwh: float | None  # at the group's nominal efficiency
    breakeven_usd_per_mwh: float | None
    margin_usd_per_mwh: float | None
    points: tuple[PointEconomics, ...]  # by increasing power

    def counts(self) -> tuple[int, int, int]:
        """(running, throttled, curtailed)."""
        return self.running, self.throttled, self.curtailed


@dataclass(frozen=True, slots=True)
class Reason:
    """The rule that decided a plan, in words and as fields."""

    rule: str  # one of RULES
    detail: str
    override_id: str | None = None
    override_kind: str | None = None
    ramp_limited: int = 0  # miners whose increase waits for ramp budget

    def as_dict(self) -> dict[str, object]:
        """The reason as a JSON object."""
        return {
            "rule": self.rule,
            "detail": self.detail,
            "override": None
            if self.override_id is None
            else {"id": self.override_id, "kind": self.override_kind},
            "ramp_limited": self.ramp_limited,
        }


@dataclass(frozen=True, slots=True)
class GroupChange:
    """A group whose counts changed between two plans."""

    group: int
    name: str
    before: tuple[int, int, int]  # (running, throttled, curtailed)
    after: tuple[int, int, int]

    def describe(self) -> str:
        """``running 4->0, curtailed 0->4``."""
        parts = [
            f"{label} {a}->{b}"
            for label, a, b in zip(
                ("running", "throttled", "curtailed"), self.before, self.after, strict=True
            )
            if a != b
        ]
        return ", ".join(parts)


def reason_of(plan: Plan) -> Reason:
    """The rule that decided ``plan``: a fail-safe, a binding override, the site's cap, or
    the economics; with the miners the ramp limit holds back."""
    ramp = plan.ramp_limited
    held = f"; ramp limit holds {ramp} miners back" if ramp else ""
    if plan.failsafe is not None:
        return Reason(
            "failsafe", f"fail-safe {plan.failsafe.action}: {plan.failsafe.reason}{held}",
            ramp_limited=ramp,
        )  # fmt: skip
    if plan.bound_by == "site_cap":
        return Reason("site_cap", f"the site's power cap binds{held}", ramp_limited=ramp)
    if plan.bound_by is not None:
        kind, _, oid = plan.bound_by.partition(":")
        return Reason(
            "override", f"{kind} {oid} overrides the economics{held}",
            override_id=oid, override_kind=kind, ramp_limited=ramp,
        )  # fmt: skip
    c = plan.opportunity_cost_usd_per_mwh
    detail = "each point runs iff its energy hashprice covers the opportunity cost"
    if c is not None:
        detail += f" ({c:.2f} USD/MWh)"
    return Reason("economics", detail + held, ramp_limited=ramp)


def group_states(
    fleet: FleetSpec,
    point: IntArray,
    reachable: BoolArray,
    *,
    net_hashprice_usd_per_ph_day: float | None,
    opportunity_cost_usd_per_mwh: float | None,
    adders_usd_per_mwh: float,
) -> tuple[GroupState, ...]:
    """Each config group's counts at ``point`` and its economics at the given prices."""
    hpn = net_hashprice_usd_per_ph_day
    c = opportunity_cost_usd_per_mwh
    top = point == fleet.top_point
    p_w = fleet.power_at(point)
    p_h = fleet.hashrate_at(point)

    def value(
        h: float, w: float
    ) -> tuple[float | None, float | None, float | None]:  # EHP, breakeven, margin
        if hpn is None:
            return None, None, None
        ehp = float(energy_hashprice_usd_per_mwh(hpn, w / h))
        return ehp, ehp - adders_usd_per_mwh, None if c is None else ehp - c

    out: list[GroupState] = []
    for g, name in enumerate(fleet.group_names):
        members = fleet.group_of == g
        n = int(members.sum())
        if n == 0:
            continue
        rows = np.flatnonzero(members)
        curves = fleet.class_rows[np.unique(fleet.class_of[rows])]
        seen: set[tuple[float, float]] = set()
        for r in curves.tolist():
            for j in np.flatnonzero(fleet.valid[r]).tolist():
                if j != OFF:
                    seen.add((float(fleet.hashrate_th[r, j]), float(fleet.power_w[r, j])))
        points = []
        for k, (h, w) in enumerate(sorted(seen, key=lambda p: (p[1], p[0])), start=1):
            at = int(np.count_nonzero(members & (p_w == w) & (p_h == h) & (point > OFF)))
            ehp, be, margin = value(h, w)
            points.append(PointEconomics(k, h, w, ehp, be, margin, at))
        nominal_w = float(fleet.nominal_power_w[rows].sum())
        ehp, be, margin = value(float(fleet.nominal_hashrate_th[rows].sum()), nominal_w)
        on = members & reachable
        out.append(
            GroupState(
                group=g,
                name=name,
                model=fleet.group_model(g),
                miners=n,
                running=int(np.count_nonzero(on & top)),
                throttled=int(np.count_nonzero(on & ~top & (point > OFF))),
                curtailed=int(np.count_nonzero(on & (point == OFF))),
                unreachable=int(np.count_nonzero(members & ~reachable)),
                load_mw=float(p_w[rows].sum()) / 1e6,
                energy_hashprice_usd_per_mwh=ehp,
                breakeven_usd_per_mwh=be,
                margin_usd_per_mwh=margin,
                points=tuple(points),
            )
        )
    return tuple(out)


def changes(
    before: tuple[GroupState, ...] | None, after: tuple[GroupState, ...]
) -> tuple[GroupChange, ...]:
    """The groups whose (running, throttled, curtailed) differ; every group if no before."""
    old = {} if before is None else {g.group: g.counts() for g in before}
    return tuple(
        GroupChange(g.group, g.name, old.get(g.group, (0, 0, 0)), g.counts())
        for g in after
        if old.get(g.group) != g.counts()
    )


@dataclass(frozen=True, slots=True)
class Explanation:
    """What a site would do at a snapshot, per group and per point, and why."""

    plan: Plan
    reason: Reason
    groups: tuple[GroupState, ...]  # as planned
    waiting: int  # miners whose wanted change waits on delays, dwell or the ramp


def settled(params: PolicyParams) -> PolicyParams:
    """The same policy without its timing rules (delays, dwell, ramp): where the site goes
    once they have run their course. Hysteresis stays (it depends on where miners are)."""
    return replace(
        params,
        curtail_delay_s=0.0,
        resume_delay_s=0.0,
        min_run_s=0.0,
        min_off_s=0.0,
        ramp_up_mw_per_min=None,
    )


def explain(
    fleet: FleetSpec,
    params: PolicyParams,
    snapshot: Snapshot,
    state: PolicyState | None = None,
) -> Explanation:
    """Run ``decide()`` on the snapshot and say, per group and per point, what and why."""
    plan, new_state = decide(
        fleet, params, snapshot, state if state is not None else PolicyState.initial(fleet.size)
    )
    groups = group_states(
        fleet,
        plan.point,
        snapshot.reachable,
        net_hashprice_usd_per_ph_day=plan.net_hashprice_usd_per_ph_day,
        opportunity_cost_usd_per_mwh=plan.opportunity_cost_usd_per_mwh,
        adders_usd_per_mwh=params.adders_usd_per_mwh,
    )
    waiting = int(np.count_nonzero(new_state.pending_point >= 0))
    reason = reason_of(plan)
    if reason.rule == "economics":  # with contract tranches, say what each span costs
        reason = replace(reason, detail=reason.detail + stack_detail(params, snapshot))
    return Explanation(plan, reason, groups, waiting)


def stack_detail(params: PolicyParams, snapshot: Snapshot) -> str:
    """With contract tranches: what each span of the load costs, most efficient miners first."""
    stack = as_stack(params.supply)
    if not stack.tranches or snapshot.price is None:
        return ""
    state = supply_state(params, snapshot.price.value, snapshot.now)
    ids = [stack.tranches[k].id for k in state.order[0].tolist()] + ["spot"]
    lows = (np.concatenate([[0.0], state.upper_w[0, :-1]]) / 1e6).tolist()
    costs = state.cost_usd_per_mwh[0].tolist()
    spans = [f"{i} from {a:g} MW at {c:.2f}" for i, a, c in zip(ids, lows, costs, strict=True)]
    return "; with contract tranches each miner pays those its load falls in: " + ", ".join(spans)


def assumed_points(fleet: FleetSpec, at_point: dict[int, list[tuple[float, int]]]) -> IntArray:
    """Every miner's point from per-group counts: ``{group: [(power_w, miners), ...]}``.

    Miners of a group fill the listed powers in order (the point of that power on their
    own curve, the nearest if theirs lacks it); the rest are off. What ``explain`` assumes
    when it knows only a running daemon's counts.
    """
    point = np.zeros(fleet.size, dtype=np.int64)
    for g, levels in at_point.items():
        rows = np.flatnonzero(fleet.group_of == g)
        i = 0
        for power_w, n in levels:
            take = rows[i : i + n]
            gap = np.abs(fleet.power_w[take, 1:] - power_w)
            gap[~fleet.valid[take, 1:]] = np.inf
            point[take] = np.argmin(gap, axis=1) + 1 if take.size else point[take]
            i += take.size
    return point
