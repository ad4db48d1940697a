"""Fixtures: simulated fleets on a scaled clock, the meter over HTTP, and a fast driver config."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from adapters.miners.asicrs import AsicRsDriver
from adapters.miners.config import AsicRsDriverConfig, MinerDriverConfig, PyasicDriverConfig
from adapters.miners.driver import PyasicDriver
from adapters.miners.pyasic_lib import pyasic
from controller.domain import FleetSpec, build_fleet
from controller.runtime.clocks.simulated import ScaledClock
from simulators.miners.fleet import Fleet, MinerSpec, consecutive_ips
from simulators.miners.meter import Meter
from simulators.miners.miner import Family

pyasic()  # import it once, quietly, before any test measures time

T0 = 1_750_000_000.0
#: Simulated seconds per wall second: a 90 s resume ramp takes 3 s, a 3 s stop 0.1 s.
SPEED = 30.0

#: Curves as the simulator's models and LuxOS profile ladder have them (60 % and nameplate).
CURVES = {
    "S19jPro": ("Antminer S19j Pro", [(80.6, 1841.0), (104.0, 3068.0)]),
    "S21": ("Antminer S21", [(155.0, 2100.0), (200.0, 3500.0)]),
}

# Each fleet gets its own /24 under 127.45.0.0/16 .. 127.46.0.0/16 (tests/simulators uses
# 127.42-44), so fleets never share a listening address. HASHSPARK_TEST_NET=58 moves them to
# 127.58-59, so two checkouts can run these tests on one machine at once.
_blocks = itertools.count()
_FIRST_NET = int(os.environ.get("HASHSPARK_TEST_NET", "45"))


# The same tests through the asic-rs driver take their own blocks, under 127.66-67
# (HASHSPARK_TEST_NET_RS moves them), so both drivers' runs of a test never share one.
_rs_blocks = itertools.count()
_FIRST_NET_RS = int(os.environ.get("HASHSPARK_TEST_NET_RS", "66"))

#: The drivers the behaviour tests run against (``driver_kind``). The asic-rs runs double
#: the miners' share of the default suite, so they are in the slow suite (`make test-slow`).
DRIVER_NAMES = ("pyasic", "asic-rs")
DRIVER_KINDS = [
    pytest.param("pyasic", id="pyasic"),
    pytest.param("asic-rs", marks=pytest.mark.slow, id="asic-rs"),
]


def next_block(driver_kind: str = "pyasic") -> str:
    """First address of a fresh /24 block."""
    rs = driver_kind == "asic-rs"
    n = next(_rs_blocks if rs else _blocks)
    first = _FIRST_NET_RS if rs else _FIRST_NET
    second, third = first + n // 250, 1 + n % 250
    assert second <= first + 1, "ran out of test address blocks"
    return f"127.{second}.{third}.1"


def family_drivers(families: Sequence[Family]) -> list[Any]:
    """(family, driver_kind) parameters for every family under both drivers (asic-rs: slow)."""
    params = []
    for family in families:
        for kind in DRIVER_NAMES:
            marks: list[Any] = [pytest.mark.slow] if kind == "asic-rs" else []
            params.append(pytest.param(family, kind, marks=marks, id=f"{family.value}-{kind}"))
    return params


@pytest.fixture
def driver_kind() -> str:
    """The driver ``make_site`` builds; tests parametrise it to run against both."""
    return "pyasic"


def fast_config(**overrides: Any) -> PyasicDriverConfig:
    """A pyasic driver config scaled for SPEED: short deadlines, quick polls."""
    return PyasicDriverConfig.model_validate(_fast("pyasic") | overrides)


def driver_config(driver_kind: str, **overrides: Any) -> MinerDriverConfig:
    """``fast_config`` for either driver."""
    model = AsicRsDriverConfig if driver_kind == "asic-rs" else PyasicDriverConfig
    return model.model_validate(_fast(driver_kind) | overrides)


def _fast(driver_kind: str) -> dict[str, Any]:
    return {
        "type": driver_kind,
        "concurrency": 32,
        "call_timeout_s": 1.5,
        "discovery_timeout_s": 4.0,
        "confirm_timeout_s": 4.0,
        "confirm_poll_s": 0.1,
        "retry_attempts": 2,
        "retry_base_s": 0.05,
        "retry_cap_s": 0.2,
        "resume_batch_size": 4,
    }


@dataclass
class Site:
    """A running simulated fleet, its meter, and a driver (pyasic or asic-rs) over it."""

    fleet: Fleet
    meter: Meter
    driver: PyasicDriver
    spec: FleetSpec
    ips: list[str]
    clock: ScaledClock

    async def truth(self) -> dict[str, dict[str, Any]]:
        """The meter's ground truth per miner address."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.meter.url}/meter") as resp,
        ):
            data = await resp.json()
        return {m["ip"]: m for m in data["miners"]}

    async def fault(self, ips: Sequence[str], fault: dict[str, Any]) -> None:
        """Inject a fault through the meter's API."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.meter.url}/faults", json={"miners": ips, "fault": fault}) as r,
        ):
            assert r.status == 200, await r.text()


SiteFactory = Callable[..., Awaitable[Site]]


@pytest.fixture
async def make_site(driver_kind: str) -> AsyncIterator[SiteFactory]:
    """Start fleets of (family, model, count) groups with a driver; stopped after the test."""
    started: list[tuple[Fleet, Meter]] = []

    async def make(
        groups: Sequence[tuple[Family, str, int]],
        *,
        discover: bool = True,
        ip_start: str | None = None,
        **config: Any,
    ) -> Site:
        clock = ScaledClock(T0, speed=SPEED)
        ips = consecutive_ips(ip_start or next_block(driver_kind), sum(n for _, _, n in groups))
        specs: list[MinerSpec] = []
        fleet_groups = []
        at = 0
        for family, model, count in groups:
            specs += [MinerSpec(ip, family, model) for ip in ips[at : at + count]]
            name, points = CURVES[model]
            fleet_groups.append((name, count, points))
            at += count
        fleet = Fleet(specs, clock)
        await fleet.start()
        meter = Meter(fleet, port=0)
        await meter.__aenter__()
        started.append((fleet, meter))
        # Let the miners run a few simulated seconds: a miner that booted within the last
        # two seconds and refuses a command reads as rebooted (Unreachable) by design.
        await asyncio.sleep(0.15)
        spec = build_fleet(fleet_groups)
        kind = AsicRsDriver if driver_kind == "asic-rs" else PyasicDriver
        driver = kind(spec, ips, driver_config(driver_kind, **config), clock, seed=0)
        if discover:
            await driver.discover()
        return Site(fleet, meter, driver, spec, ips, clock)

    yield make
    for fleet, meter in started:
        await meter.__aexit__(None, None, None)
        await fleet.stop()
