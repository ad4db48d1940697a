"""``check-config`` refuses what ``run`` refuses, with the same message; and warns on
implausible contracts (exit 0, one stderr line each).

Every bad config of the table goes through the installed console script twice: as
``hashspark check-config`` and as ``hashspark run --state-dir <tmp>``. Both must exit 2 with
the same stderr.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from controller.config import contract_warnings, load_config

HASHSPARK = Path(sys.executable).parent / "hashspark"
RECORDINGS = Path(__file__).resolve().parents[1] / "simulators" / "recordings"
PRICE = RECORDINGS / "ercot_hb_south_rtm_spp_15min_2024-06_2025-03.csv"
HASHPRICE = RECORDINGS / "btc_hashprice_daily_2024-05_2025-04_with_fees.csv"
BROKER = '{ host = "127.0.0.1", port = 1 }'


def _config(
    *,
    feeds: str = f'price_feed = {{ type = "recorded", path = "{PRICE}" }}\n'
    f'hashprice_feed = {{ type = "recorded", path = "{HASHPRICE}" }}',
    driver: str = "",
    miners: str = '[[sites.miners]]\nmodel = "Antminer S21"\ncount = 50',
    supply: str = 'type = "spot"',
    hedges: str = "",
) -> str:
    return f"""
[daemon]
metrics_port = 0

[[sites]]
id = "s"
{feeds}
{driver}

{miners}

[sites.supply]
{supply}

{hedges}
"""


PYASIC = '[sites.driver]\ntype = "pyasic"'
S21 = '[[sites.miners]]\nmodel = "Antminer S21"\n'

BAD = {
    "pyasic group without addresses": (
        _config(driver=PYASIC, miners=S21 + 'addresses = ["127.0.0.1"]\n\n' + S21 + "count = 2"),
        "sites[0]: miners[1] (Antminer S21): the pyasic driver needs every group's addresses",
    ),
    "two groups with the same addresses": (
        _config(
            driver=PYASIC,
            miners=S21
            + 'addresses = ["127.0.0.1-127.0.0.3"]\n\n'
            + S21
            + 'addresses = ["127.0.0.3"]',
        ),
        "sites[0]: addresses listed twice: 127.0.0.3",
    ),
    "a recording that does not parse": (
        _config(
            feeds='price_feed = { type = "recorded", path = "bad.csv" }\n'
            f'hashprice_feed = {{ type = "recorded", path = "{HASHPRICE}" }}'
        ),
        "bad.csv:2: timestamp is not ISO-8601",
    ),
    "two MQTT feeds on one topic": (
        _config(
            feeds=f'price_feed = {{ type = "mqtt", broker = {BROKER}, topic = "x/p" }}\n'
            f'hashprice_feed = {{ type = "mqtt", broker = {BROKER}, topic = "x/p" }}'
        ),
        "sites[0]: price_feed and hashprice_feed both read x/p on the same broker",
    ),
    "a feed on the site's command topic": (
        _config(
            feeds=f'price_feed = {{ type = "mqtt", broker = {BROKER}, '
            'topic = "hashspark/s/command" }\n'
            f'hashprice_feed = {{ type = "recorded", path = "{HASHPRICE}" }}'
        ),
        "sites[0]: price_feed.topic hashspark/s/command is the site's own status or command topic",
    ),
    "an unknown model without a curve": (
        _config(miners='[[sites.miners]]\nmodel = "Antminer S99"\ncount = 1'),
        "sites[0].miners[0]: no curve given and 'Antminer S99' is not a known model",
    ),
}


def _hashspark(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HASHSPARK), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


#: Each case runs two console scripts (about 4 s): two stay in the default suite, the rest run
#: in the slow suite. Both commands refuse through one function (controller/app/preflight.py).
SLOW_BAD = {
    "pyasic group without addresses",
    "two MQTT feeds on one topic",
    "a feed on the site's command topic",
    "an unknown model without a curve",
}


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_BAD else c for c in BAD]
)
def test_check_config_and_run_refuse_alike(tmp_path: Path, case: str) -> None:
    text, message = BAD[case]
    (tmp_path / "bad.csv").write_text("timestamp,usd_per_mwh\nyesterday,30\n")
    (tmp_path / "site.toml").write_text(text)
    check = _hashspark("check-config", "site.toml", cwd=tmp_path)
    run = _hashspark("run", "site.toml", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert (check.returncode, run.returncode) == (2, 2), (check.stderr, run.stderr)
    assert check.stderr == run.stderr
    assert check.stderr.startswith("hashspark: error: ")
    assert message in check.stderr
    assert len(check.stderr.splitlines()) == 1
    assert not (tmp_path / "state").exists()  # refused before it touched anything


WARNED = {
    "a call larger than the site": (
        'type = "spot"',
        '[[sites.hedges]]\ntype = "short_call"\nid = "c1"\nquantity_mw = 5\n'
        "strike_usd_per_mwh = 200\npremium_usd_per_mwh = 3",
        ["sites[0].hedges[0] (c1): a short call on 5 MW, larger than the fleet's 0.175 MW nominal"],
    ),
    "a forward larger than the site": (
        'type = "spot"',
        '[[sites.hedges]]\ntype = "hashrate_forward"\nid = "f1"\nhashrate_ph = 20\n'
        "price_usd_per_ph_day = 50",
        [
            "sites[0].hedges[0] (f1): a hashrate forward on 20 PH/s, larger than the fleet's "
            "10 PH/s nominal"
        ],
    ),
    "a PPA far from the fleet's size, a call struck below it": (
        'type = "fixed_ppa"\nquantity_mw = 1.0\nprice_usd_per_mwh = 45',
        '[[sites.hedges]]\ntype = "short_call"\nid = "c1"\nquantity_mw = 0.1\n'
        "strike_usd_per_mwh = 40\npremium_usd_per_mwh = 3",
        [
            "sites[0].supply: a PPA of 1 MW for a fleet of 0.175 MW nominal (5.7 times its size)",
            "sites[0].hedges[0] (c1): the call's strike 40 $/MWh is below the PPA's price 45 $/MWh",
        ],
    ),
    # A PPA smaller than the fleet is normal (the load above it is bought at spot): no warning.
    "a capped PPA struck below its price": (
        'type = "capped_ppa"\nquantity_mw = 0.06\nprice_usd_per_mwh = 45\nstrike_usd_per_mwh = 30',
        "",
        [
            "sites[0].supply: the resale cap's strike 30 $/MWh is below the PPA's price 45 $/MWh",
        ],
    ),
}


SLOW_WARNED = {
    "a forward larger than the site",
    "a PPA far from the fleet's size, a call struck below it",
}


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_WARNED else c for c in WARNED]
)
def test_implausible_contracts_are_warned_about_not_refused(tmp_path: Path, case: str) -> None:
    supply, hedges, lines = WARNED[case]
    (tmp_path / "site.toml").write_text(_config(supply=supply, hedges=hedges))
    check = _hashspark("check-config", "site.toml", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("# site.toml: valid")
    assert check.stderr.splitlines() == [f"hashspark: warning: site.toml: {w}" for w in lines]


def test_the_shipped_configs_have_no_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[1]
    for path in sorted((root / "deploy").rglob("*.toml")):
        text = path.read_text()
        for name in re.findall(r"HASHSPARK_[A-Z0-9_]+", text):
            monkeypatch.setenv(name, "x")
        if "[[sites]]" in text:
            assert contract_warnings(load_config(path).config) == [], path
