"""Fixtures: fleets on unique loopback blocks, a meter on a free port, pyasic imported once."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from simulators.miners.fleet import Fleet, MinerSpec, consecutive_ips
from simulators.miners.meter import Meter
from simulators.miners.miner import Family

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _level = logging.getLogger().level
    import pyasic  # noqa: F401  (resets the root logger level on import)

    logging.getLogger().setLevel(_level)

T0 = 1_750_000_000.0

# Each test gets its own /24 under 127.42.0.0/16 .. 127.44.0.0/16, so tests never share a
# listening address whatever order they run in. HASHSPARK_TEST_SIM_NET=59 starts them at
# 127.59.0.0 instead, so two checkouts can run these tests on one machine at once.
_blocks = itertools.count()
_FIRST_NET = int(os.environ.get("HASHSPARK_TEST_SIM_NET", "42"))


def next_block() -> str:
    """First address of a fresh /24 block."""
    n = next(_blocks)
    second, third = _FIRST_NET + n // 250, 1 + n % 250
    assert second <= _FIRST_NET + 2, "ran out of test address blocks"
    return f"127.{second}.{third}.1"


FleetFactory = Callable[..., Awaitable[tuple[Fleet, Meter]]]


class ManualClock:
    """A ``Clock`` whose time moves only when the test calls ``advance``.

    Unlike ``SimulatedClock``, a task sleeping on it (a rebooting miner) does not move
    time for everyone; it wakes when the test has advanced far enough.
    """

    def __init__(self, start: float) -> None:
        self._now = start
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        """Current test time."""
        return self._now

    async def sleep_until(self, t: float) -> None:
        """Wait until the test advances past ``t``."""
        if t <= self._now:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((t, future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake the sleepers that are due."""
        self._now += seconds
        due = [(t, f) for t, f in self._waiters if t <= self._now]
        self._waiters = [(t, f) for t, f in self._waiters if t > self._now]
        for _, future in due:
            if not future.done():
                future.set_result(None)


@pytest.fixture
def clock() -> ManualClock:
    """Test time that only moves when the test moves it."""
    return ManualClock(T0)


@pytest.fixture
async def make_fleet(clock: ManualClock) -> AsyncIterator[FleetFactory]:
    """Start fleets (with a meter on a free port); everything is stopped after the test."""
    started: list[tuple[Fleet, Meter]] = []

    async def make(groups: Sequence[tuple[Family, str, int]], **_: Any) -> tuple[Fleet, Meter]:
        specs: list[MinerSpec] = []
        first = next_block()
        ips = consecutive_ips(first, sum(count for _, _, count in groups))
        for family, model, count in groups:
            specs += [MinerSpec(ips.pop(0), family, model) for _ in range(count)]
        fleet = Fleet(specs, clock)
        await fleet.start()
        meter = Meter(fleet, port=0)
        await meter.__aenter__()
        started.append((fleet, meter))
        return fleet, meter

    yield make
    for fleet, meter in started:
        await meter.__aexit__(None, None, None)
        await fleet.stop()
