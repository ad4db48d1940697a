"""The system clock: wall time and real sleeping (the daemon's clock)."""

from __future__ import annotations

import asyncio
import time

from controller.domain import EpochS


class SystemClock:
    """UTC wall time; sleeps on the event loop."""

    def now(self) -> EpochS:
        """Current UTC time in epoch seconds."""
        return time.time()

    async def sleep_until(self, t: EpochS) -> None:
        """Sleep until wall time reaches ``t`` (returns at once if it has)."""
        delay = t - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
