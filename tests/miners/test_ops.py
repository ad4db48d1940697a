"""Manual operations: every target gets a confirmed outcome, as a table or JSON rows."""

from __future__ import annotations

from controller.app.fleet_ops import operate, table
from simulators.miners.miner import Family
from tests.miners.conftest import SiteFactory, fast_config


async def test_curtail_power_limit_and_status_report_each_miner(make_site: SiteFactory) -> None:
    site = await make_site([(Family.LUXOS, "S21", 1), (Family.ANTMINER, "S21", 1)], discover=False)
    config = fast_config()
    rows = await operate("curtail", site.ips, config, None)
    assert [(r.ip, r.outcome) for r in rows] == [(ip, "applied") for ip in site.ips]
    truth = await site.truth()
    assert all(truth[ip]["mode"] == "sleep" for ip in site.ips)

    rows = await operate("power-limit", site.ips, config, 2100.0)
    assert [r.outcome for r in rows] == ["applied", "rejected"]
    assert "cannot throttle" in rows[1].detail
    truth = await site.truth()
    assert truth[site.ips[0]]["power_target_w"] == 2100  # LuxOS: the 60 % profile
    assert truth[site.ips[1]]["mode"] == "sleep"  # stock: untouched

    rows = await operate("status", [*site.ips, "127.46.250.251"], config, None)
    assert [r.outcome for r in rows] == ["reachable", "reachable", "unreachable"]
    assert rows[0].detail.startswith("running")
    assert rows[1].detail.startswith("off")
    text = table(rows)
    assert text.splitlines()[0].split() == [
        "ADDRESS",
        "FIRMWARE",
        "MODEL",
        "OUTCOME",
        "SECONDS",
        "DETAIL",
    ]
    assert len(text.splitlines()) == 4
