"""The decision core as tables: pure rule, fail-safes, hysteresis, delays, dwell, ramp."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.accounting.instruments import FixedPpa, SpotSupply
from controller.decision.economics import energy_hashprice_usd_per_mwh
from controller.decision.overrides import Override
from controller.decision.policy import PolicyParams, PolicyState, Snapshot, decide
from controller.domain import OFF, FailSafeAction, FleetSpec, Reading, build_fleet

HP = 50.0
S19_EHP = float(energy_hashprice_usd_per_mwh(HP, 3068 / 104))  # 70.62
S21_EHP = float(energy_hashprice_usd_per_mwh(HP, 17.5))  # 119.05


def fleet() -> FleetSpec:
    """Two S19j Pro then two S21, one point each."""
    return build_fleet(
        [("Antminer S19j Pro", 2, [(104.0, 3068.0)]), ("Antminer S21", 2, [(200.0, 3500.0)])]
    )


def snap(
    f: FleetSpec,
    now: float,
    price: float | None,
    point: np.ndarray | None = None,
    price_at: float | None = None,
    hp_at: float | None = None,
    reachable: np.ndarray | None = None,
) -> Snapshot:
    return Snapshot(
        now=now,
        price=None
        if price is None
        else Reading(price, now if price_at is None else price_at, "test"),
        hashprice=Reading(HP, now if hp_at is None else hp_at, "test"),
        observed_point=f.top_point.copy() if point is None else point,
        reachable=np.ones(f.size, dtype=bool) if reachable is None else reachable,
    )


def run(
    f: FleetSpec,
    params: PolicyParams,
    steps: list[tuple[float, float]],
    start_point: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Decide at each (time, price), with miners obeying at once; return the plans."""
    state = PolicyState.initial(f.size)
    point = f.top_point.copy() if start_point is None else start_point
    plans = []
    for now, price in steps:
        plan, state = decide(f, params, snap(f, now, price, point), state)
        point = plan.point
        plans.append(point.copy())
    return plans


PURE = PolicyParams(supply=SpotSupply())


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (-50.0, [1, 1, 1, 1]),
        (S19_EHP - 0.01, [1, 1, 1, 1]),
        (S19_EHP + 0.01, [0, 0, 1, 1]),  # merit order: the least efficient curtail first
        (S21_EHP + 0.01, [0, 0, 0, 0]),
        (4857.82, [0, 0, 0, 0]),
    ],
)
def test_pure_rule_and_merit_order(price: float, expected: list[int]) -> None:
    f = fleet()
    plan, _ = decide(f, PURE, snap(f, 0.0, price), PolicyState.initial(f.size))
    assert plan.point.tolist() == expected
    assert plan.failsafe is None


def test_capped_ppa_keeps_efficient_miners_on_above_the_strike() -> None:
    f = fleet()
    params = PolicyParams(supply=FixedPpa(1.0, 45.0, resale_cap_usd_per_mwh=100.0))
    plan, _ = decide(f, params, snap(f, 0.0, 4000.0), PolicyState.initial(f.size))
    assert plan.point.tolist() == [0, 0, 1, 1]  # S21 EHP 119 > strike 100; S19j Pro 70.6 < 100
    assert plan.opportunity_cost_usd_per_mwh == 100.0


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (FailSafeAction.HOLD, [0, 0, 1, 1]),
        (FailSafeAction.CURTAIL, [0, 0, 0, 0]),
        (FailSafeAction.RUN, [1, 1, 1, 1]),
    ],
)
def test_failsafe_on_stale_price(action: FailSafeAction, expected: list[int]) -> None:
    f = fleet()
    params = replace(PURE, price_max_age_s=900.0, failsafe_action=action)
    current = np.array([0, 0, 1, 1])
    plan, _ = decide(
        f, params, snap(f, 1000.0, 10.0, current, price_at=0.0), PolicyState.initial(f.size)
    )
    assert plan.point.tolist() == expected
    assert plan.failsafe is not None
    assert plan.failsafe.action is action
    assert "price stale: 1000 s old >= 900 s" in plan.failsafe.reason


