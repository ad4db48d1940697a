"""Curtail, resume and throttle through the real pyasic and asic-rs, confirmed against the meter.

The behaviour tests run against both drivers (``driver_kind``; the asic-rs runs are in the
slow suite), where the driver supports the command on the firmware (``family_drivers``).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from controller.decision.reconcile import CommandBatch, Rejected
from controller.domain import OFF
from simulators.miners.miner import Family
from tests.miners.conftest import DRIVER_KINDS, SiteFactory, family_drivers

FAMILIES = [Family.LUXOS, Family.ANTMINER, Family.BRAIINS]


def everyone(n: int, point: int) -> CommandBatch:
    return CommandBatch(miner=np.arange(n, dtype=np.int64), point=np.full(n, point))


@pytest.mark.parametrize(("family", "driver_kind"), family_drivers(FAMILIES))
async def test_curtail_then_resume_is_confirmed_and_the_meter_agrees(
    make_site: SiteFactory, family: Family, driver_kind: str
) -> None:
    site = await make_site([(family, "S19jPro", 3)])
    observed = await site.driver.observe()
    assert observed.point.tolist() == [2, 2, 2]  # nameplate

    report = await site.driver.apply(everyone(3, OFF))
    assert report.applied.tolist() == [0, 1, 2], report.failed
    assert len(report.confirmation_s) == 3
    assert all(0 < s < 4.0 for s in report.confirmation_s)
    truth = await site.truth()
    assert all(truth[ip]["mode"] == "sleep" and truth[ip]["hashrate_th"] == 0 for ip in site.ips)
    assert (await site.driver.observe()).point.tolist() == [OFF] * 3

    report = await site.driver.apply(everyone(3, 2))
    assert report.applied.tolist() == [0, 1, 2], report.failed
    truth = await site.truth()
    assert all(truth[ip]["mode"] == "normal" and truth[ip]["hashrate_th"] > 0 for ip in site.ips)
    assert (await site.driver.observe()).point.tolist() == [2, 2, 2]


@pytest.mark.parametrize(("family", "driver_kind"), family_drivers([Family.BRAIINS]))
async def test_throttle_is_confirmed_by_wattage_near_the_target(
    make_site: SiteFactory, family: Family, driver_kind: str
) -> None:
    site = await make_site([(family, "S19jPro", 2)])
    await site.driver.observe()
    report = await site.driver.apply(everyone(2, 1))  # 1,841 W
    assert report.applied.tolist() == [0, 1], report.failed
    truth = await site.truth()
    for ip in site.ips:
        assert truth[ip]["power_w"] == pytest.approx(1841, rel=0.05)
    assert (await site.driver.observe()).point.tolist() == [1, 1]


async def test_luxos_throttle_through_pyasic_is_confirmed(make_site: SiteFactory) -> None:
    await test_throttle_is_confirmed_by_wattage_near_the_target(make_site, Family.LUXOS, "pyasic")


@pytest.mark.parametrize("driver_kind", ["asic-rs"])
async def test_asic_rs_cannot_throttle_luxos_and_the_mask_says_so(
    make_site: SiteFactory, driver_kind: str
) -> None:
    """asic-rs 0.8.6 has no power limit for LuxOS: the capability says so, nothing is sent."""
    site = await make_site([(Family.LUXOS, "S21", 1)])
    caps = site.driver.capabilities[0]
    assert caps is not None
    assert (caps.firmware, caps.can_stop, caps.can_throttle) == ("luxos", True, False)
    assert site.driver.allowed_points().tolist() == [[True, False, True]]
    await site.driver.observe()
    report = await site.driver.apply(everyone(1, 1))
    match report.failed:
        case ((0, Rejected(reason)),):
            assert "cannot throttle" in reason
        case other:
            pytest.fail(f"expected the throttle rejected, got {other}")
    truth = await site.truth()
    assert truth[site.ips[0]]["power_w"] == pytest.approx(3500, rel=0.02)  # untouched


@pytest.mark.parametrize("driver_kind", DRIVER_KINDS)
async def test_stock_antminer_cannot_throttle_and_the_mask_says_so(
    make_site: SiteFactory, driver_kind: str
) -> None:
    site = await make_site([(Family.ANTMINER, "S21", 1), (Family.LUXOS, "S21", 1)])
    if driver_kind == "asic-rs":  # nor LuxOS through asic-rs (see the test above)
        assert site.driver.allowed_points().tolist()[0] == [True, False, True]
        return
    mask = site.driver.allowed_points()
    assert mask.tolist() == [[True, False, True], [True, True, True]]
    restricted = site.driver.restricted_fleet()
    assert restricted.valid.tolist() == [[True, True, False], [True, True, True]]
    assert restricted.nominal_power_w.tolist() == [3500.0, 3500.0]

    await site.driver.observe()
    report = await site.driver.apply(everyone(2, 1))
    match report.failed:
        case ((0, Rejected(reason)),):
            assert "cannot throttle" in reason
        case other:
            pytest.fail(f"expected the stock miner rejected, got {other}")
    assert report.applied.tolist() == [1]
    truth = await site.truth()
    assert truth[site.ips[0]]["power_w"] == pytest.approx(3500, rel=0.02)  # untouched


async def test_a_driver_restricted_to_capabilities_numbers_points_like_its_fleet(
    make_site: SiteFactory,
) -> None:
    site = await make_site([(Family.ANTMINER, "S21", 1), (Family.LUXOS, "S21", 1)])
    fleet = site.driver.restrict_to_capabilities()
    assert site.driver.fleet is fleet
    assert (await site.driver.observe()).point.tolist() == [1, 2]  # both at nameplate
    report = await site.driver.apply(CommandBatch(np.array([0, 1]), np.array([OFF, 1])))
    assert report.applied.tolist() == [0, 1], report.failed
    truth = await site.truth()
    assert truth[site.ips[0]]["mode"] == "sleep"
    assert truth[site.ips[1]]["power_w"] == pytest.approx(2100, rel=0.05)
    assert (await site.driver.observe()).point.tolist() == [OFF, 1]


@pytest.mark.slow  # an asic-rs run
@pytest.mark.parametrize("driver_kind", ["asic-rs"])
async def test_on_asic_rs_the_plan_gives_luxos_run_or_off_and_braiins_its_power_targets(
    make_site: SiteFactory, driver_kind: str
) -> None:
    """The daemon plans on ``restrict_to_capabilities()``: LuxOS, which asic-rs 0.8.6 cannot
    throttle, is left only off and nameplate; BOS+ keeps every point, and both commands hold."""
    site = await make_site([(Family.LUXOS, "S21", 1), (Family.BRAIINS, "S21", 1)])
    fleet = site.driver.restrict_to_capabilities()
    assert fleet.valid.tolist() == [[True, True, False], [True, True, True]]
    assert (await site.driver.observe()).point.tolist() == [1, 2]  # both at nameplate
    report = await site.driver.apply(CommandBatch(np.array([0, 1]), np.array([OFF, 1])))
    assert report.applied.tolist() == [0, 1], report.failed
    truth = await site.truth()
    assert truth[site.ips[0]]["mode"] == "sleep"
    assert truth[site.ips[1]]["power_w"] == pytest.approx(2100, rel=0.05)
    assert (await site.driver.observe()).point.tolist() == [OFF, 1]


async def test_resume_is_staggered_in_batches(make_site: SiteFactory) -> None:
    site = await make_site([(Family.BRAIINS, "S19jPro", 6)], resume_batch_size=2)
    await site.driver.apply(everyone(6, OFF))
    await site.driver.observe()

    async def watch() -> list[int]:
        counts = []
        for _ in range(200):
            truth = await site.truth()
            counts.append(sum(m["mode"] == "normal" for m in truth.values()))
            if counts[-1] == 6:
                break
            await asyncio.sleep(0.01)
        return counts

    watcher = asyncio.create_task(watch())
    report = await site.driver.apply(everyone(6, 2))
    counts = await watcher
    assert report.applied.size == 6
    assert set(counts) & {2, 4}  # the meter saw the fleet resume two at a time
    assert all(c % 2 == 0 for c in counts)


@pytest.mark.parametrize("driver_kind", DRIVER_KINDS)
async def test_unreachable_miner_keeps_its_last_point_and_is_flagged(
    make_site: SiteFactory, driver_kind: str
) -> None:
    site = await make_site([(Family.LUXOS, "S19jPro", 2)])
    await site.driver.apply(everyone(2, OFF))
    await site.fault([site.ips[0]], {"kind": "unreachable"})
    observed = await site.driver.observe()
    assert observed.reachable.tolist() == [False, True]
    assert observed.point.tolist() == [OFF, OFF]


@pytest.mark.parametrize("driver_kind", DRIVER_KINDS)
async def test_confirmation_latency_is_reported_per_applied_miner(
    make_site: SiteFactory, driver_kind: str
) -> None:
    site = await make_site([(Family.LUXOS, "S19jPro", 2)])
    await site.driver.observe()
    report = await site.driver.apply(CommandBatch(np.array([1]), np.array([OFF])))
    assert report.applied.tolist() == [1]
    assert report.failed == ()
    assert len(report.confirmation_s) == 1
    truth = await site.truth()
    assert truth[site.ips[0]]["mode"] == "normal"  # only the commanded miner moved
