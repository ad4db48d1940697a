"""Two planners of one site on a real Mosquitto: only the lease holder commands.

Scripted workers (``test_planner.FakeWorker``) record every plan they get; the planners
are real ``ShardedDriver``s. The process-level failover (SIGKILL, SIGSTOP) is in
``test_failover.py``.
"""

from __future__ import annotations

import contextlib

import numpy as np

from adapters.feeds.config import MqttBrokerConfig
from adapters.sharding.config import ShardingConfig
from adapters.sharding.lease import LeaseRecord
from adapters.sharding.planner import ShardedDriver
from controller.decision.reconcile import CommandBatch, Unreachable
from controller.domain import OFF
from controller.runtime.clocks.system import SystemClock
from tests.feeds.conftest import Broker, eventually
from tests.sharding.test_planner import ADDRESSES, FLEET, SITE, FakeWorker, honest


def planner(broker: Broker) -> ShardedDriver:
    return ShardedDriver(
        SITE,
        FLEET,
        ADDRESSES,
        sharding=ShardingConfig(shards=2, startup_timeout_s=10, lease_s=2.0),
        broker=MqttBrokerConfig(host="127.0.0.1", port=broker.port),
        clock=SystemClock(),
    )


async def test_of_two_planners_only_the_lease_holder_commands(broker: Broker) -> None:
    w0, w1 = FakeWorker(broker, 0, honest), FakeWorker(broker, 1, honest)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(w0.running())
        await stack.enter_async_context(w1.running())
        a = await stack.enter_async_context(planner(broker))
        b = await stack.enter_async_context(planner(broker))
        await a.discover()
        await b.discover()
        await eventually(lambda: a.leading() != b.leading(), what="exactly one holder")
        holder, standby = (a, b) if a.leading() else (b, a)

        observed = await standby.observe()
        assert not observed.reachable.any()  # a standby reads nothing and asks nothing
        result = await standby.apply(CommandBatch(np.arange(4), np.full(4, OFF)))
        assert result.applied.size == 0
        assert all(
            isinstance(o, Unreachable) and "standby planner" in o.reason for _, o in result.failed
        )
        assert w0.plans == []
        assert w1.plans == []

        assert (await holder.observe()).reachable.all()
        result = await holder.apply(CommandBatch(np.arange(4), np.full(4, OFF)))
        assert sorted(result.applied.tolist()) == [0, 1, 2, 3]
        epochs = {p.epoch for p in w0.plans + w1.plans}
        assert epochs == {holder.epoch}
        summary = holder.summary()["planner"]
        assert isinstance(summary, dict)
        assert summary["holder"] == holder.identity

        # A clean stop releases the lease: the standby takes it over with a newer epoch.
        old_epoch = holder.epoch
        await holder.__aexit__(None, None, None)
        await eventually(standby.leading, timeout_s=10, what="the standby holding the lease")
        assert standby.epoch > old_epoch
        assert (await standby.observe()).reachable.all()
        assert {p.epoch for p in w0.plans[-1:] + w1.plans[-1:]} == {standby.epoch}


async def test_a_planner_that_sees_a_newer_lease_stops_commanding_at_once(broker: Broker) -> None:
    async with (
        FakeWorker(broker, 0, honest).running(),
        FakeWorker(broker, 1, honest).running() as client,
        planner(broker) as d,
    ):
        await d.discover()
        await eventually(d.leading, what="the lease held")
        usurper = LeaseRecord(
            site=SITE, scope="planner", holder="other:1:1", epoch=d.epoch + 1, state="held",
            at=SystemClock().now(), expires_at=SystemClock().now() + 60,
        )  # fmt: skip
        await client.publish(
            f"hashspark/{SITE}/planner/lease", usurper.to_bytes(), qos=1, retain=True
        )
        await eventually(lambda: not d.leading(), what="the planner standing down")
        assert not (await d.observe()).reachable.any()
        await client.publish(f"hashspark/{SITE}/planner/lease", b"", qos=1, retain=True)
