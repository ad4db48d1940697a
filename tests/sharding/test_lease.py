"""The epoch lease as a state machine: time passed in, a broker simulated as an ordered topic.

The real broker runs in ``test_lease_live.py`` and ``test_failover.py``; here a topic that
hands every record to every candidate in one order (as one Mosquitto topic does) lets the
schedules be chosen: races, a dead holder, a paused one, a lost connection.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.sharding.config import ShardingConfig
from adapters.sharding.lease import Lease, LeaseRecord, settle_s
from adapters.sharding.messages import PlanGate, ShardPlan
from controller.config import load_config

LEASE_S = 3.0
SETTLE = settle_s(LEASE_S)


@dataclass
class Topic:
    """One retained topic: records in flight reach every candidate in the same order."""

    candidates: list[Lease]
    retained: LeaseRecord | None = None
    in_flight: list[tuple[float, LeaseRecord]] = field(default_factory=list)
    alive: set[str] = field(default_factory=set)

    def connect(self, lease: Lease, now: float) -> None:
        lease.connected(now)
        if self.retained is not None:
            lease.on_record(self.retained, now)

    def step(self, now: float, delay: float = 0.0) -> None:
        """Each live candidate publishes what is due; records arrive ``delay`` later."""
        for lease in self.candidates:
            if lease.holder not in self.alive:
                continue
            record = lease.due(now)
            if record is not None:
                lease.published(record, True)
                self.in_flight.append((now + delay, record))
        arrived = [r for t, r in self.in_flight if t <= now]
        self.in_flight = [(t, r) for t, r in self.in_flight if t > now]
        for record in arrived:
            self.retained = record
            for lease in self.candidates:
                if lease.holder in self.alive:
                    lease.on_record(record, now)

    def holders(self, now: float) -> list[str]:
        return [c.holder for c in self.candidates if c.holding(now) and c.holder in self.alive]


def candidates(*names: str) -> Topic:
    topic = Topic([Lease("s", "planner", n, LEASE_S) for n in names], alive=set(names))
    for lease in topic.candidates:
        topic.connect(lease, 0.0)
    return topic


def run(topic: Topic, start: float, end: float, dt: float = 0.05, delay: float = 0.0) -> float:
    now = start
    while now < end:
        topic.step(now, delay)
        assert len(topic.holders(now)) <= 1, (now, topic.holders(now))
        now = round(now + dt, 6)
    return now


def test_a_lone_candidate_claims_after_the_settle_time_and_renews() -> None:
    topic = candidates("a")
    (a,) = topic.candidates
    run(topic, 0.0, SETTLE)
    assert a.state == "standby"  # nothing retained: it first waits for a holder to speak
    run(topic, SETTLE, 2 * SETTLE + 0.1)
    assert a.holding(2 * SETTLE + 0.1)
    assert a.epoch >= 1
    assert topic.retained is not None
    assert topic.retained.holder == "a"
    run(topic, 2 * SETTLE + 0.1, 30.0)
    assert a.holding(30.0)  # renewed every lease_s / 3
    assert topic.retained.expires_at >= 30.0


@pytest.mark.parametrize("seed", range(40))
def test_racing_candidates_end_with_exactly_one_holder(seed: int) -> None:
    rng = random.Random(seed)
    topic = candidates("a", "b", "c")
    # Each candidate connected at a different moment, records take up to a fifth of the
    # settle time to arrive: never two holders at once (asserted at every step).
    for lease in topic.candidates:
        topic.connect(lease, rng.uniform(0, 0.5))
    end = run(topic, 0.0, 10.0, delay=rng.uniform(0, SETTLE / 5))
    assert len(topic.holders(end)) == 1


def test_a_dead_holder_is_replaced_within_the_lease_with_a_higher_epoch() -> None:
    topic = candidates("a", "b")
    now = run(topic, 0.0, 5.0)
    (first,) = topic.holders(now)
    old = next(c for c in topic.candidates if c.holder == first)
    epoch = old.epoch
    topic.alive.discard(first)  # SIGKILL: it renews nothing more
    killed_at = now
    while not topic.holders(now):
        now = run(topic, now, now + 0.05)
    standby = next(c for c in topic.candidates if c.holder != first)
    assert standby.epoch > epoch
    assert now - killed_at <= LEASE_S + SETTLE + 0.1  # expiry, then claim-then-confirm


def test_a_paused_holder_stops_holding_before_anyone_may_take_over() -> None:
    topic = candidates("a", "b")
    now = run(topic, 0.0, 5.0)
    (first,) = topic.holders(now)
    paused = next(c for c in topic.candidates if c.holder == first)
    topic.alive.discard(first)  # SIGSTOP: neither renews nor hears
    expiry = topic.retained.expires_at if topic.retained else 0.0
    assert not paused.holding(expiry - SETTLE)  # it stops a settle time before expiry ...
    assert paused.holding(expiry - SETTLE - 0.6)  # ... and not earlier than it must
    now = run(topic, now, expiry + 3 * SETTLE)
    (second,) = topic.holders(now)
    assert second != first
    topic.alive.add(first)  # SIGCONT: it reconnects and hears the newer epoch
    topic.connect(paused, now)
    run(topic, now, now + 5.0)
    assert paused.state == "standby"
    assert paused.superseded()


def test_a_holder_cut_off_from_the_broker_stands_down_at_its_own_expiry() -> None:
    topic = candidates("a")
    (a,) = topic.candidates
    now = run(topic, 0.0, 5.0)
    changes: list[bool] = []
    a._on_change = changes.append
    a.disconnected()
    while a.holding(now):
        assert a.due(now) is None
        now += 0.05
    a.due(now)
    assert a.state == "standby"
    assert changes == [False]


def test_a_better_record_makes_the_holder_stand_down_at_once() -> None:
    topic = candidates("b")
    (b,) = topic.candidates
    now = run(topic, 0.0, 5.0)
    better = LeaseRecord(
        site="s", scope="planner", holder="a", epoch=b.epoch + 1, state="held",
        at=now, expires_at=now + LEASE_S,
    )  # fmt: skip
    b.on_record(better, now)
    assert not b.holding(now)
    assert b.superseded()


def test_a_stale_claim_over_the_holders_record_is_overwritten_at_once() -> None:
    topic = candidates("b")
    (b,) = topic.candidates
    now = run(topic, 0.0, 5.0)
    stale = LeaseRecord(
        site="s", scope="planner", holder="a", epoch=b.epoch - 1, state="held",
        at=now, expires_at=now + LEASE_S,
    )  # fmt: skip
    b.on_record(stale, now)
    assert b.holding(now)
    record = b.due(now)
    assert record is not None
    assert record.holder == "b"
    assert record.epoch == b.epoch


def test_a_released_lease_is_taken_over_without_waiting_for_expiry() -> None:
    topic = candidates("a", "b")
    now = run(topic, 0.0, 5.0)
    (first,) = topic.holders(now)
    holder = next(c for c in topic.candidates if c.holder == first)
    release = holder.release(now)
    assert release is not None
    assert release.state == "released"
    topic.alive.discard(first)
    topic.in_flight.append((now, release))
    start = now
    while not topic.holders(now):
        now = run(topic, now, now + 0.05)
    assert now - start <= 2 * SETTLE + 0.2


def test_epochs_keep_growing_when_the_broker_forgot_the_lease() -> None:
    lease = Lease("s", "planner", "a", LEASE_S)
    lease.high_epoch = 10**13  # seen before a broker restart without persistence
    lease.connected(0.0)
    record = lease.due(SETTLE)
    assert record is not None
    assert record.epoch == 10**13 + 1
    fresh = Lease("s", "planner", "b", LEASE_S)
    fresh.connected(1_800_000_000.0)
    record = fresh.due(1_800_000_000.0 + SETTLE + 0.01)
    assert record is not None
    assert record.epoch >= 1_800_000_000_000


def plan(epoch: int, seq: int) -> ShardPlan:
    return ShardPlan(site="s", shard=0, epoch=epoch, seq=seq, issued_at=100.0, kind="observe")


def test_a_worker_refuses_plans_of_an_epoch_older_than_the_newest_lease() -> None:
    gate = PlanGate(60.0)
    assert gate.admit(plan(5, 7), 100.0) is None
    assert gate.fence(6, 100.0)  # the standby's lease record arrives before any of its plans
    why = gate.admit(plan(5, 8), 100.0)  # the old planner, woken from SIGSTOP
    assert why is not None
    assert "older planner" in why
    assert gate.admit(plan(6, 1), 100.0) is None  # the new planner's first plan
    assert not gate.fence(6, 100.0)  # a renewal changes nothing
    bogus = 10**15  # thousands of years ahead: it would fence out every real planner
    assert not gate.fence(bogus, 100.0)
    why = gate.admit(plan(bogus, 1), 100.0)
    assert why is not None
    assert "ahead" in why
    assert gate.admit(plan(6, 2), 100.0) is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lease_s": 0.5}, "lease_s"),
        ({"lease_s": 601}, "lease_s"),
        ({"planner_silence_s": 1}, "planner_silence_s"),
        ({"lease_s": 30, "planner_silence_s": 30}, "must exceed lease_s"),
    ],
)
def test_lease_settings_are_bounded(values: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShardingConfig.model_validate({"shards": 2, **values})


def test_the_sharded_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHSPARK_MQTT_PASSWORD", "mqtt-secret-value")
    loaded = load_config(Path(__file__).parents[2] / "deploy/hashspark.sharded.example.toml")
    (site,) = loaded.config.sites
    assert site.sharding is not None
    assert site.sharding.lease_s == 15.0
    assert site.sharding.planner_silence_s == 60.0


def test_a_bogus_record_cannot_hold_the_lease_off() -> None:
    lease = Lease("s", "planner", "b", LEASE_S)
    lease.connected(1000.0)
    forever = LeaseRecord(
        site="s", scope="planner", holder="a", epoch=1_000_000, state="held",
        at=1000.0, expires_at=1e12,
    )  # fmt: skip
    lease.on_record(forever, 1000.0)
    assert lease.due(1000.0 + LEASE_S - 0.1) is None  # a live-looking holder is respected ...
    claim = lease.due(1000.0 + LEASE_S)  # ... for lease_s at most
    assert claim is not None
    assert claim.epoch > 1_000_000
    ahead = LeaseRecord(
        site="s", scope="planner", holder="c", epoch=10**15, state="held",
        at=1000.0, expires_at=1003.0,
    )  # fmt: skip
    lease.on_record(ahead, 1000.0 + LEASE_S)
    assert lease.high_epoch < 10**15  # refused: epochs a day ahead are nobody's


def test_the_holder_is_told_once_even_if_a_stale_record_came_during_its_claim() -> None:
    changes: list[bool] = []
    lease = Lease("s", "planner", "b", LEASE_S, on_change=changes.append)
    lease.connected(0.0)
    claim = lease.due(SETTLE)
    assert claim is not None
    lease.published(claim, True)
    stale = LeaseRecord(
        site="s", scope="planner", holder="a", epoch=claim.epoch - 1, state="held",
        at=SETTLE, expires_at=SETTLE + LEASE_S,
    )  # fmt: skip
    lease.on_record(stale, SETTLE + 0.01)  # an old holder's last renewal, still in flight
    confirm = lease.due(2 * SETTLE + 0.01)  # republished: the retained record is ours again
    assert confirm is not None
    lease.published(confirm, True)
    assert changes == [True]
    assert lease.holding(2 * SETTLE + 0.02)
