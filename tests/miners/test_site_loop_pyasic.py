"""The site loop on either driver: it keeps cycling through faults, resumes under the ramp."""

from __future__ import annotations

import asyncio

import pytest

from controller.accounting.instruments import SpotSupply
from controller.app.assemble import assemble
from controller.decision.policy import PolicyParams
from controller.domain import EpochS, Reading
from controller.records import IntervalRecord
from controller.site_model import SiteModel
from simulators.miners.miner import Family
from tests.miners.conftest import DRIVER_KINDS, SiteFactory

RAMP_MW_PER_MIN = 0.0123  # four S19j Pro (3,068 W) per simulated minute
CYCLE_WALL_S = 1.0  # 30 simulated seconds at the fixture's speed


class SettableFeed:
    """A feed whose value the test sets; each reading is observed now."""

    def __init__(self, name: str, value: float) -> None:
        self.name = name
        self.value = value
        self.clock_now = 0.0

    def latest(self, now: EpochS) -> Reading | None:
        return Reading(self.value, now, self.name)

    def next_change_after(self, now: EpochS) -> EpochS | None:
        return None


class ListLedger:
    def __init__(self) -> None:
        self.records: list[IntervalRecord] = []

    def append(self, record: IntervalRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("driver_kind", DRIVER_KINDS)  # asic-rs: in the slow suite
async def test_loop_curtails_and_resumes_under_the_ramp_through_faults(
    make_site: SiteFactory, driver_kind: str
) -> None:
    site = await make_site(
        [(Family.LUXOS, "S19jPro", 4), (Family.BRAIINS, "S19jPro", 4)],
        call_timeout_s=1.0,
        confirm_timeout_s=1.5,
    )
    liar, gone = site.ips[1], site.ips[5]
    await site.fault([liar], {"kind": "liar"})
    await site.fault([gone], {"kind": "unreachable"})
    price = SettableFeed("price", 5_000.0)  # scarcity: curtail
    params = PolicyParams(supply=SpotSupply(), ramp_up_mw_per_min=RAMP_MW_PER_MIN)
    loop = assemble(
        SiteModel("s1", site.spec, params, SpotSupply(), ()),
        clock=site.clock,
        price_feed=price,
        hashprice_feed=SettableFeed("hashprice", 50.0),
        driver=site.driver,
        ledger=ListLedger(),
        cycle_s=30.0,
    )
    healthy = [ip for ip in site.ips if ip not in (liar, gone)]

    await loop.cycle()
    truth = await site.truth()
    assert all(truth[ip]["mode"] == "sleep" for ip in healthy)
    assert truth[liar]["mode"] == "normal"
    assert truth[gone]["mode"] == "normal"  # never reached, so never commanded

    # The liar is commanded again every cycle and stays Unverified; the loop goes on.
    await asyncio.sleep(CYCLE_WALL_S)
    last_decision_t = site.clock.now()  # the core's ramp budget runs from this decision
    await loop.cycle()
    assert (await site.truth())[liar]["mode"] == "normal"

    price.value = 10.0  # cheap power: resume, within the ramp budget
    start_w = sum(truth[ip]["power_w"] for ip in healthy)
    progress: list[int] = []
    for _ in range(8):
        await asyncio.sleep(CYCLE_WALL_S)
        await loop.cycle()
        truth = await site.truth()
        elapsed_min = (site.clock.now() - last_decision_t) / 60
        # Targets drawn, not the ramping draw: every admitted miner counts at nameplate.
        admitted_w = sum(3068.0 for ip in healthy if truth[ip]["mode"] == "normal")
        budget_w = RAMP_MW_PER_MIN * 1e6 * elapsed_min
        assert admitted_w - start_w <= budget_w, (admitted_w, budget_w)
        progress.append(sum(truth[ip]["mode"] == "normal" for ip in healthy))
        if progress[-1] == len(healthy):
            break
    assert progress[-1] == len(healthy)
    assert 0 < progress[0] < len(healthy)  # the ramp held the first resume cycle back
