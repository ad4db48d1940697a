"""The site meter: JSON, Prometheus text, and the run-time fault API."""

from __future__ import annotations

import aiohttp
import pytest

from simulators.miners.miner import Family
from tests.simulators.conftest import FleetFactory


async def test_meter_json_and_prometheus_agree(make_fleet: FleetFactory) -> None:
    fleet, meter = await make_fleet([(Family.LUXOS, "S19jPro", 2), (Family.LUXOS, "S21", 1)])
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{meter.url}/meter") as resp:
            data = await resp.json()
        async with session.get(f"{meter.url}/metrics") as resp:
            text = await resp.text()
    assert data["total_power_w"] == pytest.approx(3068 * 2 + 3500)
    assert [m["mode"] for m in data["miners"]] == ["normal"] * 3
    assert f"hashspark_sim_site_power_watts {data['total_power_w']}" in text
    line = (
        f'hashspark_sim_miner_power_target_watts{{ip="{fleet.last_ip}",family="luxos",'
        f'model="Antminer S21"}} 3500.0'
    )
    assert line in text


async def test_fault_api_applies_lists_and_clears(make_fleet: FleetFactory) -> None:
    fleet, meter = await make_fleet([(Family.LUXOS, "S19jPro", 4)])
    async with aiohttp.ClientSession() as session:
        body = {"fault": {"kind": "slow", "latency_s": 0.5}, "fraction": 0.5, "seed": 3}
        async with session.post(f"{meter.url}/faults", json=body) as resp:
            assert resp.status == 200
            applied = await resp.json()
        assert len(applied["miners"]) == 2
        async with session.get(f"{meter.url}/faults") as resp:
            listed = await resp.json()
        assert sorted(listed) == sorted(applied["miners"])
        bad = {"fault": {"kind": "gremlins"}, "miners": [fleet.first_ip]}
        async with session.post(f"{meter.url}/faults", json=bad) as resp:
            assert resp.status == 400
            assert "unknown fault kind" in (await resp.json())["error"]
        async with session.delete(f"{meter.url}/faults") as resp:
            assert resp.status == 200
        async with session.get(f"{meter.url}/faults") as resp:
            assert await resp.json() == {}
