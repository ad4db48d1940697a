"""Actuation pacing as tables: raise intervals, lowerings that never wait, capped backoff.

The rules are in ``controller.decision.pacing``; ``decide`` holds gated raises where the
miner is headed. The site loop's use of them is in ``tests/test_pacing_loop.py``.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.accounting.instruments import SpotSupply
from controller.config import load_config
from controller.config.pacing import PacingConfig
from controller.decision import pacing
from controller.decision.pacing import PacingParams, PacingState
from controller.decision.policy import PolicyParams, PolicyState, Snapshot, decide
from controller.domain import OFF, Reading, build_fleet
from controller.runtime.config_base import ConfigError
from tests.scenario_kit import write_scenario

T0 = 1_750_000_000.0
P = PacingParams()  # the defaults: 60 s between a command and a raise, 10 s repeat floor
ONE = np.array([0], dtype=np.int64)
S19_W = 3068.0


def _sent(state: PacingState, *, raises: bool, at: float, w: float = 0.0) -> PacingState:
    return pacing.sent(state, ONE, np.array([w]), raises=raises, now=at)


def _settled(state: PacingState, ok: bool, at: float, params: PacingParams = P) -> PacingState:
    return pacing.settled(params, state, ONE, np.array([ok]), now=at)


def _raise_due(state: PacingState, at: float, params: PacingParams = P) -> bool:
    return bool(pacing.raise_due(params, state, at, ONE)[0])


def _lower_due(state: PacingState, at: float, w: float = 0.0, params: PacingParams = P) -> bool:
    return bool(pacing.lowering_due(params, state, at, ONE, np.array([w]))[0])


def test_nothing_sent_nothing_held() -> None:
    s = PacingState.initial(1)
    assert _raise_due(s, T0)
    assert _lower_due(s, T0)


def test_a_resume_after_a_curtail_waits_the_raise_interval() -> None:
    s = _settled(_sent(PacingState.initial(1), raises=False, at=T0), True, T0 + 1)
    assert not _raise_due(s, T0 + 59.9)
    assert _raise_due(s, T0 + 60.0)


def test_a_raise_after_a_raise_waits_too() -> None:
    s = _settled(_sent(PacingState.initial(1), raises=True, at=T0, w=S19_W), True, T0 + 1)
    assert not _raise_due(s, T0 + 30)
    assert _raise_due(s, T0 + 60)


def test_a_curtail_right_after_a_resume_is_never_held() -> None:
    # The spike comes 0.1 s after the resume went out, and the resume even failed.
    s = _sent(PacingState.initial(1), raises=True, at=T0, w=S19_W)
    s = _settled(s, False, T0 + 0.05)  # rejected: backoff runs
    assert s.in_backoff(T0 + 0.1)[0]
    assert _lower_due(s, T0 + 0.1)


def test_a_repeated_lowering_waits_the_floor_but_a_deeper_one_does_not() -> None:
    s = _sent(PacingState.initial(1), raises=False, at=T0, w=1750.0)  # throttled down
    assert not _lower_due(s, T0 + 1, w=1750.0)  # the same again: a repeat
    assert _lower_due(s, T0 + 1, w=0.0)  # off: deeper, never held
    assert _lower_due(s, T0 + 10, w=1750.0)  # the floor has passed


def test_backoff_doubles_per_failure_up_to_the_cap_and_an_applied_command_resets_it() -> None:
    params = PacingParams(
        min_raise_interval_s=0.0,
        min_lower_interval_s=0.0,
        backoff_initial_s=10.0,
        backoff_max_s=60.0,
    )
    s = PacingState.initial(1)
    t = T0
    waits = []
    for _ in range(6):
        s = _settled(_sent(s, raises=True, at=t, w=S19_W), False, t, params)
        waits.append(float(s.retry_at[0] - t))
        assert not _raise_due(s, t + waits[-1] - 0.01, params)
        assert _raise_due(s, t + waits[-1], params)
        t += waits[-1]
    assert waits == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    assert int(s.failures[0]) == 6
    s = _settled(_sent(s, raises=True, at=t, w=S19_W), True, t, params)
    assert int(s.failures[0]) == 0
    assert not s.in_backoff(t)[0]


def test_a_repeated_lowering_of_a_rejecting_miner_backs_off() -> None:
    s = _settled(_sent(PacingState.initial(1), raises=False, at=T0), False, T0 + 1)
    assert not _lower_due(s, T0 + 10.5)  # floor passed, backoff (10 s from T0 + 1) not
    assert _lower_due(s, T0 + 11)


def test_off_holds_nothing() -> None:
    off = PacingParams.off()
    s = _sent(PacingState.initial(1), raises=False, at=T0)
    assert _raise_due(s, T0, off)
    assert _lower_due(s, T0, params=off)
    s = _settled(s, False, T0, off)
    assert _raise_due(s, T0, off)


def test_reasons_name_backoff_first() -> None:
    s = _settled(_sent(PacingState.initial(2), raises=False, at=T0), False, T0)
    both = np.array([0, 1], dtype=np.int64)
    s = pacing.sent(s, both, np.array([0.0, 0.0]), raises=False, now=T0)
    got = pacing.reasons(s, T0 + 1, both, np.array([True, True]))
    assert got == ["backoff", "resume_interval"]
    assert pacing.reasons(s, T0 + 1, both[1:], np.array([False])) == ["curtail_repeat"]


def test_next_release_is_when_a_held_miner_may_go() -> None:
    s = _sent(PacingState.initial(1), raises=False, at=T0)
    assert pacing.next_release(P, s, ONE, T0 + 1) == T0 + 10  # the floor, then the raise
    assert pacing.next_release(P, s, ONE, T0 + 10) == T0 + 60
    assert pacing.next_release(P, s, ONE, T0 + 61) is None


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.floats(0, 600, allow_nan=False), min_size=1, max_size=200),
    wants_up=st.lists(st.booleans(), min_size=200, max_size=200),
    outcomes=st.lists(st.booleans(), min_size=200, max_size=200),
)
def test_whatever_is_asked_raises_respect_the_interval_and_follow_a_lowering(
    times: list[float], wants_up: list[bool], outcomes: list[bool]
) -> None:
    """A sender that asks at random times for random directions, with random outcomes:
    raises are at least the interval apart, and (single-point miner) every lowering but
    the first follows a raise or the repeat floor."""
    s = PacingState.initial(1)
    raises: list[float] = []
    lowers: list[float] = []
    last_raise_after_lower = True
    for t, up, ok in zip(sorted(times), wants_up, outcomes, strict=False):
        now = T0 + t
        if up and _raise_due(s, now):
            s = _settled(_sent(s, raises=True, at=now, w=S19_W), ok, now)
            raises.append(now)
            last_raise_after_lower = True
        elif not up and _lower_due(s, now):
            assert last_raise_after_lower or not lowers or now - lowers[-1] >= 10.0
            s = _settled(_sent(s, raises=False, at=now), ok, now)
            lowers.append(now)
            last_raise_after_lower = False
    assert all(b - a >= 60.0 for a, b in itertools.pairwise(raises))
    span = max(times) - min(times)
    assert len(raises) <= P.raise_bound(span)


# --- the gate in decide ----------------------------------------------------------------

FLEET = build_fleet([("Antminer S19j Pro", 2, [(104.0, 3068.0)])])
PARAMS = PolicyParams(supply=SpotSupply())


def _snap(now: float, price: float, point: list[int], gate: pacing.PacingGate) -> Snapshot:
    return Snapshot(
        now=now,
        price=Reading(price, now, "test"),
        hashprice=Reading(50.0, now, "test"),
        observed_point=np.array(point, dtype=np.int64),
        reachable=np.ones(FLEET.size, dtype=bool),
        pacing=gate,
    )


def test_decide_holds_a_gated_raise_with_its_change_pending() -> None:
    s = pacing.sent(PacingState.initial(2), ONE, np.array([0.0]), raises=False, now=T0)
    no_flight = np.full(2, -1, dtype=np.int64)
    gate = pacing.gate(P, s, T0 + 5, no_flight)
    plan, state = decide(
        FLEET, PARAMS, _snap(T0 + 5, 20.0, [OFF, OFF], gate), PolicyState.initial(2)
    )
    assert plan.point.tolist() == [OFF, 1]  # miner 0 was curtailed 5 s ago: it waits
    assert plan.paced.tolist() == [0]
    assert state.pending_point.tolist() == [1, -1]
    later = pacing.gate(P, s, T0 + 60, no_flight)
    plan, _ = decide(FLEET, PARAMS, _snap(T0 + 60, 20.0, [OFF, 1], later), state)
    assert plan.point.tolist() == [1, 1]
    assert plan.paced.size == 0


def test_decide_never_holds_a_lowering() -> None:
    s = pacing.sent(PacingState.initial(2), ONE, np.array([0.0]), raises=False, now=T0)
    gate = pacing.gate(P, s, T0 + 1, np.full(2, -1, dtype=np.int64))
    plan, _ = decide(FLEET, PARAMS, _snap(T0 + 1, 5000.0, [1, 1], gate), PolicyState.initial(2))
    assert plan.point.tolist() == [OFF, OFF]
    assert plan.paced.size == 0


def test_a_held_raise_keeps_the_curtail_in_flight() -> None:
    # Miner 0 is being told to stop (in flight) when the price falls again: the plan keeps
    # the curtail (no resume inside the interval), rather than cancelling it and resuming.
    s = pacing.sent(PacingState.initial(2), ONE, np.array([0.0]), raises=False, now=T0)
    gate = pacing.gate(P, s, T0 + 1, np.array([OFF, -1], dtype=np.int64))
    plan, _ = decide(FLEET, PARAMS, _snap(T0 + 1, 20.0, [1, 1], gate), PolicyState.initial(2))
    assert plan.point.tolist() == [OFF, 1]
    assert plan.paced.tolist() == [0]


def test_without_a_gate_decide_is_unchanged() -> None:
    snap = _snap(T0, 20.0, [OFF, OFF], pacing.gate(P, PacingState.initial(2), T0, np.full(2, -1)))
    gated, _ = decide(FLEET, PARAMS, snap, PolicyState.initial(2))
    plain, _ = decide(FLEET, PARAMS, replace(snap, pacing=None), PolicyState.initial(2))
    assert gated.point.tolist() == plain.point.tolist() == [1, 1]


# --- config ----------------------------------------------------------------------------


def test_config_defaults_are_the_core_defaults() -> None:
    assert PacingConfig().params() == PacingParams()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("min_raise_interval_s", -1.0),
        ("min_raise_interval_s", 1e9),
        ("min_lower_interval_s", 3_601.0),
        ("backoff_initial_s", -5.0),
        ("backoff_max_s", 1e300),
    ],
)
def test_config_refuses_values_out_of_bounds(key: str, value: float) -> None:
    with pytest.raises(ValidationError, match=key):
        PacingConfig.model_validate({key: value})


def test_config_refuses_a_cap_below_the_first_wait() -> None:
    with pytest.raises(ValidationError, match="backoff_max_s"):
        PacingConfig(backoff_initial_s=60.0, backoff_max_s=30.0)


# --- per group -------------------------------------------------------------------------

GROUPS = (
    '[[sites.miners]]\nmodel = "Antminer S19j Pro"\ncount = 2\n'
    "curve = [{ hashrate_th = 104, power_w = 3068 }]\n\n"
    '[[sites.miners]]\nmodel = "Antminer S21"\ncount = 3\n'
    "curve = [{ hashrate_th = 200, power_w = 3500 }]\n"
    "[sites.miners.pacing]\nmin_raise_interval_s = 300\nbackoff_max_s = 1200\n"
)


def test_a_group_sets_its_own_pacing_and_inherits_the_rest(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, [(T0, 20.0)], [(T0, 50.0)], miners=GROUPS)
    site = load_config(path).config.sites[0]
    params = site.pacing_params()
    assert np.asarray(params.min_raise_interval_s).tolist() == [60.0] * 2 + [300.0] * 3
    assert np.asarray(params.backoff_max_s).tolist() == [600.0] * 2 + [1200.0] * 3
    assert np.asarray(params.min_lower_interval_s).tolist() == [10.0] * 5  # the site's
    assert params.raise_bound(600.0) == 11  # the shortest interval bounds the fleet


def test_without_group_settings_the_site_pacing_is_one_value(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, [(T0, 20.0)], [(T0, 50.0)])
    assert load_config(path).config.sites[0].pacing_params() == PacingParams()


def test_a_group_whose_cap_falls_below_the_sites_first_wait_is_refused(tmp_path: Path) -> None:
    bad = GROUPS.replace("backoff_max_s = 1200", "backoff_max_s = 5")
    path = write_scenario(tmp_path, [(T0, 20.0)], [(T0, 50.0)], miners=bad)
    with pytest.raises(ConfigError, match=r"miners\[1\]\.pacing: .*backoff_max_s 5"):
        load_config(path)


def test_per_miner_intervals_hold_each_miner_by_its_own() -> None:
    params = PacingParams(
        min_raise_interval_s=np.array([0.0, 300.0]),
        min_lower_interval_s=np.array([0.0, 10.0]),
        backoff_initial_s=np.array([0.0, 10.0]),
        backoff_max_s=np.array([0.0, 600.0]),
    )
    both = np.array([0, 1], dtype=np.int64)
    s = pacing.sent(PacingState.initial(2), both, np.zeros(2), raises=False, now=T0)
    assert pacing.raise_due(params, s, T0 + 1, both).tolist() == [True, False]
    assert pacing.lowering_due(params, s, T0 + 1, both, np.zeros(2)).tolist() == [True, False]
    s = pacing.settled(params, s, both, np.array([False, False]), now=T0)
    assert s.in_backoff(T0 + 1).tolist() == [False, True]  # 0: no backoff for miner 0
    assert pacing.next_release(params, s, both[1:], T0 + 1) == T0 + 10
