"""Supervision of a daemon's site loops: run them together, watch for stuck cycles, report.

A loop that dies takes the daemon down, loudly, after the others stop cleanly; systemd's
watchdog is pinged only while every loop is making progress; the status line (systemd's
STATUS=) says what each site is doing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from controller.decision.policy import Plan
from controller.domain import EpochS
from controller.runtime.notify import Notifier
from controller.runtime.retry import reap
from controller.runtime.site_loop import SiteLoop


@dataclass(slots=True)
class Supervised:
    """One site loop, when it ends (a simulated run) and what runs after each cycle."""

    loop: SiteLoop
    until: EpochS | None
    after_cycle: Callable[[Plan], Awaitable[None]] | None = None


class Supervisor:
    """Runs site loops together under a stop event and systemd's watchdog."""

    def __init__(
        self,
        notifier: Notifier,
        *,
        cycle_timeout_s: Callable[[], float],
        log: structlog.stdlib.BoundLogger | None = None,
    ) -> None:
        self.notifier = notifier
        self.stop = asyncio.Event()
        self._cycle_timeout_s = cycle_timeout_s
        self._log = log or structlog.get_logger("hashspark.daemon")
        self._stuck_logged = False
        self.loops: Sequence[Supervised] = ()

    def stuck_sites(self) -> list[str]:
        """Sites whose current cycle has run longer than the cycle timeout."""
        limit = self._cycle_timeout_s()
        return [s.loop.site.site_id for s in self.loops if s.loop.stuck_for() > limit]

    async def run_loops(self, on_shutdown: Callable[[], str]) -> None:
        """Run every loop to its end or until ``stop``; then leave the miners as configured."""
        tasks = [
            asyncio.create_task(
                s.loop.run(until=s.until, on_cycle=s.after_cycle, stop=self.stop),
                name=s.loop.site.site_id,
            )
            for s in self.loops
        ]
        # A loop that dies takes the daemon down, loudly; the others stop cleanly first.
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if t.exception() is not None]
            if failed:
                self.stop.set()
            if pending:
                await asyncio.wait(pending)
        except asyncio.CancelledError:
            # Something under us failed (a feed's task group cancels the daemon's task):
            # the loops go too, or they would run on, half alive, with nothing to wake them.
            await reap(*tasks)
            raise
        if failed:
            failed[0].result()
        if self.stop.is_set():
            action = on_shutdown()
            for s in self.loops:
                await s.loop.shutdown(action)

    async def watchdog(self) -> None:
        """Ping systemd's watchdog, but only while every site loop is making progress."""
        period = (self.notifier.watchdog_s or 30.0) / 2
        while True:
            stuck = self.stuck_sites()
            if stuck:
                if not self._stuck_logged:
                    self._log.error("site_loop_stuck", sites=stuck, watchdog="withheld")
                    self._stuck_logged = True
            else:
                if self._stuck_logged:
                    self._log.info("site_loops_progressing")
                    self._stuck_logged = False
                if self.notifier.watchdog_s is not None:
                    self.notifier.watchdog()
            self.notifier.status(self.status_line())
            await asyncio.sleep(period)

    def status_line(self) -> str:
        """One line for systemd's STATUS=: each site's decision and load."""
        parts = []
        for s in self.loops:
            st = s.loop.last_status
            if st is None:
                parts.append(f"{s.loop.site.site_id}: starting")
            else:
                load = f"{st.load_mw:.2f} of {st.nominal_mw:.2f} MW"
                parts.append(f"{st.site_id}: {st.decision_reason}, {load}")
        return "; ".join(parts) or "no sites"
