"""Braiins OS+ simulator (gRPC 50051 + BOSminer 4028) against unmodified pyasic."""

from __future__ import annotations

import pytest
from grpclib import GRPCError, Status
from grpclib.client import Channel
from pyasic.web.braiins_os.proto.braiins.bos.v1 import GetMinerStatsRequest, MinerServiceStub

from simulators.miners.miner import Family
from tests.simulators.conftest import FleetFactory, ManualClock
from tests.simulators.helpers import bounded, get_miner, meter_miner


@pytest.mark.parametrize(("model", "expected"), [("S19jPro", "S19j Pro"), ("S21", "S21")])
async def test_get_miner_identifies_braiins_and_model(
    make_fleet: FleetFactory, model: str, expected: str
) -> None:
    fleet, _ = await make_fleet([(Family.BRAIINS, model, 1)])
    miner = await get_miner(fleet.first_ip)
    assert type(miner).__name__ == f"BOSMiner{model}"
    assert miner.model == f"{expected} (BOS+)"


async def test_get_data_reports_hashrate_fans_temps_wattage(make_fleet: FleetFactory) -> None:
    fleet, meter = await make_fleet([(Family.BRAIINS, "S19jPro", 1)])
    miner = await get_miner(fleet.first_ip)
    data = await bounded(miner.get_data())
    truth = await meter_miner(meter, fleet.first_ip)
    assert float(data.hashrate) == pytest.approx(truth["hashrate_th"], rel=0.02)
    assert data.wattage == round(truth["power_w"])
    assert data.wattage_limit == 3068
    assert [f.speed for f in data.fans] == [6000, 6030, 6060, 6090]
    assert all(b.temp and b.chip_temp for b in data.hashboards)
    assert data.is_mining is True


async def test_pause_resume_and_power_target_move_the_meter(
    make_fleet: FleetFactory, clock: ManualClock
) -> None:
    fleet, meter = await make_fleet([(Family.BRAIINS, "S21", 1)])
    ip = fleet.first_ip
    miner = await get_miner(ip)

    assert await bounded(miner.set_power_limit(2500)) is True
    truth = await meter_miner(meter, ip)
    assert truth["power_target_w"] == 2500
    assert truth["power_w"] == pytest.approx(2500)
    assert await bounded(miner.set_power_limit(100)) is False  # below the model's range
    assert (await meter_miner(meter, ip))["power_target_w"] == 2500

    await bounded(miner.stop_mining())
    clock.advance(5)
    truth = await meter_miner(meter, ip)
    assert (truth["mode"], truth["hashrate_th"]) == ("sleep", 0)
    assert (await bounded(miner.get_data())).is_mining is False

    await bounded(miner.resume_mining())
    clock.advance(45)
    truth = await meter_miner(meter, ip)
    assert truth["hashrate_th"] == pytest.approx(fleet.miners[0].model.hashrate_at_th(2500) / 2)


async def test_grpc_without_a_token_is_unauthenticated(make_fleet: FleetFactory) -> None:
    fleet, _ = await make_fleet([(Family.BRAIINS, "S19jPro", 1)])
    async with Channel(fleet.first_ip, 50051) as channel:
        with pytest.raises(GRPCError) as raised:
            await MinerServiceStub(channel).get_miner_stats(GetMinerStatsRequest(), timeout=5)
    assert raised.value.status is Status.UNAUTHENTICATED
