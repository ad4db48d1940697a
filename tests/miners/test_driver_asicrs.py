"""The asic-rs driver's own facts: discovery per family, its config type, its known gaps.

Its behaviour (confirmation, faults, liars, dead and slow miners) is held by the shared
tests in test_driver_families.py and test_driver_faults.py, parametrised over both drivers.
"""

from __future__ import annotations

import pytest

from adapters.miners.asicrs import AsicRsDriver, firmware_of
from adapters.miners.config import AsicRsDriverConfig
from adapters.miners.registry import DRIVERS, Inventory
from controller.domain import build_fleet
from controller.runtime.clocks.simulated import ScaledClock
from simulators.miners.miner import Family
from tests.miners.conftest import CURVES, SiteFactory, driver_config


@pytest.mark.parametrize("driver_kind", ["asic-rs"])
async def test_asic_rs_identifies_every_family_with_its_model_and_firmware(
    make_site: SiteFactory, driver_kind: str
) -> None:
    site = await make_site(
        [(Family.LUXOS, "S19jPro", 1), (Family.ANTMINER, "S19jPro", 1), (Family.BRAIINS, "S21", 1)]
    )
    assert isinstance(site.driver, AsicRsDriver)
    assert site.driver.firmware_found == ("luxos", "stock", "braiins")
    lux, stock, braiins = site.driver.capabilities
    assert lux is not None
    assert stock is not None
    assert braiins is not None
    assert "S19j" in lux.model.replace(" ", "")
    assert "S19j" in stock.model.replace(" ", "")
    assert "S21" in braiins.model
    assert (lux.can_stop, lux.can_throttle) == (True, False)
    assert (stock.can_stop, stock.can_throttle) == (True, False)
    assert (braiins.can_stop, braiins.can_throttle) == (True, True)
    observed = await site.driver.observe()
    assert observed.reachable.tolist() == [True, True, True]
    assert site.driver.allowed_points().tolist()[2] == [True, True, True]


@pytest.mark.parametrize("driver_kind", ["asic-rs"])
async def test_telemetry_through_asic_rs_matches_the_meter(
    make_site: SiteFactory, driver_kind: str
) -> None:
    site = await make_site(
        [(Family.LUXOS, "S19jPro", 1), (Family.ANTMINER, "S19jPro", 1), (Family.BRAIINS, "S21", 1)]
    )
    await site.driver.observe()
    truth = await site.truth()
    lux, stock, bos = site.driver.telemetry
    assert lux is not None
    assert stock is not None
    assert bos is not None
    # LuxOS: the hashboards' sum stands in for the total asic-rs does not read.
    assert lux.hashrate_th == pytest.approx(truth[site.ips[0]]["hashrate_th"], rel=0.05)
    assert lux.power_w == pytest.approx(truth[site.ips[0]]["power_w"], rel=0.05)
    assert stock.hashrate_th == pytest.approx(truth[site.ips[1]]["hashrate_th"], rel=0.05)
    assert stock.power_w is None  # stock firmware reports no wattage
    # Braiins OS+ through GraphQL: the total, the approximated wattage and the power target.
    assert bos.hashrate_th == pytest.approx(truth[site.ips[2]]["hashrate_th"], rel=0.05)
    assert bos.power_w == pytest.approx(truth[site.ips[2]]["power_w"], rel=0.05)
    assert bos.power_limit_w == pytest.approx(truth[site.ips[2]]["power_target_w"])


def test_the_registry_builds_an_asic_rs_driver_from_its_config() -> None:
    config = driver_config("asic-rs")
    assert isinstance(config, AsicRsDriverConfig)
    assert config.needs_addresses
    name, points = CURVES["S21"]
    fleet = build_fleet([(name, 2, points)])
    driver = DRIVERS.get("asic-rs").build(
        config,
        fleet,
        ScaledClock(0.0, speed=1.0),
        Inventory(["127.66.0.1", "127.66.0.2"], [None, None]),
    )
    assert isinstance(driver, AsicRsDriver)


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("LuxOS", "luxos"),
        ("AntMiner Stock", "stock"),
        ("Braiins OS+", "braiins"),
        ("BOS+", "braiins"),
        ("VNish", "other"),
    ],
)
def test_firmware_names_map_to_ours(name: str, ours: str) -> None:
    assert firmware_of(name) == ours
