"""The live-path replay's clock: scaled wall time while anything happens, skipped when idle.

Simulated miners, the pyasic driver and the site loop share one clock. While a cycle is in
flight (reads, commands, confirmations, the miners' stops and ramps) it runs ``speed``
times wall time, like ``ScaledClock``; when the site loop goes to sleep, the time until the
next event (a recorded reading to publish, a miner coming back from a reboot, the loop's own
wake-up) is skipped, so a replay takes about as long as its cycles' work.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable

from controller.domain import EpochS

#: A timeline event: publish something at its time; True if it woke the site loop.
Event = Callable[[], Awaitable[bool]]


class ReplayClock:
    """Scaled time that jumps over idle gaps; owns the timeline of recorded readings."""

    def __init__(self, start: EpochS, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self._base = start
        self._origin = time.monotonic()
        self._speed = speed
        self._seq = itertools.count()
        self._timeline: list[tuple[EpochS, int, Event]] = []
        self._sleepers: list[tuple[EpochS, int, asyncio.Future[None]]] = []
        self._woken = False
        self.skipped_s = 0.0  #: simulated seconds jumped over
        self.late_events = 0  #: timeline events run after their time (a cycle overran them)
        self.max_lateness_s = 0.0

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second while the clock runs."""
        return self._speed

    def now(self) -> EpochS:
        """Current simulated time."""
        return self._base + (time.monotonic() - self._origin) * self._speed

    def advance_to(self, t: EpochS) -> None:
        """Move time forward to ``t`` at once (no-op if it is already later)."""
        self._jump(t)

    # --- the timeline ---------------------------------------------------------------------

    def schedule(self, at: EpochS, event: Event) -> None:
        """Run ``event`` when simulated time reaches ``at`` (at the latest when the loop idles)."""
        heapq.heappush(self._timeline, (at, next(self._seq), event))

    def loop_woken(self) -> None:
        """Something the site loop waits on happened: stop skipping until it sleeps again."""
        self._woken = True

    async def run_due(self) -> None:
        """Run every timeline event whose time has come, in order."""
        while self._timeline and self._timeline[0][0] <= self.now():
            at, _, event = heapq.heappop(self._timeline)
            late = self.now() - at
            if late > 1.0:  # a cycle was still running when the reading was due
                self.late_events += 1
                self.max_lateness_s = max(self.max_lateness_s, late)
            if await event():
                self._woken = True

    # --- sleeping -------------------------------------------------------------------------

    async def sleep_until(self, t: EpochS) -> None:
        """Wait until simulated time reaches ``t``, as it runs or when it jumps (miners use it)."""
        loop = asyncio.get_running_loop()
        while (wait_s := (t - self.now()) / self._speed) > 0:
            fut: asyncio.Future[None] = loop.create_future()
            entry = (t, next(self._seq), fut)
            heapq.heappush(self._sleepers, entry)
            timer = loop.call_later(wait_s, _release, fut)
            try:
                await fut
            finally:
                timer.cancel()
                if entry in self._sleepers:
                    self._sleepers.remove(entry)
                    heapq.heapify(self._sleepers)

    async def idle_until(self, t: EpochS) -> None:
        """The site loop's sleep: jump from event to event until ``t`` or until it is woken.

        A published reading that the loop's feed accepts wakes the loop (its feed's event),
        which cancels this sleep; until that happens the clock runs at its speed.
        """
        self._woken = False
        await self.run_due()
        while not self._woken:
            now = self.now()
            if now >= t:
                return
            target = t
            if self._timeline:
                target = min(target, self._timeline[0][0])
            if self._sleepers:
                target = min(target, self._sleepers[0][0])
            self._jump(target)
            await self.run_due()
            await asyncio.sleep(0)  # let released sleepers run
        await self.sleep_until(t)  # woken: wait (running time) to be cancelled by the loop

    def _jump(self, t: EpochS) -> None:
        now = self.now()
        if t > now:
            self.skipped_s += t - now
            self._base = t
            self._origin = time.monotonic()
        for at, _, fut in list(self._sleepers):
            if at <= t:
                _release(fut)


def _release(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class LoopClock:
    """The site loop's view of a ``ReplayClock``: its sleeps let the clock skip idle time."""

    def __init__(self, clock: ReplayClock) -> None:
        self._clock = clock

    def now(self) -> EpochS:
        """Current simulated time."""
        return self._clock.now()

    async def sleep_until(self, t: EpochS) -> None:
        """Sleep until ``t``, skipping the idle time on the way."""
        await self._clock.idle_until(t)