def test_failsafe_on_missing_and_stale_hashprice() -> None:
    f = fleet()
    params = replace(PURE, hashprice_max_age_s=3600.0, failsafe_action=FailSafeAction.CURTAIL)
    plan, _ = decide(f, params, snap(f, 7200.0, None, hp_at=0.0), PolicyState.initial(f.size))
    assert plan.failsafe is not None
    assert "price missing" in plan.failsafe.reason
    assert "hashprice stale" in plan.failsafe.reason
    assert plan.point.tolist() == [0, 0, 0, 0]


def test_reading_exactly_max_age_old_is_stale() -> None:
    f = fleet()
    params = replace(PURE, price_max_age_s=900.0)
    fresh, _ = decide(f, params, snap(f, 899.0, 10.0, price_at=0.0), PolicyState.initial(f.size))
    stale, _ = decide(f, params, snap(f, 900.0, 10.0, price_at=0.0), PolicyState.initial(f.size))
    assert fresh.failsafe is None
    assert stale.failsafe is not None


def test_hysteresis_band_needs_the_price_to_cross_it() -> None:
    f = fleet()
    params = replace(PURE, hysteresis_usd_per_mwh=5.0)
    plans = run(
        f,
        params,
        [
            (0.0, S19_EHP + 4.0),  # inside the band: S19s keep running
            (60.0, S19_EHP + 6.0),  # beyond it: they curtail
            (120.0, S19_EHP - 4.0),  # inside the band: they stay off
            (180.0, S19_EHP - 6.0),  # beyond it: they resume
        ],
    )
    assert [p[:2].tolist() for p in plans] == [[1, 1], [0, 0], [0, 0], [1, 1]]


def test_delays_need_a_persistent_signal() -> None:
    f = fleet()
    params = replace(PURE, curtail_delay_s=120.0, resume_delay_s=300.0)
    high, low = S21_EHP + 50.0, 10.0
    plans = run(
        f,
        params,
        [
            (0.0, high),
            (60.0, high),
            (120.0, high),  # curtails at 120 s, not before
            (180.0, low),
            (240.0, high),  # a short dip resets the resume wait
            (300.0, low),
            (480.0, low),
            (600.0, low),  # resumes 300 s after the signal began
        ],
    )
    on = [int(p.sum() > 0) for p in plans]
    assert on == [1, 1, 0, 0, 0, 0, 0, 1]


def test_minimum_run_and_off_times() -> None:
    f = fleet()
    params = replace(PURE, min_run_s=600.0, min_off_s=300.0)
    high, low = S21_EHP + 50.0, 10.0
    start = np.zeros(f.size, dtype=np.int64)
    plans = run(
        f,
        params,
        [
            (0.0, low),  # first sight: no dwell owed, starts at once
            (60.0, high),  # ran only 60 s of 600: stays on
            (600.0, high),  # served: stops
            (700.0, low),  # off 100 s of 300: stays off
            (900.0, low),  # served: starts
        ],
        start_point=start,
    )
    on = [int(p.sum() > 0) for p in plans]
    assert on == [1, 1, 0, 0, 1]


def test_curtail_failsafe_overrides_minimum_run_time() -> None:
    f = fleet()
    params = replace(
        PURE, min_run_s=3600.0, price_max_age_s=900.0, failsafe_action=FailSafeAction.CURTAIL
    )
    state = PolicyState.initial(f.size)
    stopped = np.zeros(f.size, dtype=np.int64)
    plan, state = decide(f, params, snap(f, 0.0, 10.0, stopped), state)
    assert plan.point.tolist() == [1, 1, 1, 1]
    plan, _ = decide(f, params, snap(f, 1000.0, 10.0, plan.point, price_at=0.0), state)
    assert plan.point.tolist() == [0, 0, 0, 0]


def test_ramp_limit_admits_the_most_efficient_first_and_never_limits_curtailment() -> None:
    f = fleet()
    # 3.5 kW per 30 s: exactly one S21 per minute of elapsed time.
    params = replace(PURE, ramp_up_mw_per_min=0.0035)
    state = PolicyState.initial(f.size)
    point = np.zeros(f.size, dtype=np.int64)
    plan, state = decide(f, params, snap(f, 0.0, 10.0, point), state)
    assert plan.point.tolist() == [0, 0, 1, 0]  # first decision: one minute of budget
    assert plan.ramp_limited == 3
    plan, state = decide(f, params, snap(f, 60.0, 10.0, plan.point), state)
    assert plan.point.tolist() == [0, 0, 1, 1]
    plan, state = decide(f, params, snap(f, 180.0, 10.0, plan.point), state)
    assert plan.point.tolist() == [1, 1, 1, 1]  # two minutes: 6.9 kW of budget for 6.1 kW
    plan, _ = decide(f, params, snap(f, 181.0, 5000.0, plan.point), state)
    assert plan.point.tolist() == [0, 0, 0, 0]  # curtailment is never ramp-limited


