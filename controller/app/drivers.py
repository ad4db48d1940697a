"""Builds a site's miner driver from its config: the in-process model, pyasic, or shards."""

from __future__ import annotations

from collections import Counter

from adapters.miners.addresses import expand_all
from adapters.miners.config import PyasicDriverConfig
from adapters.miners.driver import PyasicDriver
from adapters.miners.simulated import InProcessFleet
from adapters.sharding.planner import ShardedDriver
from controller.config import ConfigError, SimulatedDriverConfig, SiteConfig
from controller.domain import FleetSpec
from controller.runtime.ports import Clock, MinerDriver


def build_driver(site: SiteConfig, fleet: FleetSpec, clock: Clock) -> MinerDriver:
    """The driver ``site.driver.type`` names (a ``DriverFactory`` for the daemon)."""
    match site.driver:
        case SimulatedDriverConfig(initial_state=state):
            return InProcessFleet(fleet, clock, running=state == "running")
        case PyasicDriverConfig() as config:
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
            return PyasicDriver(fleet, addresses, config, clock, firmware=firmware)


def site_addresses(site: SiteConfig) -> tuple[list[str], list[str | None]]:
    """Every miner's address and expected firmware, in fleet order (group by group).

    The pyasic driver needs an address for every miner: a group without ``addresses`` is a
    start-up error naming it.
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
