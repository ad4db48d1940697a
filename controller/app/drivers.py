"""Builds a site's miner driver from its config: the in-process model, pyasic, or shards."""

from __future__ import annotations

from adapters.miners.registry import DRIVERS, Inventory
from adapters.sharding.planner import ShardedDriver
from controller.config import ConfigError, SiteConfig
from controller.domain import FleetSpec
from controller.runtime.ports import Clock, MinerDriver


def build_driver(site: SiteConfig, fleet: FleetSpec, clock: Clock) -> MinerDriver:
    """The driver ``site.driver.type`` names, from the driver registry (a ``DriverFactory``).

    A driver that talks to miners gets every miner's address and firmware; a sharded site's
    planner drives them through its fleet workers instead.
    """
    inventory = Inventory((), ())
    if site.driver.needs_addresses:
        addresses, firmware = site.addresses()  # all there, none twice: the config says so
        if len(addresses) != fleet.size:
            raise ConfigError(
                [f"site {site.id}: {len(addresses)} addresses for {fleet.size} miners"]
            )
        if site.sharding is not None:
            broker = site.shard_broker
            assert broker is not None  # the config validator makes sure
            return ShardedDriver(
                site.id, fleet, addresses, sharding=site.sharding, broker=broker, clock=clock
            )
        inventory = Inventory(addresses, firmware)
    return DRIVERS.get(site.driver.type).build(site.driver, fleet, clock, inventory)