def test_unreachable_miners_are_planned_where_they_are() -> None:
    f = fleet()
    reachable = np.array([True, False, True, True])
    plan, _ = decide(
        f, PURE, snap(f, 0.0, 5000.0, reachable=reachable), PolicyState.initial(f.size)
    )
    assert plan.point.tolist() == [0, 1, 0, 0]


def test_throttle_moves_between_curve_points() -> None:
    f = build_fleet([("S19j Pro tuned", 1, [(70.0, 1750.0), (104.0, 3068.0)])])
    low_ehp = float(energy_hashprice_usd_per_mwh(HP, 1750 / 70))
    plan, _ = decide(f, PURE, snap(f, 0.0, S19_EHP + 1.0), PolicyState.initial(1))
    assert plan.point.tolist() == [1]  # underclocked still pays
    plan, _ = decide(f, PURE, snap(f, 0.0, low_ehp + 1.0), PolicyState.initial(1))
    assert plan.point.tolist() == [OFF]


def test_decide_is_pure() -> None:
    f = fleet()
    s = snap(f, 0.0, 90.0)
    state = PolicyState.initial(f.size)
    before = state.pending_point.copy()
    a, sa = decide(f, PURE, s, state)
    b, sb = decide(f, PURE, s, state)
    assert a.point.tolist() == b.point.tolist()
    assert state.pending_point.tolist() == before.tolist()
    assert sa.last_decided_at == sb.last_decided_at == 0.0


def _naive_hysteresis(
    h: list[float], w: list[float], hpn: float, c: float, band: float, cur: int
) -> int:
    """Reference: leave the current point only for one that gains more than band x |delta MW|."""
    # Same arithmetic order as the core, so that exact ties round the same way.
    values = [hh * (hpn / 24000) - ww * (c / 1e6) for hh, ww in zip(h, w, strict=True)]
    best = cur
    for j in range(len(h)):
        gains = j != cur and values[j] - values[cur] > band / 1e6 * abs(w[j] - w[cur])
        if gains and (best == cur or values[j] >= values[best]):
            best = j
    return best


@settings(max_examples=200, deadline=None)
@given(
    price=st.floats(-200, 2000, allow_nan=False),
    band=st.floats(0.01, 50),  # band 0 is the pure rule (ties run), tested above
    cur=st.integers(0, 3),
    hpn=st.floats(20, 120),
)
def test_hysteresis_matches_a_per_miner_reference(
    price: float, band: float, cur: int, hpn: float
) -> None:
    f = build_fleet([("tuned", 1, [(70.0, 1750.0), (90.0, 2430.0), (104.0, 3068.0)])])
    params = replace(PURE, hysteresis_usd_per_mwh=band)
    s = Snapshot(
        0.0, Reading(price, 0.0, "t"), Reading(hpn, 0.0, "t"), np.array([cur]), np.array([True])
    )
    plan, _ = decide(f, params, s, PolicyState.initial(1))
    h = f.hashrate_th[0].tolist()
    w = f.power_w[0].tolist()
    assert plan.point[0] == _naive_hysteresis(h, w, hpn, price, band, cur)


# --- overrides --------------------------------------------------------------------------


def _with(
    f: FleetSpec, now: float, price: float, overrides: tuple[Override, ...], **kw: object
) -> Snapshot:
    s = snap(f, now, price, **kw)  # type: ignore[arg-type]
    return replace(s, overrides=overrides)


def test_demand_response_caps_the_site_shedding_the_least_efficient_first() -> None:
    f = fleet()
    dr = Override("dr-1", "demand_response", start=0.0, end=3600.0, max_mw=0.0075)
    plan, _ = decide(f, PURE, _with(f, 10.0, 20.0, (dr,)), PolicyState.initial(f.size))
    assert plan.point.tolist() == [0, 0, 1, 1]  # 7.0 kW of S21s fit under 7.5 kW
    assert plan.override == "demand_response:dr-1"
    after, _ = decide(f, PURE, _with(f, 3600.0, 20.0, (dr,)), PolicyState.initial(f.size))
    assert after.point.tolist() == [1, 1, 1, 1]  # the cap ended by itself
    assert after.override is None


