"""``replay --live-path --decisions``: what the printer says for each kind of reason.

Synthetic plans and statuses, no miners; the printer on a real live-path run is tested in
``test_replay_live.py``.
"""

from __future__ import annotations

import io

import numpy as np

from controller.app.replay.decisions import CycleView, DecisionLog
from controller.app.replay_cmd import LiveProgress
from controller.decision.policy import FailSafe, Plan
from controller.domain import FailSafeAction, FleetSpec, Reading, build_fleet
from controller.status import GridStatus, ModelStatus, SiteStatus

T0 = 1_724_184_000.0  # 2024-08-20T20:00:00Z
FLEET = build_fleet(
    [
        ("Antminer S19j Pro", 2, [(104.0, 3068.0)]),
        ("Antminer S21", 1, [(100.0, 1750.0), (200.0, 3500.0)]),
    ]
)
FAMILIES = ("luxos", "antminer", "braiins")
EHP = {"Antminer S19j Pro": 59.11, "Antminer S21": 99.64}


def _view(
    point: list[int],
    *,
    at: float = T0,
    price: float = 69.22,
    cost: float | None = None,
    failsafe: FailSafe | None = None,
    override: str | None = None,
    grid: tuple[GridStatus, ...] = (),
    ramp_limited: int = 0,
    fleet: FleetSpec = FLEET,
) -> CycleView:
    c = price if cost is None else cost
    plan = Plan(
        now=at,
        point=np.array(point, dtype=np.int64),
        opportunity_cost_usd_per_mwh=None if failsafe else c,
        net_hashprice_usd_per_ph_day=None if failsafe else 42.0,
        failsafe=failsafe,
        ramp_limited=ramp_limited,
        override=override,
    )
    models = tuple(
        ModelStatus(
            model=name,
            energy_hashprice_usd_per_mwh=None if failsafe else EHP[name],
            breakeven_usd_per_mwh=None if failsafe else EHP[name],
            running=0,
            throttled=0,
            curtailed=0,
            unreachable=0,
            load_mw=0.0,
        )
        for name in fleet.model_names
    )
    status = SiteStatus(
        site_id="hb-south",
        at=at,
        price=Reading(price, at - 60, "recorded"),
        hashprice=Reading(43.0, at - 3600, "recorded"),
        opportunity_cost_usd_per_mwh=plan.opportunity_cost_usd_per_mwh,
        net_hashprice_usd_per_ph_day=plan.net_hashprice_usd_per_ph_day,
        decision_reason="economics",
        failsafe_reason=None if failsafe is None else failsafe.reason,
        models=models,
        load_mw=0.0,
        nominal_mw=fleet.nominal_mw,
        spread_usd_per_mwh=None,
        ramp_limited=ramp_limited,
        grid=grid,
    )
    return CycleView(fleet, FAMILIES, plan, status)


def _printed(*views: CycleView, note: str | None = None) -> str:
    out = io.StringIO()
    log = DecisionLog(out, note=note)
    for view in views:
        log(view)
    return out.getvalue()


def test_the_first_cycle_says_what_runs_by_model_and_family_then_only_changes_print() -> None:
    text = _printed(_view([1, 1, 2], price=22.75), _view([1, 1, 2], at=T0 + 900, price=30.0))
    assert text.splitlines()[:2] == [
        "  decisions   each change of plan as the site loop makes it (times UTC)",
        "  miners      3 simulated: luxos 1, antminer 1, braiins 1",
    ]
    assert "2024-08-20T20:00:00Z  price 22.75 USD/MWh  -> 3/3 mining" in text
    assert "start: Antminer S19j Pro 2/2 mining (luxos 1, antminer 1)" in text
    assert "start: Antminer S21 1/1 mining (braiins 1)" in text
    assert "why: economics: price below the energy hashprice of Antminer S19j Pro" in text
    assert "20:15:00Z" not in text  # same plan, same grounds: nothing to say


def test_a_curtail_names_the_models_families_and_the_prices_that_decided_it() -> None:
    text = _printed(_view([1, 1, 2], price=22.75), _view([0, 0, 2], at=T0 + 900))
    block = text.split("2024-08-20T20:15:00Z", 1)[1]
    lines = [line.strip() for line in block.splitlines()]
    assert lines[0] == "price 69.22 USD/MWh  -> 1/3 mining"
    assert lines[1] == "curtail 2 Antminer S19j Pro (luxos 1, antminer 1)"
    why = " ".join(lines[2:])
    assert why == (
        "why: economics: price above the energy hashprice of Antminer S19j Pro (59.11), "
        "below that of Antminer S21 (99.64)"
    )
    assert all(len(line) <= 100 for line in text.splitlines())


def test_throttle_resume_and_the_opportunity_cost_when_it_is_not_the_price() -> None:
    text = _printed(
        _view([0, 0, 2], price=150.0),
        _view([1, 0, 1], at=T0 + 900, price=150.0, cost=80.0),  # resale capped at 80
    )
    assert "throttle 1 Antminer S21 (braiins 1)" in text
    assert "resume 1 Antminer S19j Pro (luxos 1)" in text
    assert "opportunity cost 80.00 USD/MWh above the energy hashprice of" in text


def test_fail_safe_override_and_ramp_are_named_even_when_no_miner_moves() -> None:
    stale = FailSafe(FailSafeAction.HOLD, "price stale: 7300 s old >= 7200 s (recorded)")
    cap = (GridStatus("peak_window", "4cp-1", 0.004, True),)
    text = _printed(
        _view([1, 1, 2], price=22.75),
        _view([1, 1, 2], at=T0 + 900, failsafe=stale),
        _view([1, 1, 2], at=T0 + 1800),
        _view([0, 1, 2], at=T0 + 2700, price=22.75, override="peak_window:4cp-1", grid=cap),
        _view([1, 1, 2], at=T0 + 3600, price=22.75, ramp_limited=1),
    )
    assert "no change" in text
    assert "why: fail-safe (hold): price stale: 7300 s old >= 7200 s (recorded)" in text
    assert "20:30:00Z" in text  # the fail-safe cleared: the economics decide again
    assert "why: override peak_window:4cp-1 (target 0.004 MW)" in text
    assert "; ramp limit: 1 miner held back" in " ".join(text.split())


def test_the_note_says_which_families_were_left_out() -> None:
    note = "family auto: luxos+braiins; antminer left out (port 80 needs root)"
    assert f"              {note}\n" in _printed(_view([1, 1, 2]), note=note)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_is_erased_before_a_decision_and_drawn_again_after() -> None:
    stream = _Terminal()
    progress = LiveProgress(T0, T0 + 3600, stream, clock=lambda: 1.0)
    progress(T0 + 900, 10.0)
    progress.clear()
    progress.clear()  # nothing drawn: nothing to erase
    progress(T0 + 1800, 20.0)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r\033[K") == 1
    assert text.index("\r\033[K") < text.index("50.0%")
    assert text.endswith("\n")
