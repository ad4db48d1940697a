"""Each fault mode gives its outcome; the healthy miners finish regardless."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from structlog.testing import capture_logs

from controller.decision.reconcile import (
    CommandBatch,
    Outcome,
    Rejected,
    Unreachable,
    Unverified,
    reconcile,
)
from controller.domain import OFF
from simulators.miners.miner import Family
from tests.miners.conftest import DRIVER_KINDS, SiteFactory, family_drivers

FAMILIES = [Family.LUXOS, Family.ANTMINER, Family.BRAIINS]


def everyone(n: int, point: int) -> CommandBatch:
    return CommandBatch(miner=np.arange(n, dtype=np.int64), point=np.full(n, point))


def outcomes(failed: tuple[tuple[int, Outcome], ...]) -> dict[int, type]:
    return {i: type(o) for i, o in failed}


@pytest.mark.parametrize(("family", "driver_kind"), family_drivers(FAMILIES))
async def test_liar_is_unverified_and_the_rest_are_applied(
    make_site: SiteFactory, family: Family, driver_kind: str
) -> None:
    site = await make_site([(family, "S19jPro", 3)], confirm_timeout_s=1.5)
    await site.driver.observe()
    await site.fault([site.ips[1]], {"kind": "liar"})
    report = await site.driver.apply(everyone(3, OFF))
    assert report.applied.tolist() == [0, 2]
    match report.failed:
        case ((1, Unverified(reason)),):
            assert "hashrate" in reason
        case other:
            pytest.fail(f"expected the liar unverified, got {other}")
    truth = await site.truth()
    assert truth[site.ips[1]]["mode"] == "normal"  # the meter agrees: it lied
    # The next cycle sees it still mining and commands it again, and only it.
    observed = await site.driver.observe()
    batch = reconcile(np.full(3, OFF), observed)
    assert batch.miner.tolist() == [1]


@pytest.mark.parametrize(("family", "driver_kind"), family_drivers(FAMILIES))
async def test_rejecting_miner_is_rejected(
    make_site: SiteFactory, family: Family, driver_kind: str
) -> None:
    site = await make_site([(family, "S19jPro", 2)])
    await site.driver.observe()
    await site.fault([site.ips[0]], {"kind": "reject"})
    report = await site.driver.apply(everyone(2, OFF))
    assert outcomes(report.failed) == {0: Rejected}, report.failed
    assert report.applied.tolist() == [1]


@pytest.mark.parametrize("driver_kind", DRIVER_KINDS)
@pytest.mark.parametrize("kind", ["silent", "unreachable"])
async def test_silent_and_unreachable_miners_are_unreachable_within_the_deadline(
    make_site: SiteFactory, kind: str, driver_kind: str
) -> None:
    site = await make_site([(Family.LUXOS, "S19jPro", 2), (Family.ANTMINER, "S19jPro", 2)])
    await site.driver.observe()
    faulty = [site.ips[0], site.ips[2]]
    await site.fault(faulty, {"kind": kind})
    started = time.monotonic()
    report = await site.driver.apply(everyone(4, OFF))
    elapsed = time.monotonic() - started
    assert outcomes(report.failed) == {0: Unreachable, 2: Unreachable}
    assert report.applied.tolist() == [1, 3]
    # A call is abandoned after call_timeout_s (1.5 s) and retried at most once.
    assert elapsed < 2 * 1.5 + 0.2 + 1.0

    started = time.monotonic()
    with capture_logs() as logs:
        observed = await site.driver.observe()
        await site.driver.observe()  # no change: nothing more is logged
    assert time.monotonic() - started < 2 * (2 * 1.5 + 0.2 + 1.0)
    assert observed.reachable.tolist() == [False, True, False, True]
    [event] = [e for e in logs if e["event"].startswith("miners_")]
    assert (event["event"], event["count"], event["ips"]) == ("miners_unreachable", 2, faulty)


async def test_drifting_miner_is_recommanded_by_the_next_reconciliation(
    make_site: SiteFactory,
) -> None:
    site = await make_site([(Family.BRAIINS, "S19jPro", 3)])
    await site.fault([site.ips[2]], {"kind": "drift", "drift_after_s": 30})  # 1 s wall
    plan = np.full(3, OFF)
    report = await site.driver.apply(reconcile(plan, await site.driver.observe()))
    assert report.applied.tolist() == [0, 1, 2]
    await asyncio.sleep(1.5)
    observed = await site.driver.observe()
    assert observed.point.tolist() == [OFF, OFF, 2]  # it resumed by itself
    batch = reconcile(plan, observed)
    assert batch.miner.tolist() == [2]
    report = await site.driver.apply(batch)
    assert report.applied.tolist() == [2]
    assert (await site.truth())[site.ips[2]]["mode"] == "sleep"


@pytest.mark.parametrize("driver_kind", DRIVER_KINDS)
async def test_rebooted_miner_is_unreachable_then_found_mining_and_curtailed_again(
    make_site: SiteFactory, driver_kind: str
) -> None:
    site = await make_site([(Family.LUXOS, "S19jPro", 2)])
    plan = np.full(2, OFF)
    await site.driver.apply(reconcile(plan, await site.driver.observe()))
    await site.fault([site.ips[0]], {"kind": "reboot", "reboot_s": 30})  # 1 s wall
    observed = await site.driver.observe()
    assert observed.reachable.tolist() == [False, True]
    assert reconcile(plan, observed).miner.tolist() == []  # unreachable: not commanded
    await asyncio.sleep(1.5)
    observed = await site.driver.observe()
    assert observed.reachable.tolist() == [True, True]
    assert observed.point.tolist() == [2, OFF]  # back mining: curtailment lost
    report = await site.driver.apply(reconcile(plan, observed))
    assert report.applied.tolist() == [0]
    assert (await site.truth())[site.ips[0]]["mode"] == "sleep"


@pytest.mark.parametrize("driver_kind", DRIVER_KINDS)
async def test_slow_miner_within_the_call_deadline_is_applied(
    make_site: SiteFactory, driver_kind: str
) -> None:
    site = await make_site([(Family.LUXOS, "S19jPro", 2)])
    await site.driver.observe()
    await site.fault([site.ips[0]], {"kind": "slow", "latency_s": 0.3})
    report = await site.driver.apply(everyone(2, OFF))
    assert report.applied.tolist() == [0, 1], report.failed


@pytest.mark.parametrize("driver_kind", DRIVER_KINDS)
@pytest.mark.parametrize("reported_w", [-5.0, -3068.0, 1e9])
async def test_impossible_wattage_through_pyasic_is_a_fault_not_a_curtailment(
    make_site: SiteFactory, reported_w: float, driver_kind: str
) -> None:
    """Issue 16: a LuxOS miner reporting -5 W was taken as asleep while it mined on."""
    site = await make_site([(Family.LUXOS, "S19jPro", 3)])
    before = await site.driver.observe()
    assert before.reachable.all()
    assert (before.point != OFF).all()
    await site.fault([site.ips[1]], {"kind": "bogus_power", "reported_w": reported_w})
    with capture_logs() as logs:
        observed = await site.driver.observe()
    assert observed.reachable.tolist() == [True, False, True]
    assert observed.point[1] == before.point[1] != OFF  # its last known point: mining
    [event] = [e for e in logs if e["event"] == "miners_unreachable"]
    assert "implausible telemetry: power" in str(event)
    truth = await site.truth()
    assert truth[site.ips[1]]["mode"] == "normal"  # the meter agrees: it never slept


#: The fault table on Braiins OS+, the same through both drivers (pyasic over gRPC, asic-rs
#: over GraphQL): miner index -> its fault and the outcome of curtailing it.
BRAIINS_TABLE: list[tuple[dict[str, object] | None, type | None]] = [
    (None, None),  # healthy: applied
    ({"kind": "unreachable"}, Unreachable),  # dead
    ({"kind": "silent"}, Unreachable),  # hanging: abandoned at the call deadline
    ({"kind": "slow", "latency_s": 0.3}, None),  # slow within the deadline: applied
    ({"kind": "liar"}, Unverified),
    ({"kind": "reject"}, Rejected),
]


@pytest.mark.slow  # the parity check of both drivers on BOS+; other families run by default
@pytest.mark.parametrize("driver_kind", ["pyasic", "asic-rs"])
async def test_braiins_fault_table_is_the_same_through_both_drivers(
    make_site: SiteFactory, driver_kind: str
) -> None:
    n = len(BRAIINS_TABLE)
    site = await make_site([(Family.BRAIINS, "S19jPro", n)], confirm_timeout_s=1.5)
    await site.driver.observe()
    for ip, (fault, _) in zip(site.ips, BRAIINS_TABLE, strict=True):
        if fault is not None:
            await site.fault([ip], fault)
    report = await site.driver.apply(everyone(n, OFF))
    expected = {i: want for i, (_, want) in enumerate(BRAIINS_TABLE) if want is not None}
    assert outcomes(report.failed) == expected, report.failed
    assert report.applied.tolist() == [0, 3]
    truth = await site.truth()
    assert [truth[ip]["mode"] for ip in site.ips] == [
        "sleep",
        "normal",
        "normal",
        "sleep",
        "normal",
        "normal",
    ]

    # Rebooting: unreachable while down, then found mining (curtailment lost), curtailed again.
    await site.fault([site.ips[0]], {"kind": "reboot", "reboot_s": 30})  # 1 s wall
    observed = await site.driver.observe()
    assert not observed.reachable[0]
    await asyncio.sleep(1.5)
    observed = await site.driver.observe()
    assert observed.reachable[0]
    assert observed.point[0] == 2  # back mining at its target
    report = await site.driver.apply(reconcile(np.full(n, OFF), observed))
    assert 0 in report.applied.tolist()
    assert (await site.truth())[site.ips[0]]["mode"] == "sleep"
