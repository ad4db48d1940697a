"""A fleet of simulated miners in one process: build, listen, inject faults, stop."""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import structlog

from controller.runtime.ports import Clock
from simulators.miners.antminer import AntminerApi
from simulators.miners.antminer_web import AntminerWeb, WebEndpoint
from simulators.miners.braiins import DEFAULT_PASSWORD, GrpcEndpoint
from simulators.miners.braiins_api import BraiinsApi
from simulators.miners.braiins_tuner import Tuner
from simulators.miners.braiins_web import BraiinsWeb, BraiinsWebEndpoint
from simulators.miners.faults import Fault, FaultKind
from simulators.miners.host import ApiEndpoint, Endpoint, MinerHost
from simulators.miners.luxos import LuxosApi
from simulators.miners.miner import Family, SimMiner
from simulators.miners.models import model_by_key

START_CONCURRENCY = 64  #: miners bound at once while starting

_log = structlog.get_logger("hashspark.simulate")


@dataclass(frozen=True, slots=True)
class MinerSpec:
    """One miner to simulate."""

    ip: str
    family: Family
    model: str  # key in ``models.MODELS``


class Services:
    """Servers shared by many miners of a fleet (the Antminer and Braiins OS+ web apps)."""

    def __init__(self) -> None:
        self.antminer_web = AntminerWeb()
        self.braiins_web = BraiinsWeb(DEFAULT_PASSWORD)

    async def close(self) -> None:
        """Close the shared servers."""
        await self.antminer_web.cleanup()
        await self.braiins_web.cleanup()


EndpointBuilder = Callable[[SimMiner, Services], list[Endpoint]]


def _luxos(miner: SimMiner, _services: Services) -> list[Endpoint]:
    return [ApiEndpoint(miner, LuxosApi(miner))]


def _braiins(miner: SimMiner, services: Services) -> list[Endpoint]:
    tuner = Tuner(miner)  # one tuner behind both APIs
    services.braiins_web.add(miner, tuner)
    return [
        ApiEndpoint(miner, BraiinsApi(miner)),
        GrpcEndpoint(miner, tuner=tuner),
        BraiinsWebEndpoint(miner, services.braiins_web),
    ]


def _antminer(miner: SimMiner, services: Services) -> list[Endpoint]:
    return [ApiEndpoint(miner, AntminerApi(miner)), WebEndpoint(miner, services.antminer_web)]


#: Which endpoints each registered family serves; unfinished families are left out.
FAMILIES: dict[Family, EndpointBuilder] = {
    Family.LUXOS: _luxos,
    Family.ANTMINER: _antminer,
    Family.BRAIINS: _braiins,
}

#: Families that listen on a privileged port (80) and so need root. (Braiins OS+ serves its
#: web UI on 80 only where allowed: pyasic does not need it.)
NEEDS_ROOT = frozenset({Family.ANTMINER})


def consecutive_ips(first: str, count: int) -> list[str]:
    """``count`` loopback addresses from ``first`` on; refuses to leave 127.0.0.0/8."""
    start = ipaddress.IPv4Address(first)
    loopback = ipaddress.IPv4Network("127.0.0.0/8")
    ips = [start + i for i in range(count)]
    if any(ip not in loopback for ip in ips) or str(start).endswith(".0"):
        raise ValueError(f"{count} miners from {first} would leave 127.0.0.0/8")
    return [str(ip) for ip in ips]


class Fleet:
    """The simulated miners of a site, each on its own loopback address."""

    def __init__(self, specs: Sequence[MinerSpec], clock: Clock, *, seed: int = 0) -> None:
        self.clock = clock
        self.miners: list[SimMiner] = []
        self.hosts: dict[str, MinerHost] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.services = Services()
        for i, spec in enumerate(specs):
            if spec.ip in self.hosts:
                raise ValueError(f"two miners on {spec.ip}")
            builder = FAMILIES.get(spec.family)
            if builder is None:
                known = ", ".join(f.value for f in FAMILIES)
                raise ValueError(f"family {spec.family.value} is not available; known: {known}")
            miner = SimMiner(spec.ip, spec.family, model_by_key(spec.model), clock, seed=seed + i)
            self.miners.append(miner)
            self.hosts[spec.ip] = MinerHost(miner, builder(miner, self.services))

    @property
    def first_ip(self) -> str:
        """The first miner's address."""
        return self.miners[0].ip

    @property
    def last_ip(self) -> str:
        """The last miner's address."""
        return self.miners[-1].ip

    async def start(self) -> None:
        """Listen on every miner's endpoints; on failure nothing is left listening."""
        semaphore = asyncio.Semaphore(START_CONCURRENCY)

        async def one(host: MinerHost) -> None:
            async with semaphore:
                await host.start()

        try:
            async with asyncio.TaskGroup() as group:
                for host in self.hosts.values():
                    group.create_task(one(host))
        except BaseExceptionGroup as eg:
            await self.stop()
            raise eg.exceptions[0] from None

    async def stop(self) -> None:
        """Stop listening everywhere and cancel pending reboots."""
        for task in list(self._tasks):
            task.cancel()
        for host in self.hosts.values():
            await host.stop()
        await self.services.close()

    def select(self, ips: Iterable[str] = (), fraction: float = 0.0, seed: int = 0) -> list[str]:
        """Miners named by address, plus a seeded random ``fraction`` of the fleet."""
        chosen = list(dict.fromkeys(ips))
        unknown = [ip for ip in chosen if ip not in self.hosts]
        if unknown:
            raise ValueError(f"no simulated miner at {', '.join(unknown)}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be within 0..1, got {fraction}")
        if fraction:
            count = round(fraction * len(self.miners))
            picked = random.Random(seed).sample(  # noqa: S311  (reproducible choice, not crypto)
                [m.ip for m in self.miners], count
            )
            chosen += [ip for ip in picked if ip not in chosen]
        return chosen

    async def apply_fault(self, ips: Iterable[str], fault: Fault) -> None:
        """Give the named miners a fault; unreachable and reboot close their listeners."""
        ips = list(ips)
        _log.info("fault_applied", **fault.to_json(), miners=len(ips), first=ips[:1])
        for ip in ips:
            host = self.hosts[ip]
            host.miner.apply_fault(fault)
            if fault.kind is FaultKind.UNREACHABLE:
                await host.stop()
            elif fault.kind is FaultKind.REBOOT:
                await host.stop()
                task = asyncio.get_running_loop().create_task(self._come_back(host, fault))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _come_back(self, host: MinerHost, fault: Fault) -> None:
        await self.clock.sleep_until(self.clock.now() + fault.reboot_s)
        if FaultKind.UNREACHABLE not in host.miner.faults:
            await host.start()
            _log.info("miner_rebooted", ip=host.miner.ip)

    async def clear_faults(self, ips: Iterable[str]) -> None:
        """Remove lasting faults; unreachable miners listen again."""
        ips = list(ips)
        _log.info("faults_cleared", miners=len(ips), first=ips[:1])
        for ip in ips:
            host = self.hosts[ip]
            host.miner.clear_faults()
            if not host.listening and not host.miner.state.booting(self.clock.now()):
                await host.start()
