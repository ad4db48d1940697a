"""Actuation beside the site loop: commands run as jobs that a newer plan supersedes.

The loop never waits behind its own commands. Each cycle hands the actuator the plan and
the miners to move. Curtails and throttle-downs go out at once, as one job. Resumes and
throttle-ups go out in chunks, one after the other, most efficient miners first. A chunk
that has not started yet has sent nothing. A newer plan drops such chunks, and it cancels
a job in flight whose miners the plan now wants elsewhere. The miners of a cancelled job
may have heard their command, so they are commanded again to the newest plan's point
("a curtail overtakes a resume in flight"). Finished jobs come back to the loop as
``Finished`` records: what was sent, under which plan, and what came of it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from controller.decision.policy import Plan
from controller.decision.reconcile import CommandBatch, DispatchReport
from controller.domain import OFF, FleetSpec, IntArray
from controller.runtime.ports import MinerDriver
from controller.runtime.retry import reap


@dataclass(frozen=True, slots=True)
class Finished:
    """A job that ended: its commands, the plan that sent them, and the outcomes.

    ``report`` is None when a newer plan cancelled the job in flight: its miners may or may
    not have acted on it.
    """

    batch: CommandBatch
    plan: Plan
    report: DispatchReport | None


@dataclass(slots=True)
class _Job:
    batch: CommandBatch
    plan: Plan
    raises: bool  # a chunk of resumes or throttle-ups (they go out one chunk at a time)
    task: asyncio.Task[DispatchReport] | None = None  # None: queued, nothing sent yet
    targets: dict[int, int] = field(default_factory=dict)


class Actuator:
    """Runs a site's miner commands beside its loop; a newer plan supersedes older jobs."""

    def __init__(
        self,
        driver: MinerDriver,
        *,
        resume_chunk: int,
        current: Callable[[Plan], bool] = lambda _: True,
        on_send: Callable[[CommandBatch, bool], None] = lambda _b, _r: None,
    ) -> None:
        self._driver = driver
        self._on_send = on_send  # a job starts: its batch, and whether it raises (pacing)
        self._current = current  # is this plan still the newest decision on the newest inputs?
        self._chunk = max(1, resume_chunk)
        self._running: list[_Job] = []
        self._queued: deque[_Job] = deque()
        self._finished: list[Finished] = []
        self.done = asyncio.Event()  # a job ended and waits to be collected (wakes the loop)
        self._quiet = asyncio.Event()  # nothing runs or waits
        self._quiet.set()
        self.superseded = 0  # jobs cancelled or dropped by a newer plan
        self._error: BaseException | None = None

    # --- what is in flight -------------------------------------------------------------

    def busy(self) -> bool:
        """Whether any job is running or queued."""
        return bool(self._running or self._queued)

    def targets(self, *, sent_only: bool = False) -> dict[int, int]:
        """Each miner with a command running (or queued, unless ``sent_only``), and its point."""
        out: dict[int, int] = {}
        for job in (*self._running, *(() if sent_only else self._queued)):
            out.update(job.targets)
        return out

    # --- a new plan --------------------------------------------------------------------

    def supersede(self, plan: Plan) -> IntArray:
        """Drop queued and cancel running jobs that the new plan disagrees with.

        Returns the miners of cancelled jobs. Their commands may have reached them, so the
        caller commands them again to the new plan's point, even where it reads them there.
        """
        plan_point = plan.point
        again: list[int] = []
        keep: deque[_Job] = deque()
        for job in self._queued:
            if any(plan_point[m] != p for m, p in job.targets.items()):
                self.superseded += 1  # nothing was sent: nothing to undo
            else:
                job.plan = plan  # the newest plan still wants it
                keep.append(job)
        self._queued = keep
        for job in list(self._running):
            if any(plan_point[m] != p for m, p in job.targets.items()):
                assert job.task is not None
                job.task.cancel()
                self.superseded += 1
                again += list(job.targets)
        self._pump()
        if not self.busy():
            self._quiet.set()
        return np.array(sorted(set(again)), dtype=np.int64)

    def submit(self, batch: CommandBatch, plan: Plan, fleet: FleetSpec, current: IntArray) -> None:
        """Send ``batch``: lowerings now, raises in chunks (most efficient first)."""
        if not len(batch):
            return
        power = fleet.power_w
        miners, points = batch.miner, batch.point
        now_w = power[miners, current[miners]]
        new_w = power[miners, points]
        lower = (points == OFF) | (new_w < now_w)
        if lower.any():
            self._start(_job(miners[lower], points[lower], plan, raises=False))
        if (~lower).any():
            up_m, up_p = miners[~lower], points[~lower]
            # Merit order: the most efficient miners (lowest J/TH at their target) first.
            j_per_th = power[up_m, up_p] / np.maximum(fleet.hashrate_th[up_m, up_p], 1e-9)
            order = np.lexsort((up_m, j_per_th))
            up_m, up_p = up_m[order], up_p[order]
            self._quiet.clear()
            for k in range(0, up_m.size, self._chunk):
                self._queued.append(
                    _job(up_m[k : k + self._chunk], up_p[k : k + self._chunk], plan, raises=True)
                )
            self._pump()

    def collect(self) -> list[Finished]:
        """Jobs that ended since the last call, oldest first."""
        out, self._finished = self._finished, []
        self.done.clear()
        return out

    async def wait(self, wake: list[asyncio.Event], timeout_s: float) -> None:
        """Until every job ends, an event in ``wake`` is set, or ``timeout_s`` wall seconds."""
        if not self.busy() or any(e.is_set() for e in wake):
            return
        idle = asyncio.ensure_future(self._quiet.wait())
        waiters = [asyncio.ensure_future(e.wait()) for e in wake]
        try:
            await asyncio.wait({idle, *waiters}, timeout=timeout_s, return_when="FIRST_COMPLETED")
        finally:
            await reap(idle, *waiters)

    async def cancel_all(self) -> None:
        """Drop the queue, cancel what runs, and wait for it to end (shutdown)."""
        self._queued.clear()
        if not self._running:
            self._quiet.set()
        running = [j.task for j in self._running if j.task is not None]
        await reap(*running)

    # --- internals ---------------------------------------------------------------------

    def _start(self, job: _Job) -> None:
        self._quiet.clear()
        self._on_send(job.batch, job.raises)
        job.task = asyncio.create_task(self._driver.apply(job.batch), name="actuate")
        self._running.append(job)
        job.task.add_done_callback(lambda _: self._ended(job))

    def _pump(self) -> None:
        """Start the next chunk of raises when none is running and its plan is still current.

        A reading that arrived since the plan was made holds the queue until the loop has
        decided on it (``supersede`` then drops or re-stamps the chunks).
        """
        if any(job.raises for job in self._running) or not self._queued:
            return
        if self._current(self._queued[0].plan):
            self._start(self._queued.popleft())

    def _ended(self, job: _Job) -> None:
        self._running.remove(job)
        assert job.task is not None
        if job.task.cancelled():
            report = None
        elif job.task.exception() is not None:
            # A driver bug must not vanish in a background task: the loop raises it.
            self._finished.append(Finished(job.batch, job.plan, None))
            self._error = job.task.exception()
            self._quiet.set()
            self.done.set()
            return
        else:
            report = job.task.result()
        self._finished.append(Finished(job.batch, job.plan, report))
        if job.raises:
            self._pump()
        if not self.busy():
            self._quiet.set()
        self.done.set()

    def raise_errors(self) -> None:
        """Re-raise a driver error a background job ended with (once)."""
        error, self._error = self._error, None
        if error is not None:
            raise error


def _job(miners: IntArray, points: IntArray, plan: Plan, *, raises: bool) -> _Job:
    batch = CommandBatch(miner=miners.astype(np.int64), point=points.astype(np.int64))
    targets = dict(zip(miners.tolist(), points.tolist(), strict=True))
    return _Job(batch, plan, raises, targets=targets)
