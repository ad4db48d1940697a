"""Curves through real pyasic on simulated miners: firmware curves, and learning from telemetry.

Each test runs its fleet on its own /24 under 127.59.200.0 and up (outside the blocks the
rest of tests/miners uses by default).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import structlog
from prometheus_client import CollectorRegistry

from adapters.metrics import Metrics, PnlBook
from adapters.miners.config import PyasicDriverConfig
from adapters.miners.firmware_curves import BRAIINS_DETAIL, LUXOS_DETAIL
from adapters.miners.pyasic_lib import pyasic
from controller.accounting.instruments import SpotSupply
from controller.app import curves_cmd
from controller.app.assemble import assemble
from controller.app.daemon import Daemon, DaemonOptions
from controller.config import load_config
from controller.curves.book import CurveBook, CurvePreference, CurveSource, GroupSpec
from controller.curves.fit import FitParams
from controller.decision.policy import PolicyParams
from controller.domain import iso
from controller.runtime.site_curves import SiteCurves
from controller.site_model import SiteModel
from simulators.miners.braiins_tuner import TUNED_FRACTIONS, TUNING_S
from simulators.miners.miner import Family
from simulators.miners.models import S21
from tests import scenario_kit
from tests.miners.conftest import SPEED, SiteFactory
from tests.miners.test_site_loop_pyasic import ListLedger, SettableFeed

_blocks = itertools.count(200)


def block() -> str:
    """A fresh /24 under 127.59.200.0/21 for this module's fleets."""
    n = next(_blocks)
    assert n < 250
    return f"127.59.{n}.1"


LUXOS_STEPS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1)  # the simulated LuxOS profile ladder


async def test_firmware_curves_of_luxos_profiles_and_the_braiins_tuner(
    make_site: SiteFactory,
) -> None:
    site = await make_site([(Family.LUXOS, "S21", 2), (Family.BRAIINS, "S21", 2)], ip_start=block())
    curves = await site.driver.read_firmware_curves()
    luxos, braiins = curves[:2], curves[2:]
    for curve in luxos:
        assert curve is not None
        assert curve.detail == LUXOS_DETAIL
        assert [w for _, w in curve.points] == [
            round(S21.nameplate_power_w * f) for f in LUXOS_STEPS
        ]
        for h, w in curve.points:
            assert h == pytest.approx(S21.hashrate_at_th(w), rel=0.005)
    for curve in braiins:
        assert curve is not None
        assert curve.detail == BRAIINS_DETAIL
        assert [w for _, w in curve.points] == [
            round(S21.nameplate_power_w * f) for f in TUNED_FRACTIONS
        ]
        for h, w in curve.points:  # each unit measures its own chips: within 1.5 %
            assert h == pytest.approx(S21.hashrate_at_th(w), rel=0.016)
    assert luxos[0] == luxos[1]

    # Both groups on "auto": the firmware's curve, combined over the group's miners.
    groups = [
        GroupSpec("Antminer S21", 2, None, ((200.0, 3500.0),), True, CurvePreference.AUTO),
        GroupSpec("Antminer S21", 2, "braiins", ((200.0, 3500.0),), True, CurvePreference.AUTO),
    ]
    sc = SiteCurves("s1", CurveBook(groups), site.driver)
    fleet = await sc.start(site.clock.now())
    lux, bos = sc.curves
    assert (lux.source, lux.firmware, len(lux.points)) == (CurveSource.FIRMWARE, "luxos", 8)
    assert (bos.source, bos.firmware) == (CurveSource.FIRMWARE, "braiins")
    assert [w for _, w in bos.points] == [2100.0, 2800.0, 3500.0]
    assert "2 of 2 miners" in bos.detail
    assert fleet.power_w[0, 1:9].tolist() == [w for _, w in lux.points]
    assert site.driver.fleet is fleet  # the driver plans and confirms on the same points

    # A BOS+ miner run at a new target saves a tuned profile for it after a while.
    handle = await pyasic().get_miner(site.ips[2])
    state = await handle.web.get_tuner_state()
    assert state["overallTunerState"].name == "STABLE"  # at nameplate, a tuned target
    assert await handle.set_power_limit(2450)
    state = await handle.web.get_tuner_state()
    assert state["overallTunerState"].name == "TUNING"
    assert state["powerTargetModeState"]["currentTarget"] == {"watt": 2450}
    assert "profile" not in state["powerTargetModeState"]
    deadline = time.monotonic() + 3 * TUNING_S / SPEED + 10
    while True:
        again = await site.driver.read_firmware_curves()
        assert again[2] is not None
        if 2450.0 in [w for _, w in again[2].points] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert [w for _, w in again[2].points] == [2100.0, 2450.0, 2800.0, 3500.0]
    state = await handle.web.get_tuner_state()
    assert state["overallTunerState"].name == "STABLE"
    assert state["powerTargetModeState"]["profile"]["target"] == {"watt": 2450}
    assert again[3] == braiins[1]  # the other miner was never run there

    # Read again while running: the new profile is a point of the group's curve (one of
    # its two units states it: half of them), and the site re-plans with it.
    assert sc.after_cycle(site.clock.now()) is None  # nothing new yet
    with structlog.testing.capture_logs() as logs:
        await sc.reread_firmware(site.clock.now())
        replanned = sc.after_cycle(site.clock.now())
    assert replanned is not None
    assert [w for _, w in sc.curves[1].points] == [2100.0, 2450.0, 2800.0, 3500.0]
    assert replanned.power_w[2, 1:5].tolist() == [2100.0, 2450.0, 2800.0, 3500.0]
    assert [(e["event"], e["group"]) for e in logs if e["event"] == "curve_changed"] == [
        ("curve_changed", 1)
    ]

    # The CLI shows the same, with each curve's source.
    config = site.driver._cfg
    assert isinstance(config, PyasicDriverConfig)
    rows = await curves_cmd.discovered(site.ips, config)
    text = curves_cmd.table(rows)
    assert [(r.curve.firmware, r.curve.source.value) for r in rows] == [
        ("luxos", "firmware"),
        ("braiins", "firmware"),
    ]
    assert "luxos profiles, 2 of 2 miners" in text
    assert "bos+ tuner profiles, 2 of 2 miners" in text


