"""The planner's ShardedDriver against scripted workers on a real Mosquitto.

The workers here are plain MQTT clients that answer plans the way a test needs (late,
twice, for another epoch, never, with another fleet): what a real worker cannot be made
to do on demand. The real worker runs in ``test_sharded_site.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import numpy as np
import pytest

from adapters.feeds.config import MqttBrokerConfig
from adapters.sharding.config import ShardingConfig
from adapters.sharding.messages import ShardPlan, ShardReport, ShardStatus
from adapters.sharding.planner import ShardedDriver
from adapters.sharding.shards import fingerprint, partition
from controller.decision.reconcile import Applied, CommandBatch, Unreachable
from controller.domain import OFF, build_fleet
from controller.runtime.clocks.system import SystemClock
from tests.feeds.conftest import Broker, eventually

ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
FLEET = build_fleet([("Antminer S19j Pro", 4, [(104.0, 3068.0)])])
SITE = "p"

Answer = Callable[[ShardPlan], list[ShardReport]]


def report(plan: ShardPlan, point_w: int, **changes: Any) -> ShardReport:
    """A report of two miners at ``point_w``, every commanded one applied."""
    values: dict[str, Any] = {
        "site": SITE,
        "shard": plan.shard,
        "epoch": plan.epoch,
        "seq": plan.seq,
        "worker": f"fake{plan.shard}",
        "finished_at": plan.issued_at,
        "applied": plan.miners,
        "confirmation_s": tuple(0.1 for _ in plan.miners),
        "point_w": (point_w, point_w),
        "reachable": (True, True),
        "power_w": 0.0,
        "hashrate_th": 0.0,
    }
    return ShardReport.model_validate(values | changes)


class FakeWorker:
    """Says online for a shard and answers its plans with ``answer``."""

    def __init__(self, broker: Broker, shard: int, answer: Answer, fleet: str | None = None):
        self.broker = broker
        self.shard = shard
        self.answer = answer
        rows = partition(ADDRESSES, 2)[shard]
        self.fleet = fleet or fingerprint(ADDRESSES, FLEET, rows)
        self.plans: list[ShardPlan] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[aiomqtt.Client]:
        base = f"hashspark/{SITE}/shard/{self.shard}"
        async with aiomqtt.Client(
            "127.0.0.1", self.broker.port, identifier=f"fake{self.shard}"
        ) as c:
            await c.subscribe(f"{base}/plan", qos=1)
            status = ShardStatus(
                site=SITE, shard=self.shard, state="online", worker=f"fake{self.shard}",
                fleet=self.fleet, allowed=(3, 3),
            )  # fmt: skip
            await c.publish(f"{base}/status", status.to_bytes(), qos=1, retain=True)
            task = asyncio.create_task(self._serve(c, base))
            try:
                yield c
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await c.publish(f"{base}/status", b"", qos=1, retain=True)

    async def _serve(self, c: aiomqtt.Client, base: str) -> None:
        async for message in c.messages:
            assert isinstance(message.payload, bytes)
            plan = ShardPlan.parse(message.payload)
            self.plans.append(plan)
            for r in self.answer(plan):
                await c.publish(f"{base}/report", r.to_bytes(), qos=1)


def driver(broker: Broker, report_timeout_s: float = 30.0) -> ShardedDriver:
    return ShardedDriver(
        SITE,
        FLEET,
        ADDRESSES,
        sharding=ShardingConfig(
            shards=2, report_timeout_s=report_timeout_s, startup_timeout_s=10, lease_s=2.0
        ),
        broker=MqttBrokerConfig(host="127.0.0.1", port=broker.port),
        clock=SystemClock(),
    )


def honest(plan: ShardPlan) -> list[ShardReport]:
    return [report(plan, 0 if plan.kind == "apply" else 3068)]


async def test_only_the_answer_to_the_plan_counts(broker: Broker) -> None:
    def noisy(plan: ShardPlan) -> list[ShardReport]:
        # A report for another planner, one for a plan never sent, the answer, and a duplicate.
        return [
            report(plan, 0, epoch=plan.epoch - 1),
            report(plan, 0, seq=plan.seq + 1000),
            report(plan, 3068),
            report(plan, 0, applied=(), confirmation_s=()),
        ]

    async with (
        driver(broker) as d,
        FakeWorker(broker, 0, noisy).running(),
        FakeWorker(broker, 1, honest).running(),
    ):
        assert await d.discover() == 4
        observed = await d.observe()
        assert observed.reachable.all()
        assert observed.point.tolist() == [1, 1, 1, 1]  # not the 0 W of the impostors
        result = await d.apply(CommandBatch(np.arange(4), np.full(4, OFF)))
        assert sorted(result.applied.tolist()) == [0, 1, 2, 3]  # the duplicate applied none


async def test_a_silent_shard_turns_unresponsive_and_its_commands_unreachable(
    broker: Broker,
) -> None:
    answering = [True]

    def sometimes(plan: ShardPlan) -> list[ShardReport]:
        return honest(plan) if answering[0] else []

    async with (
        driver(broker, report_timeout_s=1.0) as d,
        FakeWorker(broker, 0, honest).running(),
        FakeWorker(broker, 1, sometimes).running(),
    ):
        await d.discover()
        answering[0] = False
        result = await d.apply(CommandBatch(np.arange(4), np.full(4, OFF)))
        assert sorted(result.applied.tolist()) == [0, 1]
        failed = dict(result.failed)
        assert set(failed) == {2, 3}
        assert all(isinstance(o, Unreachable) and "no report" in o.reason for o in failed.values())
        assert d.shards[1].state == "unresponsive"
        assert d.shards[1].unmanaged_events == 1
        observed = await d.observe()  # still asked; still silent: unreachable
        assert observed.reachable.tolist() == [True, True, False, False]
        answering[0] = True
        observed = await d.observe()
        assert observed.reachable.all()
        assert d.shards[1].managed


async def test_a_worker_with_another_fleet_is_never_asked(broker: Broker) -> None:
    impostor = FakeWorker(broker, 1, honest, fleet="0123456789abcdef")
    async with (
        driver(broker) as d,
        FakeWorker(broker, 0, honest).running(),
        impostor.running(),
    ):
        await eventually(lambda: d.shards[1].state == "mismatch", what="the mismatch noticed")
        await eventually(d.leading, what="the planner lease held")
        observed = await d.observe()
        assert observed.reachable.tolist() == [True, True, False, False]
        result = await d.apply(CommandBatch(np.array([0, 2]), np.array([OFF, OFF])))
        assert isinstance(result.failed[0][1], Unreachable)
        assert result.applied.tolist() == [0]
        assert impostor.plans == []


async def test_the_last_will_fails_a_plan_in_flight_at_once(broker: Broker) -> None:
    async with driver(broker, report_timeout_s=60.0) as d:
        async with (
            FakeWorker(broker, 0, honest).running(),
            FakeWorker(broker, 1, lambda plan: []).running() as silent,
        ):
            await d.discover()
            pending = asyncio.create_task(d.apply(CommandBatch(np.arange(4), np.full(4, OFF))))
            await asyncio.sleep(0.3)
            will = ShardStatus(site=SITE, shard=1, state="offline", reason="connection lost")
            await silent.publish(
                f"hashspark/{SITE}/shard/1/status", will.to_bytes(), qos=1, retain=True
            )
            result = await asyncio.wait_for(pending, 5.0)  # not the 60 s report timeout
        assert sorted(result.applied.tolist()) == [0, 1]
        assert all(isinstance(o, Unreachable) for _, o in result.failed)
        assert not any(isinstance(o, Applied) for _, o in result.failed)
        assert d.shards[1].state == "offline"
        assert "last will" in d.shards[1].reason


@pytest.mark.parametrize(
    ("changed", "same"),
    [(["10.0.0.9", *ADDRESSES[1:]], False), (list(ADDRESSES), True)],
)
def test_the_fingerprint_names_the_shards_miners(changed: list[str], same: bool) -> None:
    rows = np.arange(4, dtype=np.int64)
    assert (fingerprint(changed, FLEET, rows) == fingerprint(ADDRESSES, FLEET, rows)) is same
    other = build_fleet([("Antminer S19j Pro", 4, [(104.0, 3000.0)])])
    assert fingerprint(ADDRESSES, other, rows) != fingerprint(ADDRESSES, FLEET, rows)
