"""ScaledClock: the simulator's real-time clock with a speed factor."""

from __future__ import annotations

import time

import pytest

from controller.runtime.clocks.simulated import ScaledClock
from simulators.miners.models import S19J_PRO
from simulators.miners.state import MinerState, Mode


async def test_scaled_clock_runs_faster_and_sleeps_shorter() -> None:
    clock = ScaledClock(1_000.0, speed=200.0)
    wall = time.monotonic()
    await clock.sleep_until(clock.now() + 20)  # 0.1 wall seconds
    elapsed_wall = time.monotonic() - wall
    assert 0.09 <= elapsed_wall < 1.0
    assert clock.now() - 1_000.0 == pytest.approx(elapsed_wall * 200, rel=0.05)


async def test_ramp_shrinks_with_the_speed_factor() -> None:
    clock = ScaledClock(0.0, speed=900.0)  # a 90 s ramp takes 0.1 wall seconds
    state = MinerState(S19J_PRO, now=clock.now(), mode=Mode.SLEEP)
    state.wake(clock.now())
    await clock.sleep_until(clock.now() + 90)
    assert state.read(clock.now()).hashrate_th == pytest.approx(104)


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(0.0, speed=0)
