"""No single process at site scale: two planners, two workers and a standby, over a real Mosquitto.

Real processes throughout (``hashspark run`` twice, ``hashspark worker`` three times, the
simulated LuxOS fleet speaking its real protocol to unmodified pyasic):

1. SIGKILL the planner holding the lease in the middle of a resume event: the standby
   planner takes over within the lease, and the simulator's command log shows no command
   received between the workers' fence to the new epoch and the new planner's first plan.
   The workers run two calls at a time and the first two miners of each shard answer
   8 s late, so the old planner's resume is still queued at the takeover: without the
   cancel on the new epoch its later commands would land in that window. (A command the
   slow miners had received before the fence lands late: the log's time less the delay
   is when it was received.)
2. SIGSTOP the remaining planner and let the lease lapse: the workers apply the site's
   fail-safe (``curtail``) themselves, on the meter; SIGCONT: it takes the lease back with
   a newer epoch and drives the site again.
3. SIGKILL the worker of shard 1: its standby takes the shard's lease and the shard is
   driven again (a new report from it, a price spike curtailing it on the meter).

The timings are printed (``-s``) and written in docs/scaling.md. A smaller scenario runs in
the default suite: a standby worker taking over a killed one, then the workers' fail-safe
under a stopped planner.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from adapters.sharding.lease import settle_s
from tests.daemon_kit import get
from tests.feeds.conftest import Broker
from tests.sharding.kit import SITE, Lines, ShardedSite, topic_payload, wait_until

LEASE_S = 5.0
SILENCE_S = 10.0
SETTLE_S = settle_s(LEASE_S)
LATENCY_S = 7.0  # the slow miners' replies: longer than a takeover, below call_timeout_s
SPEED = 100.0


def log_time(entry: dict[str, Any]) -> float:
    """A JSON log line's wall time."""
    return datetime.fromisoformat(str(entry["timestamp"])).timestamp()


def lease_records(bus: Lines, after: int = 0) -> list[tuple[float, dict[str, Any]]]:
    """The planner lease records seen on the bus since ``after``."""
    out = []
    for t, line in bus.snapshot()[after:]:
        topic, doc = topic_payload(line)
        if topic == f"hashspark/{SITE}/planner/lease" and doc is not None:
            out.append((t, doc))
    return out


def managed(line: str) -> list[int] | None:
    """The managed shards of a planner summary line, else None."""
    topic, doc = topic_payload(line)
    return doc["managed"] if topic == f"hashspark/{SITE}/shards" and doc else None


def name_of(site: ShardedSite, holder: str) -> str:
    """The process name of a lease holder ``host:pid:ms``."""
    pid = int(holder.split(":")[1])
    return next(n for n, p in site.procs.items() if p.pid == pid)


def driving(site: ShardedSite, shard: int) -> str:
    """The worker process that took shard ``shard`` last (its lease holder)."""
    taken = [
        (log_time(e), name)
        for name in site.procs
        if name.startswith("worker")
        for e in site.log(name)
        if e.get("event") == "shard_taken" and e["shard"] == shard
    ]
    return max(taken)[1]


