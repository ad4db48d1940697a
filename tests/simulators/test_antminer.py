"""Stock Antminer simulator (4028 + digest-auth CGI on 80) against unmodified pyasic."""

from __future__ import annotations

import errno

import httpx
import pytest

from simulators.miners.host import PortPermissionError, permission_hint
from simulators.miners.miner import Family
from tests.simulators.conftest import FleetFactory, ManualClock
from tests.simulators.helpers import bounded, get_miner, meter_miner, raw_4028


@pytest.mark.parametrize(("model", "expected"), [("S19jPro", "S19j Pro"), ("S21", "S21")])
async def test_get_miner_identifies_stock_antminer_and_model(
    make_fleet: FleetFactory, model: str, expected: str
) -> None:
    fleet, _ = await make_fleet([(Family.ANTMINER, model, 1)])
    miner = await get_miner(fleet.first_ip)
    assert type(miner).__name__ == f"BMMiner{model}"
    assert miner.model == f"{expected} (Stock)"


async def test_get_data_reports_hashrate_fans_temps_and_no_wattage(
    make_fleet: FleetFactory,
) -> None:
    fleet, meter = await make_fleet([(Family.ANTMINER, "S21", 1)])
    miner = await get_miner(fleet.first_ip)
    data = await bounded(miner.get_data())
    truth = await meter_miner(meter, fleet.first_ip)
    assert float(data.hashrate) == pytest.approx(truth["hashrate_th"], rel=0.02)
    assert data.wattage is None  # stock firmware does not report power
    assert [f.speed for f in data.fans] == [6600, 6630, 6660, 6690]
    assert all(b.temp and b.chip_temp for b in data.hashboards)
    assert data.is_mining is True
    assert data.mac == fleet.miners[0].mac


async def test_sleep_and_wake_through_miner_mode_move_the_meter(
    make_fleet: FleetFactory, clock: ManualClock
) -> None:
    fleet, meter = await make_fleet([(Family.ANTMINER, "S19jPro", 1)])
    ip = fleet.first_ip
    miner = await get_miner(ip)
    await bounded(miner.stop_mining())
    clock.advance(5)
    truth = await meter_miner(meter, ip)
    assert (truth["mode"], truth["hashrate_th"]) == ("sleep", 0)
    assert (await bounded(miner.get_data())).is_mining is False

    await bounded(miner.resume_mining())
    clock.advance(30)
    truth = await meter_miner(meter, ip)
    assert truth["mode"] == "normal"
    assert truth["hashrate_th"] == pytest.approx(104 / 3, rel=0.05)


async def test_wrong_digest_credentials_get_401_with_the_antminer_realm(
    make_fleet: FleetFactory,
) -> None:
    fleet, _ = await make_fleet([(Family.ANTMINER, "S19jPro", 2)])
    url = f"http://{fleet.first_ip}/cgi-bin/get_system_info.cgi"
    async with httpx.AsyncClient(timeout=5) as client:
        bad = await client.get(url, auth=httpx.DigestAuth("root", "wrong"))
        good = await client.get(url, auth=httpx.DigestAuth("root", "root"))
    assert bad.status_code == 401
    assert 'realm="antMiner Configuration"' in bad.headers["www-authenticate"]
    assert good.json()["minertype"] == "Antminer S19j Pro"


async def test_unknown_path_is_a_non_json_404(make_fleet: FleetFactory) -> None:
    fleet, _ = await make_fleet([(Family.ANTMINER, "S19jPro", 1)])
    url = f"http://{fleet.first_ip}/kaonsu/v1/brief"
    async with httpx.AsyncClient(timeout=5) as client:
        resp = await client.get(url, auth=httpx.DigestAuth("root", "root"))
    assert resp.status_code == 404
    with pytest.raises(ValueError):
        resp.json()


async def test_api_reply_is_null_terminated_like_cgminer(make_fleet: FleetFactory) -> None:
    fleet, _ = await make_fleet([(Family.ANTMINER, "S19jPro", 1)])
    data = await raw_4028(fleet.first_ip, b'{"command":"version"}')
    assert data.endswith(b"}\x00")
    assert b'"BMMiner"' in data


def test_lack_of_permission_for_port_80_is_explained() -> None:
    hint = permission_hint(OSError(errno.EACCES, "Permission denied"), 80)
    assert isinstance(hint, PortPermissionError)
    assert "root" in str(hint)
    assert "luxos, braiins" in str(hint)


async def test_stock_firmware_has_no_power_limit(make_fleet: FleetFactory) -> None:
    fleet, meter = await make_fleet([(Family.ANTMINER, "S21", 1)])
    miner = await get_miner(fleet.first_ip)
    assert not await bounded(miner.set_power_limit(2000))
    assert (await meter_miner(meter, fleet.first_ip))["power_target_w"] == 3500
