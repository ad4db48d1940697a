"""A 1,000-miner mixed fleet through the real pyasic driver: curtail, then resume under the ramp.

Slow (about two minutes on two cores): run with ``make test-slow``.
"""

from __future__ import annotations

import asyncio

import pytest

from controller.accounting.instruments import SpotSupply
from controller.app.assemble import assemble
from controller.decision.policy import PolicyParams
from controller.site_model import SiteModel
from simulators.miners.miner import Family
from tests.miners.conftest import SiteFactory
from tests.miners.test_site_loop_pyasic import ListLedger, SettableFeed

RAMP_MW_PER_MIN = 0.15


@pytest.mark.slow
async def test_a_thousand_miners_curtail_confirmed_and_resume_under_the_ramp(
    make_site: SiteFactory,
) -> None:
    site = await make_site(
        [
            (Family.LUXOS, "S19jPro", 167),
            (Family.LUXOS, "S21", 167),
            (Family.ANTMINER, "S19jPro", 167),
            (Family.ANTMINER, "S21", 167),
            (Family.BRAIINS, "S19jPro", 166),
            (Family.BRAIINS, "S21", 166),
        ],
        concurrency=200,
        call_timeout_s=5.0,
        discovery_timeout_s=10.0,
        confirm_timeout_s=8.0,
        resume_batch_size=200,
    )
    assert site.spec.size == 1000
    price = SettableFeed("price", 5_000.0)
    params = PolicyParams(supply=SpotSupply(), ramp_up_mw_per_min=RAMP_MW_PER_MIN)
    loop = assemble(
        SiteModel("big", site.spec, params, SpotSupply(), ()),
        clock=site.clock,
        price_feed=price,
        hashprice_feed=SettableFeed("hashprice", 50.0),
        driver=site.driver,
        ledger=ListLedger(),
        cycle_s=30.0,
    )
    await loop.cycle()
    truth = await site.truth()
    assert sum(m["mode"] == "sleep" for m in truth.values()) == 1000  # every miner, on the meter

    price.value = 10.0
    nominal_w = {ip: float(site.spec.nominal_power_w[k]) for k, ip in enumerate(site.ips)}
    last_decision = site.clock.now()
    running: list[int] = []
    for _ in range(40):
        await asyncio.sleep(0.5)
        await loop.cycle()
        truth = await site.truth()
        admitted_w = sum(nominal_w[ip] for ip, m in truth.items() if m["mode"] == "normal")
        budget_w = RAMP_MW_PER_MIN * 1e6 * (site.clock.now() - last_decision) / 60
        assert admitted_w <= budget_w + 1e-6, (admitted_w, budget_w)
        running.append(sum(m["mode"] == "normal" for m in truth.values()))
        if running[-1] == 1000:
            break
    assert running[-1] == 1000
    assert len(running) >= 3  # staggered over several cycles, not all at once