@pytest.mark.slow
def test_planner_and_worker_failover_keeps_the_site_controlled(
    tmp_path: Path, broker: Broker
) -> None:
    miners = 40
    site = ShardedSite(
        tmp_path,
        broker.port,
        "127.67.0.1",
        miners,
        speed=SPEED,
        concurrency=2,
        planners=2,
        standby_workers=(1,),
        sharding_extra=f"lease_s = {LEASE_S}\nplanner_silence_s = {SILENCE_S}",
        failsafe_action="curtail",
    )
    figures: dict[str, float] = {}
    try:
        site.start()
        bus = site.bus
        assert bus is not None
        bus.wait(lambda line: managed(line) == [0, 1], 180, "both shards managed")
        held = [d for _, d in lease_records(bus) if d["state"] == "held"]
        first = name_of(site, held[-1]["holder"])
        second = next(n for n in ("planner", "planner1") if n != first)
        epoch1 = held[-1]["epoch"]

        # --- a spike: every miner asleep, commanded by the lease holder only ----------------
        site.publish_price(broker, 5_000.0)
        wait_until(
            lambda: all(m["mode"] == "sleep" for m in site.meter().values()),
            120,
            "every miner asleep",
        )
        plans = [
            doc
            for _, line in bus.snapshot()
            for topic, doc in [topic_payload(line)]
            if topic.endswith("/plan") and doc is not None
        ]
        assert {p["epoch"] for p in plans} == {epoch1}  # one planner commands, not two

        # --- 1. SIGKILL the holder in the middle of the resume event ----------------------
        slow = {ip for n in (0, 1) for ip in site.shard_ips(n)[:2]}
        site.fault(sorted(slow), {"kind": "slow", "latency_s": LATENCY_S})
        mark = bus.mark()
        site.publish_price(broker, 20.0)

        def resume_plan(line: str) -> bool:
            topic, doc = topic_payload(line)
            return topic.endswith("/plan") and doc is not None and doc["kind"] == "apply"

        bus.wait(resume_plan, 120, "the resume event's first apply plan", after=mark)
        site.procs[first].send_signal(signal.SIGKILL)
        killed_at = time.time()
        confirmed_at, _ = bus.wait(
            lambda line: (
                (d := topic_payload(line)[1]) is not None
                and topic_payload(line)[0].endswith("/planner/lease")
                and d["epoch"] > epoch1
                and name_of(site, d["holder"]) == second
                and d["at"] > killed_at + SETTLE_S / 2  # the confirmation, not the claim
            ),
            LEASE_S * 4,
            "the standby planner confirming its lease",
            after=mark,
        )
        figures["planner takeover after SIGKILL (s)"] = confirmed_at - killed_at
        assert confirmed_at - killed_at <= LEASE_S + 2 * SETTLE_S + 1.0
        epoch2 = max(d["epoch"] for _, d in lease_records(bus, mark))

        # Every miner mining again, driven by the new planner.
        wait_until(
            lambda: all(m["mode"] == "normal" for m in site.meter().values()),
            240,
            "every miner mining again under the new planner",
        )
        logs, sim_now, wall_now, uncertain_s = site.command_log()
        site.clear_faults()

        def sim(wall: float) -> float:
            return sim_now - (wall_now - wall) * SPEED

        cancelled = 0
        for n in (0, 1):
            entries = site.log(driving(site, n))
            fence = next(
                e for e in entries if e.get("event") == "planner_epoch" and e["epoch"] == epoch2
            )
            cancelled += sum(
                1 for e in entries if e.get("event") == "plan_cancelled" and e["epoch"] == epoch1
            )
            started = [
                e
                for e in entries
                if e.get("event") == "plan_started" and log_time(e) > log_time(fence)
            ]
            assert {e["epoch"] for e in started} <= {epoch2}  # nothing of the old epoch ran
            # Until the new planner's first command plan (if it needed one), nothing may land.
            end = log_time(started[0]) if started else time.time()
            # Narrowed on both sides by how well the two clocks are pinned to each other.
            window = (sim(log_time(fence) + uncertain_s), sim(end - uncertain_s))
            delay = LATENCY_S * SPEED  # simulated seconds between receipt and the log
            stale = [
                (ip, round(wall_now - (sim_now - t) / SPEED, 3), kind)
                for ip in site.shard_ips(n)
                for t, kind in logs[ip]
                if window[0] < t - (delay if ip in slow else 0.0) < window[1]
            ]
            assert stale == [], (stale, log_time(fence), end)  # none between fence and new plan
        assert cancelled >= 1  # the old planner's resume was in flight, and was cut short

        # --- 2. SIGSTOP the only planner left: the workers' fail-safe ---------------------
        mark = bus.mark()
        site.procs[second].send_signal(signal.SIGSTOP)
        stopped_at = time.time()
        wait_until(
            lambda: all(m["mode"] == "sleep" for m in site.meter().values()),
            SILENCE_S + 60,
            "the fail-safe (curtail) on the meter",
            every_s=0.1,
        )
        figures["fail-safe on the meter after SIGSTOP (s)"] = time.time() - stopped_at
        standby = next(n for n in ("worker1", "worker1b") if n != driving(site, 1))

        def logged_failsafe(name: str) -> bool:
            events = {e.get("event") for e in site.log(name)}
            return {"planner_silent", "failsafe_applied"} <= events

        for n in (0, 1):
            name = driving(site, n)
            wait_until(partial(logged_failsafe, name), 60, f"{name} logging its fail-safe")
        assert "failsafe_applied" not in [e.get("event") for e in site.log(standby)]

        site.procs[second].send_signal(signal.SIGCONT)
        resumed_at = time.time()
        wait_until(
            lambda: all(m["mode"] == "normal" for m in site.meter().values()),
            120,
            "the planner back, the site mining again",
        )
        figures["mining again after SIGCONT (s)"] = time.time() - resumed_at
        epoch3 = max(d["epoch"] for _, d in lease_records(bus, mark))
        assert epoch3 > epoch2  # it took the lease again, under a newer epoch
        assert any(e.get("event") == "planner_back" for e in site.log(driving(site, 0)))

        # --- 3. SIGKILL shard 1's worker: its standby takes the shard over ----------------
        mark = bus.mark()
        site.procs[driving(site, 1)].send_signal(signal.SIGKILL)
        killed_at = time.time()
        bus.wait(lambda line: (m := managed(line)) is not None and 1 not in m, 30,
                 "shard 1 unmanaged", after=mark)  # fmt: skip
        back_at, _ = bus.wait(
            lambda line: managed(line) == [0, 1], LEASE_S * 4 + 60, "shard 1 managed", after=mark
        )
        figures["shard managed again after worker SIGKILL (s)"] = back_at - killed_at
        standby_id = next(e["worker"] for e in site.log(standby) if e.get("event") == "shard_taken")
        report_at, _ = bus.wait(
            lambda line: (
                topic_payload(line)[0].endswith("/shard/1/report")
                and (topic_payload(line)[1] or {}).get("worker") == standby_id
            ),
            60,
            "a report from the standby worker",
            after=mark,
        )
        figures["shard driven again (first report) after worker SIGKILL (s)"] = (
            report_at - killed_at
        )
        assert back_at - killed_at <= LEASE_S + 2 * SETTLE_S + 1.0
        site.publish_price(broker, 5_000.0)
        shard1 = set(site.shard_ips(1))
        wait_until(
            lambda: all(m["mode"] == "sleep" for ip, m in site.meter().items() if ip in shard1),
            120,
            "shard 1 curtailed through its standby worker",
        )
        for planner in (first, second):
            if site.procs[planner].poll() is None:
                assert not any(
                    e.get("level") == "error" and e.get("event") == "site_failed"
                    for e in site.log(planner)
                )
    finally:
        site.stop()
        print()
        for what, seconds in figures.items():
            print(f"  {what}: {seconds:.2f}")


