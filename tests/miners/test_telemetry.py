"""Telemetry to operating points, and what confirms a command (pure tables)."""

from __future__ import annotations

import pytest

from adapters.miners.telemetry import (
    Curve,
    Telemetry,
    Thresholds,
    confirms,
    implausible,
    point_of,
    rebooted_within,
)
from controller.domain import OFF

CURVE = Curve(
    power_w=(0.0, 1841.0, 3068.0), hashrate_th=(0.0, 80.6, 104.0), valid=(True,) * 3, top=2
)
TH = Thresholds()


def tel(
    h: float | None, w: float | None, limit: float | None = None, mining: bool | None = True
) -> Telemetry:
    return Telemetry(hashrate_th=h, power_w=w, power_limit_w=limit, is_mining=mining)


@pytest.mark.parametrize(
    ("t", "can_throttle", "point"),
    [
        (tel(0.0, 22.0, 3068.0), True, OFF),  # LuxOS curtailed: is_mining stays True
        (tel(None, 22.0, 3068.0), True, OFF),  # asleep by power alone
        (tel(0.0, None, None, False), False, OFF),  # stock asleep: no wattage
        (tel(104.0, 3068.0, 3068.0), True, 2),
        (tel(30.0, 900.0, 1841.0), True, 1),  # ramping towards its 1,841 W target
        (tel(80.0, 1850.0, None), True, 1),  # no target reported: nearest to its wattage
        (tel(200.0, None, None), False, 2),  # stock mining, no wattage: the top point
        (tel(80.0, 1850.0, None), False, 2),  # cannot throttle: running is the top point
    ],
)
def test_point_of(t: Telemetry, can_throttle: bool, point: int) -> None:
    assert point_of(t, CURVE, TH, can_throttle=can_throttle) == point


@pytest.mark.parametrize(
    ("t", "target", "resumed", "power_target_w", "ok"),
    [
        (tel(0.0, 22.0), OFF, False, None, True),
        (tel(104.0, 3068.0), OFF, False, None, False),  # the liar's read-back
        (tel(None, None), OFF, False, None, False),  # no telemetry confirms nothing
        (tel(5.0, 250.0), 2, True, None, True),  # climbing past 3 %
        (tel(1.0, 60.0), 2, True, None, False),  # not yet
        (tel(5.0, 250.0, 3068.0), 2, True, 3068.0, True),  # climbing with the target set
        (tel(5.0, 250.0, 3068.0), 1, True, 1841.0, False),  # target not taken
        (tel(80.0, 1850.0, 1841.0), 1, False, 1841.0, True),  # throttled: wattage near
        (tel(90.0, 2400.0, 1841.0), 1, False, 1841.0, False),  # target set, wattage not there
        (tel(0.0, 22.0), 2, True, None, False),  # still asleep
    ],
)
def test_confirms(
    t: Telemetry, target: int, resumed: bool, power_target_w: float | None, ok: bool
) -> None:
    assert (
        confirms(t, CURVE, TH, target=target, resumed=resumed, power_target_w=power_target_w) is ok
    )


@pytest.mark.parametrize(
    ("uptime_s", "elapsed_s", "rebooted"),
    [
        (None, 10.0, False),
        (3.0, 10.0, True),
        (11.0, 10.0, True),
        (13.0, 10.0, False),
        (86_400.0, 10.0, False),
    ],
)
def test_a_miner_that_booted_during_the_command_rebooted(
    uptime_s: float | None, elapsed_s: float, rebooted: bool
) -> None:
    t = Telemetry(
        hashrate_th=100.0, power_w=3000.0, power_limit_w=None, is_mining=True, uptime_s=uptime_s
    )
    assert rebooted_within(t, elapsed_s) is rebooted


@pytest.mark.parametrize(
    ("t", "problem"),
    [
        (tel(0.0, -5.0), "power -5 W is negative"),  # was taken for asleep, booked curtailed
        (tel(104.0, float("nan")), "power nan is not finite"),
        (tel(float("nan"), 3068.0), "hashrate nan is not finite"),
        (tel(104.0, float("inf")), "power inf is not finite"),
        (tel(104.0, 1e308), "power 1e+308 W is over 10x the nameplate"),
        (tel(1e308, 3068.0), "hashrate 1e+308 TH/s is over 10x the nameplate"),
        (tel(-1.0, None, None, False), "hashrate -1 TH/s is negative"),
        (tel(104.0, 3068.0, float("nan")), "power target nan is not finite"),
        (tel(104.0, 3068.0, -3068.0), "power target -3068 W is negative"),
        (
            Telemetry(
                hashrate_th=104.0, power_w=3068.0, power_limit_w=None, is_mining=True, uptime_s=-1.0
            ),
            "uptime -1 s is negative",
        ),
    ],
)
def test_impossible_telemetry_is_a_fault_not_a_state(t: Telemetry, problem: str) -> None:
    assert implausible(t, CURVE) == problem


@pytest.mark.parametrize(
    "t",
    [
        tel(0.0, 22.0, 3068.0),  # asleep
        tel(0.0, 0.0, None, False),  # asleep, 0 W
        tel(104.0, 3068.0, 3068.0),
        tel(110.0, 3300.0, 5000.0),  # a little over nameplate: overclocked, not impossible
        tel(None, None),
        tel(1000.0, 30000.0),  # just under 10x
    ],
)
def test_physical_telemetry_is_plausible(t: Telemetry) -> None:
    assert implausible(t, CURVE) is None
