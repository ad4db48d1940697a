"""The driver factory from config, 'fleet scan' against a simulated fleet, and logging."""

from __future__ import annotations

import logging
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence

import pytest

from adapters.miners.driver import PyasicDriver
from adapters.miners.simulated import InProcessFleet
from controller.app import cli
from controller.app import fleet_cmd as fleet_cli
from controller.app.drivers import build_driver
from controller.app.fleet_cmd import fragment, scan
from controller.config import MinerGroup, SiteConfig
from controller.runtime.clocks.simulated import ScaledClock
from simulators.miners.miner import Family
from tests.miners.conftest import T0, SiteFactory


def site_config(driver: dict[str, object], miners: Sequence[Mapping[str, object]]) -> SiteConfig:
    feed = {"type": "recorded", "path": __file__}
    return SiteConfig.model_validate(
        {
            "id": "s1",
            "price_feed": feed,
            "hashprice_feed": feed,
            "driver": driver,
            "miners": miners,
            "supply": {"type": "spot"},
        }
    )


def test_build_driver_picks_by_type() -> None:
    clock = ScaledClock(T0)
    groups = [
        {"model": "Antminer S21", "addresses": ["127.47.0.1-127.47.0.3"], "firmware": "luxos"},
        {"model": "Antminer S19j Pro", "addresses": ["127.47.1.0/31"]},
    ]
    site = site_config({"type": "pyasic", "concurrency": 8}, groups)
    driver = build_driver(site, site.fleet(), clock)
    assert isinstance(driver, PyasicDriver)
    assert driver.fleet.size == 5

    simulated = site_config({"type": "simulated"}, [{"model": "Antminer S21", "count": 2}])
    assert isinstance(build_driver(simulated, simulated.fleet(), clock), InProcessFleet)


def test_pyasic_driver_needs_every_groups_addresses() -> None:
    # A config check (check-config refuses it too), not a start-up error of the driver.
    with pytest.raises(ValueError, match="the pyasic driver needs every group's addresses"):
        site_config({"type": "pyasic"}, [{"model": "Antminer S21", "count": 2}])


def test_secrets_are_not_written_inline() -> None:
    with pytest.raises(ValueError, match="secrets are not written in config files"):
        site_config(
            {"type": "pyasic", "antminer_web_password": "root"},
            [{"model": "Antminer S21", "addresses": ["127.47.0.1"]}],
        )


async def test_scan_finds_each_family_and_prints_a_loadable_fragment(
    make_site: SiteFactory,
) -> None:
    site = await make_site(
        [(Family.LUXOS, "S21", 2), (Family.ANTMINER, "S19jPro", 2), (Family.BRAIINS, "S21", 1)],
        discover=False,
    )
    first, last = site.ips[0], site.ips[-1]
    found = await scan([*site.ips, "127.46.250.250"], concurrency=4, timeout_s=5)
    assert len(found) == 5
    text = fragment(found)
    groups = [MinerGroup.model_validate(g) for g in tomllib.loads(text)["sites"]["miners"]]
    by_firmware = {g.firmware: g for g in groups}
    assert by_firmware["luxos"].model == "Antminer S21"
    assert by_firmware["luxos"].count == 2
    assert by_firmware["stock"].model == "Antminer S19j Pro"
    assert by_firmware["braiins"].addresses == (last,)
    assert by_firmware["luxos"].addresses == (f"{first}-{site.ips[1]}",)
    assert "cannot throttle" in text


def test_scan_is_on_the_command_line_and_rejects_a_bad_range(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Parse only: cli.main would configure logging onto pytest's captured stderr.
    args = cli._parser().parse_args(["fleet", "scan", "127.0.0.9-127.0.0.1", "--timeout", "1"])
    assert (args.command, args.fleet_command, args.concurrency) == ("fleet", "scan", 200)
    assert fleet_cli.run(args) == 2
    assert "ends before it starts" in capsys.readouterr().err


_LEVEL_AFTER = """
import logging, sys
logging.getLogger().setLevel(logging.ERROR)
{load}
print(logging.getLogger().level)
"""


@pytest.mark.parametrize(
    ("load", "survives"),
    [
        ("from adapters.miners.pyasic_lib import pyasic; pyasic()", True),
        ("import warnings; warnings.simplefilter('ignore'); import pyasic", False),  # control
    ],
)
def test_our_logging_level_survives_the_pyasic_import(load: str, survives: bool) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _LEVEL_AFTER.format(load=load)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert (int(out.strip()) == logging.ERROR) is survives
