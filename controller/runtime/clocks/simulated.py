"""Simulated clocks: one that jumps to each wake-up (a year replays in seconds), one scaled."""

from __future__ import annotations

import asyncio
import time

from controller.domain import EpochS


class SimulatedClock:
    """Virtual UTC time that advances only when the loop sleeps.

    ``sleep_until`` moves time exactly to the wake-up (so decisions happen at the same
    simulated instants however fast the replay runs) and yields to the event loop. With a
    ``speed`` it also waits ``(t - now) / speed`` real seconds, pacing a replay for people
    and scrapers to follow; without one it runs as fast as the code allows. Time never
    goes backwards.
    """

    def __init__(self, start: EpochS, speed: float | None = None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self._now = start
        self._speed = speed

    def now(self) -> EpochS:
        """Current simulated time."""
        return self._now

    async def sleep_until(self, t: EpochS) -> None:
        """Advance to ``t`` (if later), pacing by the speed factor, and yield."""
        if t > self._now and self._speed is not None:
            await asyncio.sleep((t - self._now) / self._speed)
        else:
            await asyncio.sleep(0)
        self._now = max(self._now, t)


class ScaledClock:
    """Wall time run ``speed`` times faster from ``start``: replays with real sockets.

    ``now()`` advances continuously (unlike ``SimulatedClock``, whose time moves only at
    wake-ups), so servers answering at arbitrary moments, their clients and the miners'
    ramps all see the same scaled time; ``sleep_until`` sleeps the wall time that remains.
    """

    def __init__(self, start: EpochS, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self._start = start
        self._speed = speed
        self._origin = time.monotonic()

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second."""
        return self._speed

    def now(self) -> EpochS:
        """Current scaled time."""
        return self._start + (time.monotonic() - self._origin) * self._speed

    async def sleep_until(self, t: EpochS) -> None:
        """Sleep until scaled time reaches ``t``."""
        delay = (t - self.now()) / self._speed
        if delay > 0:
            await asyncio.sleep(delay)