#: Deliberately wrong: the simulated S21 does ~146, ~175 and 200 TH/s at these powers.
WRONG_CONFIG = ((170.0, 2100.0), (200.0, 2800.0), (215.0, 3500.0))


# 3 s: in the slow suite with the daemon's case below; firmware curves through pyasic stay
# in the default suite (test_firmware_curves_of_luxos_profiles_and_the_braiins_tuner).
@pytest.mark.slow
async def test_a_learned_curve_replaces_the_config_one_after_runs_at_several_targets(
    make_site: SiteFactory,
) -> None:
    site = await make_site([(Family.BRAIINS, "S21", 4)], ip_start=block())
    group = GroupSpec("Antminer S21", 4, "braiins", WRONG_CONFIG, False, CurvePreference.LEARNED)
    book = CurveBook(
        [group],
        fit=FitParams(min_samples=24, min_samples_per_point=6, min_points=3),
        refit_interval_s=0.0,
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry, PnlBook())
    sc = SiteCurves("s1", book, site.driver, on_change=lambda c: metrics.curves("s1", c))
    fleet = await sc.start(site.clock.now())
    assert sc.curves[0].source is CurveSource.CONFIG
    assert (
        registry.get_sample_value(
            "hashspark_curve_info",
            {
                "site": "s1",
                "group": "0",
                "model": "Antminer S21",
                "firmware": "braiins",
                "source": "config",
            },
        )
        == 1.0
    )

    price = SettableFeed("price", 30.0)
    params = PolicyParams(supply=SpotSupply())
    loop = assemble(
        SiteModel("s1", fleet, params, SpotSupply(), ()),
        clock=site.clock,
        price_feed=price,
        hashprice_feed=SettableFeed("hashprice", 50.0),
        driver=site.driver,
        ledger=ListLedger(),
        cycle_s=30.0,
    )
    # On the config's curve, 30 USD/MWh runs at 3,500 W, 60 at 2,800 W, 120 at 2,100 W.
    new = None
    with structlog.testing.capture_logs() as logs:
        for usd_per_mwh, watts in ((30.0, 3500.0), (60.0, 2800.0), (120.0, 2100.0)):
            price.value = usd_per_mwh
            for _ in range(3):
                plan = await loop.cycle()
                assert loop.site.fleet.power_at(plan.point).tolist() == [watts] * 4
                new = sc.after_cycle(site.clock.now())
                if new is not None:
                    break
                assert book.curves[0].source is CurveSource.CONFIG
                await asyncio.sleep(0.3)
            if new is not None:
                break
    # Only once the miners had run at a third target (min_points = 3).
    assert new is not None
    assert usd_per_mwh == 120.0
    loop.adopt_fleet(new)

    learned = book.curves[0]
    assert learned.source is CurveSource.LEARNED
    assert [w for _, w in learned.points] == [2100.0, 2800.0, 3500.0]
    for (h, w), (wrong_h, _) in zip(learned.points, WRONG_CONFIG, strict=True):
        assert h == pytest.approx(S21.hashrate_at_th(w), rel=0.02)  # what the miners do ...
        assert abs(h - wrong_h) > 0.05 * wrong_h  # ... not what the config claimed
    assert np.array_equal(loop.site.fleet.power_w, site.driver.fleet.power_w)
    assert loop.site.fleet.hashrate_th[0, 1:4].tolist() == [h for h, _ in learned.points]
    changed = [e for e in logs if e["event"] == "curve_changed"]
    assert [(e["source"], e["was"], e["firmware"]) for e in changed] == [
        ("learned", "config", "braiins")
    ]
    labels = {"site": "s1", "group": "0", "model": "Antminer S21", "firmware": "braiins"}
    assert registry.get_sample_value("hashspark_curve_info", labels | {"source": "learned"}) == 1.0
    assert registry.get_sample_value("hashspark_curve_info", labels | {"source": "config"}) is None
    assert registry.get_sample_value(
        "hashspark_curve_point_hashrate_terahashes", {"site": "s1", "group": "0", "point": "1"}
    ) == pytest.approx(learned.points[0][0])

    # The loop goes on with the learned curve: at 120 USD/MWh the true 2,100 W point still
    # earns, and the miners stay where the plan puts them.
    plan = await loop.cycle()
    assert loop.site.fleet.power_at(plan.point).tolist() == [2100.0] * 4
    truth = await site.truth()
    assert all(truth[ip]["power_target_w"] == pytest.approx(2100.0) for ip in site.ips)


