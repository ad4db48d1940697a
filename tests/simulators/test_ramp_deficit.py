"""What a simulated miner's resume ramp holds back, against a miner that resumes at once."""

from __future__ import annotations

import pytest

from simulators.miners.models import S19J_PRO
from simulators.miners.state import MinerState, Mode

T0 = 1_000.0
TH = S19J_PRO.nameplate_hashrate_th
ABOVE_SLEEP_W = S19J_PRO.nameplate_power_w - S19J_PRO.sleep_power_w


def _asleep(ramp_s: float = 90.0) -> MinerState:
    return MinerState(S19J_PRO, now=T0, mode=Mode.SLEEP, ramp_s=ramp_s)


@pytest.mark.parametrize(
    ("elapsed_s", "load_s"),
    [
        (0.0, 0.0),
        (45.0, 45.0 - 45.0**2 / 180),  # integral of 1 - t/90 over the first half
        (90.0, 45.0),  # a whole ramp: half its length at full
        (3600.0, 45.0),  # and nothing more once at full
    ],
)
def test_a_ramp_holds_back_the_integral_of_what_it_has_not_reached(
    elapsed_s: float, load_s: float
) -> None:
    state = _asleep()
    state.wake(T0 + 100)
    th_s, w_s = state.ramp_deficit(T0 + 100 + elapsed_s)
    assert th_s == pytest.approx(TH * load_s)
    assert w_s == pytest.approx(ABOVE_SLEEP_W * load_s)
    assert state.ramp_ups == 1


def test_an_interrupted_ramp_stops_counting_and_a_second_one_adds_up() -> None:
    state = _asleep()
    state.wake(T0)
    state.sleep(T0 + 30)  # 30 s in: load 1/3
    first = 30 - 30**2 / 180
    assert state.ramp_deficit(T0 + 500)[0] == pytest.approx(TH * first)
    state.wake(T0 + 1000)
    assert state.ramp_deficit(T0 + 2000)[0] == pytest.approx(TH * (first + 45))
    assert state.ramp_ups == 2


def test_no_ramp_holds_nothing_back() -> None:
    state = _asleep(ramp_s=0.0)
    state.wake(T0)
    assert state.read(T0).hashrate_th == pytest.approx(TH)
    assert state.ramp_deficit(T0 + 600) == (0.0, 0.0)


def test_a_running_miner_told_to_resume_starts_no_ramp() -> None:
    state = MinerState(S19J_PRO, now=T0)
    state.wake(T0 + 10)
    assert state.ramp_ups == 0
    assert state.ramp_deficit(T0 + 600) == (0.0, 0.0)
