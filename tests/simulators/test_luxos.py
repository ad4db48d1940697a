"""LuxOS simulator against the pinned, unmodified pyasic; the meter is the ground truth."""

from __future__ import annotations

import pytest

from simulators.miners.miner import Family
from tests.simulators.conftest import FleetFactory, ManualClock
from tests.simulators.helpers import bounded, get_miner, meter_miner, parse_4028, raw_4028


@pytest.mark.parametrize(
    ("model", "expected"),
    [("S19jPro", "S19j Pro (LuxOS)"), ("S21", "S21 (LuxOS)")],
)
async def test_get_miner_identifies_luxos_and_model(
    make_fleet: FleetFactory, model: str, expected: str
) -> None:
    fleet, _ = await make_fleet([(Family.LUXOS, model, 1)])
    miner = await get_miner(fleet.first_ip)
    assert miner is not None
    assert type(miner).__name__.startswith("LUXMiner")
    assert miner.model == expected


async def test_get_data_reports_hashrate_fans_temps_wattage(make_fleet: FleetFactory) -> None:
    fleet, meter = await make_fleet([(Family.LUXOS, "S19jPro", 1)])
    miner = await get_miner(fleet.first_ip)
    data = await bounded(miner.get_data())
    truth = await meter_miner(meter, fleet.first_ip)
    assert float(data.hashrate) == pytest.approx(truth["hashrate_th"], rel=0.02)
    assert data.wattage == pytest.approx(truth["power_w"], abs=1)
    assert data.wattage_limit == 3068
    assert [f.speed for f in data.fans] == [6000, 6030, 6060, 6090]
    assert data.temperature_avg is not None
    assert 40 < data.temperature_avg < 80
    assert len(data.hashboards) == 3
    assert all(b.chip_temp and b.chip_temp > b.temp for b in data.hashboards if b.temp)


async def test_stop_resume_follow_the_meter_including_the_ramp(
    make_fleet: FleetFactory, clock: ManualClock
) -> None:
    fleet, meter = await make_fleet([(Family.LUXOS, "S19jPro", 1)])
    ip = fleet.first_ip
    miner = await get_miner(ip)

    await bounded(miner.stop_mining())
    clock.advance(5)
    asleep = await meter_miner(meter, ip)
    assert asleep["mode"] == "sleep"
    assert asleep["hashrate_th"] == 0
    assert asleep["power_w"] < 50

    await bounded(miner.resume_mining())
    clock.advance(45)
    halfway = await meter_miner(meter, ip)
    assert halfway["mode"] == "normal"
    assert halfway["hashrate_th"] == pytest.approx(52, rel=0.05)  # half of 104 TH/s
    data = await bounded(miner.get_data())
    assert float(data.hashrate) == pytest.approx(52, rel=0.05)

    clock.advance(60)
    assert (await meter_miner(meter, ip))["hashrate_th"] == pytest.approx(104, rel=0.001)


async def test_set_power_limit_picks_a_profile_and_moves_the_meter(
    make_fleet: FleetFactory,
) -> None:
    fleet, meter = await make_fleet([(Family.LUXOS, "S19jPro", 1)])
    miner = await get_miner(fleet.first_ip)
    assert await bounded(miner.set_power_limit(2000)) is True
    truth = await meter_miner(meter, fleet.first_ip)
    assert truth["power_target_w"] == 1841  # the highest profile at or below 2000 W
    assert truth["power_w"] == pytest.approx(1841, abs=1)
    assert truth["hashrate_th"] < 104 * 0.8
    data = await bounded(miner.get_data())
    assert data.wattage_limit == 1841


async def test_batched_command_answers_each_part_and_closes(make_fleet: FleetFactory) -> None:
    fleet, _ = await make_fleet([(Family.LUXOS, "S19jPro", 1)])
    reply = parse_4028(await raw_4028(fleet.first_ip, b'{"command":"version+power+bogus"}'))
    assert reply["version"][0]["VERSION"][0]["Type"] == "Antminer S19j Pro"
    assert reply["power"][0]["POWER"][0]["Watts"] == 3068
    assert reply["bogus"][0]["STATUS"][0]["Msg"] == "Invalid command"


async def test_privileged_command_needs_the_session(make_fleet: FleetFactory) -> None:
    fleet, meter = await make_fleet([(Family.LUXOS, "S19jPro", 1)])
    reply = parse_4028(
        await raw_4028(fleet.first_ip, b'{"command":"curtail","parameter":"nope,sleep"}')
    )
    assert reply["STATUS"][0]["STATUS"] == "E"
    assert (await meter_miner(meter, fleet.first_ip))["mode"] == "normal"


async def test_one_session_at_a_time_like_luxos(make_fleet: FleetFactory) -> None:
    fleet, _ = await make_fleet([(Family.LUXOS, "S19jPro", 1)])
    ip = fleet.first_ip
    first = parse_4028(await raw_4028(ip, b'{"command":"logon"}'))
    sid = first["SESSION"][0]["SessionID"]
    assert sid
    second = parse_4028(await raw_4028(ip, b'{"command":"logon"}'))
    assert (second["STATUS"][0]["Code"], "SESSION" in second) == (402, False)
    session = parse_4028(await raw_4028(ip, b'{"command":"session"}'))
    assert session["SESSION"][0]["SessionID"] == sid
    logoff = b'{"command":"logoff","parameter":"' + sid.encode() + b'"}'
    assert parse_4028(await raw_4028(ip, logoff))["STATUS"][0]["STATUS"] == "S"
    again = parse_4028(await raw_4028(ip, b'{"command":"session"}'))
    assert again["SESSION"][0]["SessionID"] == ""