def _daemon_config(tmp: Path, ips: list[str]) -> Path:
    """A pyasic site on recorded feeds whose power price alternates 30 / 60 USD/MWh."""
    start = scenario_kit.T0
    rows = [(start + 60.0 * k, 30.0 if k % 2 == 0 else 60.0) for k in range(2)]
    scenario_kit.write_csv(tmp / "prices.csv", "usd_per_mwh", rows)
    scenario_kit.write_csv(tmp / "hashprice.csv", "usd_per_ph_day", [(start, 50.0)])
    path = tmp / "site.toml"
    path.write_text(
        f"""
[daemon]
cycle_s = 15
ledger_sync = "normal"

[scenario]
name = "curves"
start = "{iso(start)}"
end = "{iso(start + 120.0)}"

[[sites]]
id = "s1"
price_feed = {{ type = "recorded", path = "prices.csv" }}
hashprice_feed = {{ type = "recorded", path = "hashprice.csv" }}
supply = {{ type = "spot" }}

[sites.driver]
type = "pyasic"
concurrency = 16
call_timeout_s = 2.0
discovery_timeout_s = 4.0
confirm_timeout_s = 4.0
confirm_poll_s = 0.1
retry_attempts = 2
retry_base_s = 0.05
retry_cap_s = 0.2

[[sites.miners]]
model = "Antminer S21"
firmware = "braiins"
addresses = ["{ips[0]}-{ips[-1]}"]
curve_source = "learned"
curve = [{{ hashrate_th = 200, power_w = 2800 }}, {{ hashrate_th = 215, power_w = 3500 }}]

[sites.curves]
min_samples = 16
min_samples_per_point = 4
refit_interval_s = 0
"""
    )
    return path


# 5 s: in the slow suite; learning a curve stays in the default suite in process
# (tests/test_curves.py, tests/miners/test_curve_samples.py).
@pytest.mark.slow
async def test_the_daemon_learns_a_curve_logs_and_exports_its_source(
    make_site: SiteFactory, tmp_path: Path
) -> None:
    site = await make_site([(Family.BRAIINS, "S21", 4)], discover=False, ip_start=block())
    loaded = load_config(_daemon_config(tmp_path, site.ips))
    options = DaemonOptions(
        simulated=True, speed=SPEED, state_dir=tmp_path / "state", metrics_port=0
    )
    daemon = Daemon(loaded, options)
    labels = {"site": "s1", "group": "0", "model": "Antminer S21", "firmware": "braiins"}
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(daemon.run(), timeout=90)
    events = [(e["event"], e.get("source")) for e in logs if str(e["event"]).startswith("curve_")]
    assert events[0] == ("curve_in_use", "config")
    assert ("curve_changed", "learned") in events
    reg = daemon.registry
    assert reg.get_sample_value("hashspark_curve_info", labels | {"source": "learned"}) == 1.0
    for point, watts in ((1, 2800.0), (2, 3500.0)):
        at = {"site": "s1", "group": "0", "point": str(point)}
        assert reg.get_sample_value("hashspark_curve_point_power_watts", at) == watts
        hashrate = reg.get_sample_value("hashspark_curve_point_hashrate_terahashes", at)
        assert hashrate == pytest.approx(S21.hashrate_at_th(watts), rel=0.02)
    assert (daemon.sites[0].loop.site.fleet.hashrate_th[:, 1] < 190).all()  # not the config's 200

    # The samples are kept: a restart plans with the learned curve from its first cycle.
    assert (tmp_path / "state" / "curves" / "s1.json").exists()
    again = Daemon(load_config(tmp_path / "site.toml"), options)
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(again.run(), timeout=60)
    at_start = [e for e in logs if e["event"] == "curve_in_use"]
    assert [(e["source"], e["firmware"]) for e in at_start] == [("learned", "braiins")]
    assert again.sites[0].loop.site.fleet.power_w[0, 1:3].tolist() == [2800.0, 3500.0]

    # ... and `hashspark fleet curves --config` shows it, from the same samples.
    args = argparse.Namespace(
        config=tmp_path / "site.toml",
        state_dir=tmp_path / "state",
        targets=[],
        concurrency=16,
        timeout=4.0,
    )
    rows = await curves_cmd.rows_for(args)
    assert [(r.site, r.curve.source.value, r.miners) for r in rows] == [("s1", "learned", 4)]
    assert "learned" in curves_cmd.table(rows)
