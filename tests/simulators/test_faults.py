"""Each fault mode, injected through the meter API, and what unmodified pyasic sees."""

from __future__ import annotations

import asyncio
import time

import pytest

from simulators.miners.miner import Family
from tests.simulators.conftest import FleetFactory, ManualClock
from tests.simulators.helpers import (
    bounded,
    clear_faults,
    get_miner,
    meter_miner,
    post_fault,
)


async def test_unreachable_miner_is_not_found_and_comes_back_when_cleared(
    make_fleet: FleetFactory,
) -> None:
    fleet, meter = await make_fleet([(Family.LUXOS, "S19jPro", 2)])
    ip = fleet.first_ip
    await post_fault(meter, [ip], {"kind": "unreachable"})
    assert await get_miner(ip) is None
    assert (await meter_miner(meter, ip))["listening"] is False
    assert await get_miner(fleet.last_ip) is not None  # the others keep serving
    await clear_faults(meter, [ip])
    assert await get_miner(ip) is not None


async def test_slow_miner_answers_after_the_latency(make_fleet: FleetFactory) -> None:
    fleet, meter = await make_fleet([(Family.LUXOS, "S19jPro", 1)])
    miner = await get_miner(fleet.first_ip)
    await post_fault(meter, [fleet.first_ip], {"kind": "slow", "latency_s": 1.0})
    started = time.monotonic()
    data = await bounded(miner.get_data())
    assert time.monotonic() - started >= 1.0
    assert float(data.hashrate) > 100


async def test_silent_miner_hangs_pyasic_until_its_deadline(make_fleet: FleetFactory) -> None:
    fleet, meter = await make_fleet([(Family.ANTMINER, "S19jPro", 1)])
    miner = await get_miner(fleet.first_ip)
    await post_fault(meter, [fleet.first_ip], {"kind": "silent"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(miner.get_data(), 1.5)
    assert await get_miner(fleet.first_ip) is None  # discovery gives up after ~3 s


@pytest.mark.parametrize("family", [Family.LUXOS, Family.ANTMINER, Family.BRAIINS])
async def test_liar_acknowledges_stop_and_keeps_mining(
    make_fleet: FleetFactory, clock: ManualClock, family: Family
) -> None:
    fleet, meter = await make_fleet([(family, "S19jPro", 1)])
    miner = await get_miner(fleet.first_ip)
    await post_fault(meter, [fleet.first_ip], {"kind": "liar"})
    assert await bounded(miner.stop_mining()) is True
    clock.advance(10)
    truth = await meter_miner(meter, fleet.first_ip)
    assert (truth["mode"], truth["hashrate_th"]) == ("normal", 104)


@pytest.mark.parametrize(
    ("family", "pyasic_says"),
    [(Family.LUXOS, False), (Family.BRAIINS, False), (Family.ANTMINER, True)],
)
async def test_rejecting_miner_refuses_stop(
    make_fleet: FleetFactory, clock: ManualClock, family: Family, pyasic_says: bool
) -> None:
    fleet, meter = await make_fleet([(family, "S19jPro", 1)])
    miner = await get_miner(fleet.first_ip)
    await post_fault(meter, [fleet.first_ip], {"kind": "reject"})
    # Stock Antminer: pyasic ignores set_miner_conf's reply and always says True.
    assert await bounded(miner.stop_mining()) is pyasic_says
    clock.advance(10)
    assert (await meter_miner(meter, fleet.first_ip))["mode"] == "normal"


async def test_reboot_drops_the_miner_then_it_comes_back_mining(
    make_fleet: FleetFactory, clock: ManualClock
) -> None:
    fleet, meter = await make_fleet([(Family.LUXOS, "S19jPro", 1)])
    ip = fleet.first_ip
    miner = await get_miner(ip)
    await bounded(miner.stop_mining())
    clock.advance(10)
    await post_fault(meter, [ip], {"kind": "reboot", "reboot_s": 60})
    assert await get_miner(ip) is None
    clock.advance(60)
    for _ in range(200):  # the listener restarts on the event loop
        if (await meter_miner(meter, ip))["listening"]:
            break
        await asyncio.sleep(0.01)
    clock.advance(45)
    assert (await meter_miner(meter, ip))["mode"] == "normal"  # curtailment lost
    data = await bounded((await get_miner(ip)).get_data())
    assert float(data.hashrate) == pytest.approx(52, rel=0.05)
    assert data.uptime == 45


async def test_drifting_miner_resumes_by_itself(
    make_fleet: FleetFactory, clock: ManualClock
) -> None:
    fleet, meter = await make_fleet([(Family.BRAIINS, "S19jPro", 1)])
    ip = fleet.first_ip
    miner = await get_miner(ip)
    await post_fault(meter, [ip], {"kind": "drift", "drift_after_s": 120})
    await bounded(miner.stop_mining())
    clock.advance(60)
    assert (await bounded(miner.get_data())).is_mining is False
    clock.advance(60 + 90)
    assert (await meter_miner(meter, ip))["mode"] == "normal"
    assert (await bounded(miner.get_data())).is_mining is True


@pytest.mark.parametrize(
    ("family", "reported_w", "seen"),
    [
        (Family.LUXOS, -5.0, -5),
        (Family.LUXOS, float("nan"), "nan"),  # JSON's NaN token: pyasic reads a float NaN
        (Family.LUXOS, 1e9, 1_000_000_000),
        (Family.BRAIINS, 1e9, 1_000_000_000),  # an unsigned field: magnitude is the lie
    ],
)
async def test_bogus_power_is_the_wattage_pyasic_reads(
    make_fleet: FleetFactory, family: Family, reported_w: float, seen: object
) -> None:
    fleet, meter = await make_fleet([(family, "S19jPro", 1)])
    miner = await get_miner(fleet.first_ip)
    await post_fault(meter, [fleet.first_ip], {"kind": "bogus_power", "reported_w": reported_w})
    data = await bounded(miner.get_data())
    if seen == "nan":
        assert data.wattage is not None
        assert data.wattage != data.wattage
    else:
        assert data.wattage == seen
    assert (await meter_miner(meter, fleet.first_ip))["mode"] == "normal"  # it mines on
