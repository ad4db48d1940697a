"""Grid programs on simulated LuxOS and Braiins OS+ miners through the real pyasic driver.

The meter's ground truth, not the plan, decides whether each program was met.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from controller.accounting.instruments import SpotSupply
from controller.app.assemble import assemble
from controller.decision.overrides import Override
from controller.decision.policy import PolicyParams
from controller.runtime.override_book import OverrideBook
from controller.runtime.site_loop import SiteLoop
from controller.site_model import SiteModel
from simulators.miners.miner import Family
from tests.miners.conftest import Site, SiteFactory
from tests.miners.test_site_loop_pyasic import ListLedger, SettableFeed

CYCLE_S = 30.0  # simulated; one wall second at the fixture's 30x
RAMP_MW_PER_MIN = 0.007  # two S21s a simulated minute

# About 40 s of wall time: in the slow suite. The default suite covers grid programs on the
# in-process fleet (tests/test_grid_programs.py) and a demand response through pyasic across a
# daemon restart (tests/feeds/test_restart_pyasic.py).
pytestmark = pytest.mark.slow


async def _meter_w(site: Site) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{site.meter.url}/meter") as resp:
        data: dict[str, Any] = await resp.json()
    return float(data["total_power_w"])


async def _cycles(loop: SiteLoop, n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(CYCLE_S / 30.0)
        await loop.cycle()


async def test_demand_response_base_points_and_a_4cp_window_on_luxos_and_braiins(
    make_site: SiteFactory,
) -> None:
    site = await make_site(
        [
            (Family.LUXOS, "S21", 3),
            (Family.BRAIINS, "S21", 3),
            (Family.LUXOS, "S19jPro", 3),
            (Family.BRAIINS, "S19jPro", 3),
        ]
    )
    book = OverrideBook()
    params = PolicyParams(supply=SpotSupply(), ramp_up_mw_per_min=RAMP_MW_PER_MIN)
    loop = assemble(
        SiteModel("grid", site.spec, params, SpotSupply(), ()),
        clock=site.clock,
        price_feed=SettableFeed("price", 20.0),
        hashprice_feed=SettableFeed("hashprice", 50.0),
        driver=site.driver,
        ledger=ListLedger(),
        cycle_s=CYCLE_S,
        overrides=book,
    )
    await loop.cycle()
    await _cycles(loop, 2)
    full_w = await _meter_w(site)
    assert full_w > 0.9 * site.spec.nominal_mw * 1e6  # everything mines on cheap power

    # Demand response: half the site's load by a 10-minute deadline.
    now = site.clock.now()
    target_mw = full_w / 2 / 1e6
    book.add(Override("ers-1", "demand_response", now, now + 300, target_mw, deadline=now + 600))
    await loop.cycle()
    met_at = site.clock.now()
    assert await _meter_w(site) <= target_mw * 1e6
    assert met_at < now + 600  # before the deadline
    assert loop.last_status is not None
    assert loop.last_status.grid[0].program == "demand_response"

    # It ends by itself; power returns under the ramp limit, not at once.
    while site.clock.now() < now + 300:
        await _cycles(loop, 1)
    released_from = site.clock.now()
    start_w = await _meter_w(site)
    steps: list[float] = []
    for _ in range(6):
        await _cycles(loop, 1)
        steps.append(await _meter_w(site))
    budget_w = RAMP_MW_PER_MIN * 1e6 * (site.clock.now() - released_from + CYCLE_S) / 60
    assert steps[-1] > start_w  # it does come back
    # Targets, not the ramping draw, count against the budget; the draw stays below them.
    assert steps[0] - start_w <= RAMP_MW_PER_MIN * 1e6 * 1.5
    assert max(steps) - start_w <= budget_w

    # A base point trace in steps, followed within the tolerance.
    tolerance_mw = 0.004
    for target in (0.030, 0.020, 0.035):
        now = site.clock.now()
        book.add(
            Override(
                f"bp-{target}", "base_point", now, now + 240, target, tolerance_mw=tolerance_mw
            )
        )
        # Up moves are ramp-limited (and miners ramp after a resume): reach the band within
        # a few cycles, on the meter, then hold it.
        drawn = await _meter_w(site) / 1e6
        for _ in range(12):
            if abs(drawn - target) <= tolerance_mw:
                break
            await _cycles(loop, 1)
            drawn = await _meter_w(site) / 1e6
        assert abs(drawn - target) <= tolerance_mw, (target, drawn)
        for _ in range(2):
            await _cycles(loop, 1)
            drawn = await _meter_w(site) / 1e6
            assert abs(drawn - target) <= tolerance_mw, ("held", target, drawn)
        book.clear(f"bp-{target}")

    # A 4CP window: at most 5 kW for its duration.
    now = site.clock.now()
    book.add(Override("4cp", "peak_window", now, now + 180, 0.005))
    for _ in range(4):
        await _cycles(loop, 1)
        assert await _meter_w(site) <= 5_000.0
