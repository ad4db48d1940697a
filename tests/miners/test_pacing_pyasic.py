"""Pacing through pyasic: a miner whose firmware refuses every command is backed off.

Simulated LuxOS miners (``hashspark simulate``'s models, in process, on the fixture's 30x
clock), the pyasic driver and the daemon's site loop; commands are counted by the
simulator's meter, not by the daemon.
"""

from __future__ import annotations

import aiohttp
import numpy as np
import pytest

from controller.accounting.instruments import SpotSupply
from controller.app.assemble import assemble
from controller.decision.policy import PolicyParams
from controller.site_model import SiteModel
from controller.status import SiteStatus
from simulators.miners.miner import Family
from tests.miners.conftest import Site, SiteFactory
from tests.miners.test_site_loop_pyasic import ListLedger, SettableFeed

SPAN_S = 600.0  # simulated: 20 wall seconds
CYCLE_S = 30.0


# 20 s (600 simulated seconds): in the slow suite; backoff is in the default suite through the
# site loop (tests/test_pacing_loop.py) and in the core (tests/test_pacing.py).
@pytest.mark.slow
async def test_a_refusing_miner_is_backed_off_and_the_others_commanded_once(
    make_site: SiteFactory,
) -> None:
    site = await make_site([(Family.LUXOS, "S19jPro", 3)])
    refuser = site.ips[0]
    await site.fault([refuser], {"kind": "reject"})
    statuses: list[SiteStatus] = []

    async def sink(status: SiteStatus) -> None:
        statuses.append(status)

    loop = assemble(
        SiteModel("s", site.spec, PolicyParams(supply=SpotSupply()), SpotSupply(), ()),
        clock=site.clock,
        price_feed=SettableFeed("price", 5_000.0),  # scarcity: curtail everything
        hashprice_feed=SettableFeed("hashprice", 50.0),
        driver=site.driver,
        ledger=ListLedger(),
        cycle_s=CYCLE_S,
        status_sink=sink,
    )
    start = site.clock.now()
    await loop.run(until=start + SPAN_S)
    truth = await site.truth()
    assert [truth[ip]["mode"] for ip in site.ips[1:]] == ["sleep", "sleep"]
    assert [truth[ip]["commands"] for ip in site.ips[1:]] == [1, 1]
    # Every cycle, without backoff: 21 curtails in 600 s. With it (10, 20, 40, 80, 160,
    # 320 s after each refusal, at the next 30 s cycle): 6, give or take a cycle's jitter.
    refused = truth[refuser]["commands"]
    assert truth[refuser]["mode"] == "normal"
    assert 4 <= refused <= 7, refused
    last = statuses[-1]
    assert last.pacing.in_backoff == 1
    assert dict(last.pacing.deferred)["backoff"] >= 21 - refused - 2
    # The gaps between the refused commands grow (the simulator's own log).
    log = [t for t, _ in (await _log(site, refuser))]
    assert len(log) == refused
    assert (np.diff(np.diff(log)) > -CYCLE_S / 2).all(), log


async def _log(site: Site, ip: str) -> list[tuple[float, str]]:
    """One miner's command log, from the simulator's meter."""
    url = f"{site.meter.url}/meter?log=1"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        data = await resp.json()
    (miner,) = [m for m in data["miners"] if m["ip"] == ip]
    return [(float(t), str(k)) for t, k in miner["command_log"]]
