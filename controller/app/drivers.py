"""Builds a site's miner driver from its config: the in-process model, pyasic, or shards."""

from __future__ import annotations

from collections import Counter

from adapters.miners.addresses import expand_all
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
        addresses, firmware = site_addresses(site)
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


def site_addresses(site: SiteConfig) -> tuple[list[str], list[str | None]]:
    """Every miner's address and expected firmware, in fleet order (group by group).

    A driver that talks to miners needs an address for every miner: a group without
    ``addresses`` is a start-up error naming it.
    """
    addresses: list[str] = []
    firmware: list[str | None] = []
    missing = [
        f"sites[{site.id}].miners[{k}] ({g.model}): the pyasic driver needs its addresses"
        for k, g in enumerate(site.miners)
        if g.addresses is None
    ]
    if missing:
        raise ConfigError(missing)
    for group in site.miners:
        assert group.addresses is not None
        ips = expand_all(group.addresses)
        addresses += ips
        firmware += [group.firmware] * len(ips)
    dupes = sorted(ip for ip, n in Counter(addresses).items() if n > 1)
    if dupes:
        raise ConfigError([f"site {site.id}: addresses listed in two groups: {', '.join(dupes)}"])
    return addresses, firmware
