"""The pure parts of sharding: the partition, watts on the wire, messages, the plan gate, config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.miners.capabilities import restrict_fleet
from adapters.sharding.messages import (
    MAX_MESSAGE_BYTES,
    MessageError,
    PlanGate,
    ShardPlan,
    ShardReport,
    ShardStatus,
)
from adapters.sharding.shards import bits_mask, mask_bits, partition, points_of, watts_of
from controller.config import ConfigError, load_config
from controller.domain import build_fleet


@pytest.mark.parametrize(
    ("addresses", "shards", "expected"),
    [
        (["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"], 2, [[0, 1], [2, 3]]),
        (["127.0.0.1", "127.0.0.2", "127.0.0.3"], 2, [[0, 1], [2]]),
        # Numeric order, not text order: .10 comes after .9.
        (["127.0.0.10", "127.0.0.9", "127.0.0.2", "127.0.0.11"], 2, [[1, 2], [0, 3]]),
        # Two groups interleaved in the address space: shards follow addresses, not groups.
        (["10.0.1.1", "10.0.1.2", "10.0.0.1", "10.0.0.2"], 2, [[2, 3], [0, 1]]),
        (["10.0.0.1"], 1, [[0]]),
    ],
)
def test_shards_are_contiguous_address_ranges(
    addresses: list[str], shards: int, expected: list[list[int]]
) -> None:
    assert [p.tolist() for p in partition(addresses, shards)] == expected


@pytest.mark.parametrize("shards", [0, 5])
def test_a_partition_needs_between_one_shard_and_one_per_miner(shards: int) -> None:
    with pytest.raises(ValueError, match="shards for 4 miners"):
        partition(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"], shards)


def test_points_travel_as_watts_between_a_restricted_and_a_full_fleet() -> None:
    full = build_fleet(
        [("S21", 2, [(155.0, 2100.0), (200.0, 3500.0)]), ("S19", 1, [(104.0, 3068.0)])]
    )
    # Miner 0 can only stop or run at the top: its point 1 in the planner is 3,500 W.
    mask = full.valid.copy()
    mask[0, 1] = False
    planned = restrict_fleet(full, mask)
    rows = np.arange(3, dtype=np.int64)
    wire = watts_of(planned, rows, np.array([1, 1, 0]))
    assert wire == [3500, 2100, 0]
    assert points_of(full, rows, wire).tolist() == [2, 1, 0]
    assert points_of(planned, rows, watts_of(full, rows, np.array([2, 2, 1]))).tolist() == [1, 2, 1]


def test_allowed_masks_round_trip_as_bits() -> None:
    mask = np.array([[True, False, True], [False, True, True], [True, True, True]])
    bits = mask_bits(mask)
    assert bits == [5, 6, 7]
    assert (bits_mask(bits, 3) == mask).all()


def _plan(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "site": "big",
        "shard": 1,
        "epoch": 1_700_000_000_000,
        "seq": 7,
        "issued_at": 1_700_000_100.0,
        "kind": "apply",
        "miners": [0, 3],
        "target_w": [0, 3068],
    }
    return base | changes


def test_a_plan_round_trips() -> None:
    plan = ShardPlan.parse(json.dumps(_plan()).encode())
    assert plan.miners == (0, 3)
    assert ShardPlan.parse(plan.to_bytes()) == plan


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"not json", "Invalid JSON"),
        (json.dumps(_plan(extra=1)).encode(), "extra"),
        (json.dumps(_plan(v=2)).encode(), "v"),
        (json.dumps(_plan(target_w=[0])).encode(), "differ in length"),
        (json.dumps(_plan(miners=[3, 3], target_w=[0, 0])).encode(), "twice"),
        (json.dumps(_plan(kind="observe")).encode(), "commands no miner"),
        (json.dumps(_plan(target_w=[0, -1])).encode(), "target_w"),
        (json.dumps(_plan(target_w=[0, 1e9])).encode(), "target_w"),
        (json.dumps(_plan(target_w=[0, "3068"])).encode(), "target_w"),
        (json.dumps(_plan(seq=0)).encode(), "seq"),
        (json.dumps(_plan(site="Big Site")).encode(), "site"),
        (json.dumps(_plan(shard=256)).encode(), "shard"),
        (json.dumps(_plan(issued_at="soon")).encode(), "issued_at"),
        (json.dumps(_plan(issued_at=float("nan"))).encode(), "issued_at"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "bytes, more than"),
    ],
)
def test_bad_plans_are_refused_with_the_reason(payload: bytes, why: str) -> None:
    with pytest.raises(MessageError, match=why):
        ShardPlan.parse(payload)


def _report(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "site": "big",
        "shard": 0,
        "epoch": 1,
        "seq": 2,
        "worker": "host:12:1",
        "finished_at": 5.0,
        "applied": [0],
        "confirmation_s": [0.4],
        "failures": [{"miner": 1, "outcome": "unverified", "reason": "still hashing"}],
        "point_w": [0, 3068],
        "reachable": [True, True],
        "power_w": 3090.0,
        "hashrate_th": 104.0,
    }
    return base | changes


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"confirmation_s": []}, "applied and confirmation_s"),
        ({"reachable": [True]}, "point_w and reachable"),
        ({"applied": [1], "confirmation_s": [0.1]}, "names a miner twice"),
        ({"applied": [5], "confirmation_s": [0.1]}, "outside the shard"),
        ({"failures": [{"miner": 1, "outcome": "applied", "reason": ""}]}, "outcome"),
        ({"failures": [{"miner": 1, "outcome": "rejected", "reason": "x" * 301}]}, "reason"),
        ({"worker": "a b"}, "worker"),
    ],
)
def test_bad_reports_are_refused(changes: dict[str, Any], why: str) -> None:
    assert ShardReport.parse(json.dumps(_report()).encode()).applied == (0,)
    with pytest.raises(MessageError, match=why):
        ShardReport.parse(json.dumps(_report(**changes)).encode())


def test_the_last_will_is_a_valid_status() -> None:
    will = ShardStatus(site="big", shard=3, state="offline", reason="connection lost")
    assert ShardStatus.parse(will.to_bytes()).state == "offline"


T = 1_700_000_100.0
E = 1_700_000_000_000


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        # (epoch, seq, issued_at) in arrival order -> which ran (None) and why not.
        ([(E, 1, T), (E, 2, T)], [None, None]),
        ([(E, 1, T), (E, 1, T)], [None, "duplicate"]),
        ([(E, 3, T), (E, 2, T)], [None, "out of order"]),
        ([(E, 3, T), (E + 1, 1, T)], [None, None]),  # a restarted planner starts over
        ([(E + 1, 1, T), (E, 9, T)], [None, "older planner"]),
        ([(E, 1, T - 61)], ["stale"]),
        ([(E, 1, T - 61), (E, 1, T)], ["stale", None]),  # a stale plan is not remembered
    ],
)
def test_the_plan_gate_runs_each_plan_once_newest_first(
    sequence: list[tuple[int, int, float]], expected: list[str | None]
) -> None:
    gate = PlanGate(max_age_s=60.0)
    got = []
    for epoch, seq, issued in sequence:
        plan = ShardPlan.parse(json.dumps(_plan(epoch=epoch, seq=seq, issued_at=issued)).encode())
        why = gate.admit(plan, now=T)
        got.append(None if why is None else why)
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert g is None
        else:
            assert g is not None
            assert e in g


SITE = """
[[sites]]
id = "s"
price_feed = {{ type = "mqtt", broker = {{ host = "127.0.0.1" }} }}
hashprice_feed = {{ type = "mqtt", broker = {{ host = "127.0.0.1" }} }}
{driver}
[[sites.miners]]
model = "Antminer S21"
addresses = ["10.0.0.1-10.0.0.4"]
[sites.supply]
type = "spot"
{sharding}
"""


@pytest.mark.parametrize(
    ("driver", "sharding", "error"),
    [
        ('[sites.driver]\ntype = "pyasic"', "[sites.sharding]\nshards = 2", None),
        ("", "[sites.sharding]\nshards = 2", "sharding needs driver.type"),
        ('[sites.driver]\ntype = "pyasic"', "[sites.sharding]\nshards = 5", "shards is 5"),
        ('[sites.driver]\ntype = "pyasic"', "[sites.sharding]\nshards = 2\nfoo = 1", "foo"),
        ('[sites.driver]\ntype = "pyasic"', "[sites.sharding]\nshards = 0", "shards"),
    ],
)
def test_sharding_config(tmp_path: Path, driver: str, sharding: str, error: str | None) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(driver=driver, sharding=sharding))
    if error is None:
        site = load_config(path).config.sites[0]
        assert site.sharding is not None
        assert site.shard_broker is not None
        return
    with pytest.raises(ConfigError, match=error):
        load_config(path)
