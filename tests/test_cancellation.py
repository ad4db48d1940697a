"""Issue 16: no task failure leaves the daemon half alive, and no sleep swallows a cancel.

A feed's task group that fails cancels the daemon's task. That cancellation must reach
the site loops (they stop, and the failure surfaces so the process exits and systemd
restarts it); before, the loop's sleep suppressed it and the daemon hung, metrics closed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from types import SimpleNamespace

import pytest

from adapters.miners.simulated import InProcessFleet
from controller.app import run_cmd
from controller.runtime.notify import Notifier
from controller.runtime.retry import reap
from controller.runtime.supervisor import Supervised, Supervisor
from tests.test_actuation import FLEET, T0, _loop, _price


class IdleClock:
    """A clock whose sleeps end only when cancelled (the loop waits on its feeds)."""

    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t

    async def sleep_until(self, t: float) -> None:
        del t
        await asyncio.Event().wait()


async def test_reap_does_not_swallow_the_callers_cancellation() -> None:
    child = asyncio.ensure_future(asyncio.Event().wait())
    entered = asyncio.Event()

    async def caller() -> str:
        try:
            entered.set()
            await asyncio.Event().wait()
        finally:
            await reap(child)
        return "ran on after its cancellation"

    task = asyncio.ensure_future(caller())
    await entered.wait()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done
    assert task.cancelled()
    assert child.cancelled()


async def test_a_failed_feed_task_group_stops_the_loops_and_surfaces() -> None:
    clock = IdleClock()
    loop, _, _ = _loop(InProcessFleet(FLEET, clock, running=False), clock)  # type: ignore[arg-type]
    supervisor = Supervisor(Notifier({}), cycle_timeout_s=lambda: 60.0)
    supervisor.loops = [Supervised(loop, None)]

    async def feed() -> None:
        await asyncio.sleep(0.05)  # the loop is asleep by now
        raise ValueError("year 10000 is out of range")

    async def daemon() -> None:
        async with asyncio.TaskGroup() as feeds:
            feeds.create_task(feed())
            await supervisor.run_loops(lambda: "keep")

    task = asyncio.ensure_future(daemon())
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done, "the daemon hung: a cancellation was swallowed"
    with pytest.raises(ExceptionGroup) as failure:
        task.result()
    assert failure.group_contains(ValueError)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "s"], "a loop runs on"


def test_a_daemon_that_fails_exits_non_zero_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def failing(*args: object) -> None:
        del args
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(asyncio.sleep(0, result=None))
            raise ExceptionGroup("feeds", [ValueError("year 10000 is out of range")])

    monkeypatch.setattr(run_cmd, "load_config", lambda path: SimpleNamespace(config=CONFIG))
    monkeypatch.setattr(run_cmd, "preflight", lambda loaded: [])
    monkeypatch.setattr(run_cmd, "run_daemon", failing)
    args = argparse.Namespace(
        config="x.toml",
        simulated=False,
        speed=1.0,
        state_dir=None,
        metrics_port=None,
        stay=False,
        dry_run=False,
    )
    assert run_cmd.run(args) == run_cmd.EXIT_FAILED != 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    doc = json.loads(lines[0])
    assert doc["event"] == "daemon_failed"
    assert "ValueError: year 10000 is out of range" in doc["error"]


CONFIG = SimpleNamespace(daemon=SimpleNamespace(log_level="info"))


class SlowToWakeClock(IdleClock):
    """A clock whose cancelled sleep takes a moment to end (cleanup on the way out)."""

    async def sleep_until(self, t: float) -> None:
        try:
            await super().sleep_until(t)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)
            raise


async def test_the_loops_sleep_passes_on_a_cancel_that_arrives_as_it_wakes() -> None:
    """Woken by a reading, the sleep ends its sleeper; a cancel arriving then is not lost."""
    clock = SlowToWakeClock()
    loop, price, _ = _loop(InProcessFleet(FLEET, clock, running=False), clock)  # type: ignore[arg-type]
    for event in loop._input_events():
        event.clear()
    sleep = asyncio.ensure_future(loop._sleep(T0 + 3600.0, None))
    await asyncio.sleep(0.05)
    _price(price, clock, 40.0)  # type: ignore[arg-type]  # wakes it; the sleeper is ending
    await asyncio.sleep(0.05)
    assert not sleep.done()
    sleep.cancel()
    done, _ = await asyncio.wait({sleep}, timeout=2)
    assert sleep in done
    assert sleep.cancelled(), "the cancellation was swallowed"
