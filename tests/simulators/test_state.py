"""The physics of one simulated miner, in pure simulated time."""

from __future__ import annotations

import pytest

from simulators.miners.models import MODELS, S19J_PRO, MinerModel
from simulators.miners.state import MinerState, Mode

T0 = 1_000.0


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
def test_efficiency_improves_down_to_the_overhead_floor(model: MinerModel) -> None:
    floor = model.efficiency_floor_power_w
    powers = [floor, 0.5 * model.nameplate_power_w, 0.8 * model.nameplate_power_w]
    powers += [model.nameplate_power_w, model.max_power_target_w]
    efficiencies = [model.efficiency_j_per_th(p) for p in powers]
    assert efficiencies == sorted(efficiencies)
    nameplate = model.nameplate_power_w / model.nameplate_hashrate_th
    assert model.efficiency_j_per_th(model.nameplate_power_w) == pytest.approx(nameplate)
    assert model.hashrate_at_th(model.nameplate_power_w) == pytest.approx(
        model.nameplate_hashrate_th
    )


def test_stop_completes_in_seconds_and_leaves_sleep_power() -> None:
    state = MinerState(S19J_PRO, now=T0)
    state.sleep(T0)
    assert state.read(T0 + 1.5).hashrate_th == pytest.approx(52, rel=0.01)
    after = state.read(T0 + 3)
    assert (after.mode, after.hashrate_th, after.power_w) == (Mode.SLEEP, 0.0, 22.0)


@pytest.mark.parametrize(("elapsed_s", "fraction"), [(0, 0.0), (30, 1 / 3), (45, 0.5), (90, 1.0)])
def test_resume_ramps_hashrate_over_90_s(elapsed_s: float, fraction: float) -> None:
    state = MinerState(S19J_PRO, now=T0, mode=Mode.SLEEP)
    state.wake(T0)
    reading = state.read(T0 + elapsed_s)
    assert reading.hashrate_th == pytest.approx(104 * fraction)
    assert reading.power_w == pytest.approx(22 + (3068 - 22) * fraction)


def test_a_clock_jump_lands_on_the_settled_state() -> None:
    state = MinerState(S19J_PRO, now=T0, mode=Mode.SLEEP)
    state.wake(T0)
    state.set_power_target(T0 + 3600, 2000)
    assert state.read(T0 + 3600).hashrate_th == pytest.approx(S19J_PRO.hashrate_at_th(2000))


def test_power_target_is_clamped_to_the_model_range() -> None:
    state = MinerState(S19J_PRO, now=T0)
    assert state.set_power_target(T0, 10) == S19J_PRO.min_power_target_w
    assert state.set_power_target(T0, 10_000) == S19J_PRO.max_power_target_w


def test_drift_wakes_a_sleeping_miner_by_itself() -> None:
    state = MinerState(S19J_PRO, now=T0)
    state.drift_after_s = 60
    state.sleep(T0)
    assert state.read(T0 + 59).mode is Mode.SLEEP
    woke = state.read(T0 + 60 + 45)
    assert woke.mode is Mode.NORMAL
    assert woke.hashrate_th == pytest.approx(52)


def test_reboot_hashes_nothing_then_ramps() -> None:
    state = MinerState(S19J_PRO, now=T0, mode=Mode.SLEEP)
    state.reboot(T0, 60)
    assert state.booting(T0 + 30)
    assert state.read(T0 + 30).hashrate_th == 0
    assert state.read(T0 + 60 + 90).hashrate_th == pytest.approx(104)
    assert state.read(T0 + 60 + 90).mode is Mode.NORMAL


def test_reported_noise_is_small_and_deterministic() -> None:
    a = MinerState(S19J_PRO, now=T0, seed=7)
    b = MinerState(S19J_PRO, now=T0, seed=7)
    readings = [a.read(T0 + 5 * i).reported_hashrate_th for i in range(50)]
    assert readings == [b.read(T0 + 5 * i).reported_hashrate_th for i in range(50)]
    assert len(set(readings)) > 10
    assert all(abs(r - 104) <= 1.04 for r in readings)


def test_fans_and_temperatures_follow_load() -> None:
    state = MinerState(S19J_PRO, now=T0)
    busy = state.read(T0)
    state.sleep(T0)
    idle = state.read(T0 + 10)
    assert min(busy.fan_rpm) > max(idle.fan_rpm)
    assert min(busy.chip_temp_c) > max(idle.chip_temp_c) + 20