@pytest.mark.slow  # about 45 s of real processes and leases
def test_a_standby_worker_takes_over_and_a_silent_planner_leaves_the_failsafe_to_workers(
    tmp_path: Path, broker: Broker
) -> None:
    lease_s, silence_s = 2.0, 4.0
    site = ShardedSite(
        tmp_path,
        broker.port,
        "127.67.1.1",
        20,
        speed=SPEED,
        standby_workers=(0,),
        sharding_extra=f"lease_s = {lease_s}\nplanner_silence_s = {silence_s}",
        failsafe_action="curtail",
    )
    try:
        site.start()
        bus = site.bus
        assert bus is not None
        bus.wait(lambda line: managed(line) == [0, 1], 120, "both shards managed")
        health = json.loads(get(f"http://127.0.0.1:{site.metrics_port}/healthz", timeout=10))
        assert health["sites"][SITE]["planner"]["state"] == "holding"  # who leads, on /healthz
        site.publish_price(broker, 20.0)
        wait_until(
            lambda: all(m["mode"] == "normal" for m in site.meter().values()), 60, "all mining"
        )

        # The worker driving shard 0 dies; its standby takes the shard's lease.
        mark = bus.mark()
        dead = driving(site, 0)
        site.procs[dead].send_signal(signal.SIGKILL)
        bus.wait(lambda line: (m := managed(line)) is not None and 0 not in m, 30,
                 "shard 0 unmanaged", after=mark)  # fmt: skip
        bus.wait(lambda line: managed(line) == [0, 1], 60, "shard 0 managed again", after=mark)
        assert driving(site, 0) != dead

        # The planner stops: both driving workers apply the fail-safe (curtail) themselves.
        site.procs["planner"].send_signal(signal.SIGSTOP)
        wait_until(
            lambda: all(m["mode"] == "sleep" for m in site.meter().values()),
            silence_s + 60,
            "the workers' fail-safe on the meter",
        )
        for n in (0, 1):
            events = [e.get("event") for e in site.log(driving(site, n))]
            assert "planner_silent" in events
        site.procs["planner"].send_signal(signal.SIGCONT)
        wait_until(
            lambda: all(m["mode"] == "normal" for m in site.meter().values()),
            120,
            "the planner back: every miner mining again",
        )
    finally:
        site.stop()
