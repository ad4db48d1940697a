"""The meter's per-miner command count: what the chaos tests measure a command storm with.

Real pyasic against one miner of each family on 127.52.3.0/24 (the chaos tests' range).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from simulators.miners.fleet import Fleet, MinerSpec, consecutive_ips
from simulators.miners.meter import Meter
from simulators.miners.miner import Family
from tests.simulators.conftest import T0, ManualClock
from tests.simulators.helpers import bounded, get_miner, post_fault

IPS = consecutive_ips("127.52.3.1", 3)
FAMILIES = (Family.LUXOS, Family.ANTMINER, Family.BRAIINS)


@pytest.fixture
async def fleet_and_meter() -> AsyncIterator[tuple[Fleet, Meter]]:
    """A LuxOS, a stock Antminer and a BOS+ miner, and the meter on a free port."""
    fleet = Fleet(
        [MinerSpec(ip, family, "S19jPro") for ip, family in zip(IPS, FAMILIES, strict=True)],
        ManualClock(T0),
    )
    await fleet.start()
    meter = Meter(fleet, port=0)
    await meter.__aenter__()
    yield fleet, meter
    await meter.__aexit__(None, None, None)
    await fleet.stop()


async def _meter(meter: Meter) -> tuple[dict[str, Any], str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{meter.url}/meter") as resp:
            data = await resp.json()
        async with session.get(f"{meter.url}/metrics") as resp:
            text = await resp.text()
    return data, text


async def test_commands_are_counted_per_miner_reads_are_not(
    fleet_and_meter: tuple[Fleet, Meter],
) -> None:
    _fleet, meter = fleet_and_meter
    miners = [await get_miner(ip) for ip in IPS]
    for miner in miners:  # reads of every kind, as a controller's observe does
        await bounded(miner.get_data())
    data, _ = await _meter(meter)
    assert [m["commands"] for m in data["miners"]] == [0, 0, 0]
    assert data["total_commands"] == 0

    for miner in miners:
        await bounded(miner.stop_mining())
    await bounded(miners[0].resume_mining())  # LuxOS: a second command to the first miner
    await post_fault(meter, [IPS[2]], {"kind": "reject"})
    assert await bounded(miners[2].stop_mining()) is False  # refused, and still counted

    data, text = await _meter(meter)
    counts = {m["ip"]: m["commands"] for m in data["miners"]}
    assert counts == {IPS[0]: 2, IPS[1]: 1, IPS[2]: 2}
    assert data["total_commands"] == 5
    assert "# TYPE hashspark_sim_site_commands_total counter" in text
    assert "hashspark_sim_site_commands_total 5" in text
    line = f'hashspark_sim_miner_commands_total{{ip="{IPS[1]}",family="antminer",'
    assert f'{line}model="Antminer S19j Pro"}} 1' in text