def test_a_cap_beats_minimum_run_time_and_delays() -> None:
    f = fleet()
    params = replace(PURE, min_run_s=3600.0, curtail_delay_s=600.0)
    state = PolicyState.initial(f.size)
    plan, state = decide(f, params, snap(f, 0.0, 10.0, np.zeros(f.size, dtype=np.int64)), state)
    assert plan.point.tolist() == [1, 1, 1, 1]
    curtail = Override("c-1", "force_curtail", start=0.0, end=7200.0)
    plan, _ = decide(f, params, _with(f, 60.0, 10.0, (curtail,), point=plan.point), state)
    assert plan.point.tolist() == [0, 0, 0, 0]


def test_peak_window_applies_only_inside_the_window() -> None:
    f = fleet()
    peak = Override("4cp", "peak_window", start=1000.0, end=2000.0)
    before, _ = decide(f, PURE, _with(f, 999.0, 10.0, (peak,)), PolicyState.initial(f.size))
    during, _ = decide(f, PURE, _with(f, 1000.0, 10.0, (peak,)), PolicyState.initial(f.size))
    assert before.point.tolist() == [1, 1, 1, 1]
    assert during.point.tolist() == [0, 0, 0, 0]


def test_force_resume_runs_through_a_spike_but_not_through_a_failsafe() -> None:
    f = fleet()
    resume = Override("r-1", "force_resume", start=0.0, end=3600.0)
    plan, _ = decide(f, PURE, _with(f, 10.0, 5000.0, (resume,)), PolicyState.initial(f.size))
    assert plan.point.tolist() == [1, 1, 1, 1]
    params = replace(PURE, price_max_age_s=60.0, failsafe_action=FailSafeAction.CURTAIL)
    stale, _ = decide(
        f, params, _with(f, 100.0, 20.0, (resume,), price_at=0.0), PolicyState.initial(f.size)
    )
    assert stale.point.tolist() == [0, 0, 0, 0]


def test_the_lowest_cap_wins_over_force_resume() -> None:
    f = fleet()
    overrides = (
        Override("r", "force_resume", start=0.0, end=3600.0),
        Override("dr", "demand_response", start=0.0, end=3600.0, max_mw=0.004),
    )
    plan, _ = decide(f, PURE, _with(f, 10.0, 5000.0, overrides), PolicyState.initial(f.size))
    assert plan.point.tolist() == [0, 0, 1, 0]  # one S21 fits; among equals the lower index runs
    assert plan.override == "demand_response:dr"


def test_unreachable_miners_count_against_the_cap_but_are_not_chosen() -> None:
    f = fleet()
    reachable = np.array([False, True, True, True])
    dr = Override("dr", "demand_response", start=0.0, end=3600.0, max_mw=0.0075)
    plan, _ = decide(
        f, PURE, _with(f, 10.0, 20.0, (dr,), reachable=reachable), PolicyState.initial(f.size)
    )
    # The unreachable S19 keeps drawing 3.07 kW: the other S19 and one S21 must go.
    assert plan.point.tolist() == [1, 0, 0, 1] or plan.point.tolist() == [1, 0, 1, 0]
    assert float(f.power_at(plan.point).sum()) <= 7500.0


def test_release_after_a_cap_is_ramp_limited() -> None:
    f = fleet()
    params = replace(PURE, ramp_up_mw_per_min=0.0035)
    dr = Override("dr", "demand_response", start=0.0, end=600.0, max_mw=0.0)
    state = PolicyState.initial(f.size)
    plan, state = decide(f, params, _with(f, 0.0, 20.0, (dr,)), state)
    assert plan.point.tolist() == [0, 0, 0, 0]
    plan, state = decide(f, params, _with(f, 600.0, 20.0, (dr,), point=plan.point), state)
    # Ten minutes of budget at 3.5 kW/min would allow all; a 60 s cycle allows one S21.
    plan, _ = decide(
        f,
        params,
        _with(f, 660.0, 20.0, (dr,), point=np.zeros(4, dtype=np.int64)),
        replace(state, last_decided_at=600.0),
    )
    assert plan.point.tolist() == [0, 0, 1, 0]
