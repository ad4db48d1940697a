"""What the end-to-end tests of a daemon on MQTT price feeds share (tests/feeds, tests/iso):
its sites' feeds and fleet as TOML, and starting ``hashspark run`` on a real config.

The parts a test varies (supply, policy, failsafe, currency) stay in the test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.daemon_kit import EXE


def mqtt_feeds(broker_port: int, client_id: str | None = None) -> str:
    """A site's price and hashprice feeds, both MQTT from the broker on ``broker_port``."""
    cid = "" if client_id is None else f', client_id = "{client_id}"'
    broker = f'{{ host = "127.0.0.1", port = {broker_port}{cid} }}'
    return (
        f'price_feed = {{ type = "mqtt", broker = {broker} }}\n'
        f'hashprice_feed = {{ type = "mqtt", broker = {broker} }}\n'
    )


def fleet(s19j_pro: int = 600, s21: int = 400) -> str:
    """A site's miners: ``s19j_pro`` Antminer S19j Pros and ``s21`` Antminer S21s."""
    return f"""
[[sites.miners]]
model = "Antminer S19j Pro"
count = {s19j_pro}

[[sites.miners]]
model = "Antminer S21"
count = {s21}
"""


def capped_ppa_site(site_id: str, broker_port: int, client_id: str, ramp_mw_per_min: int) -> str:
    """A whole config: one site on MQTT prices, the default fleet, a 3.3 MW capped PPA (45,
    strike 100 USD/MWh), curtailing on a price older than 10 min, no raise interval (it
    curtails and resumes within seconds on the wall clock; pacing itself: tests/test_pacing.py,
    tests/test_pacing_loop.py)."""
    return f"""
[daemon]
cycle_s = 0.5

[[sites]]
id = "{site_id}"
pool_fee = 0.02
{mqtt_feeds(broker_port, client_id)}{fleet()}
[sites.supply]
type = "capped_ppa"
quantity_mw = 3.3
price_usd_per_mwh = 45
strike_usd_per_mwh = 100

[sites.policy]
ramp_up_mw_per_min = {ramp_mw_per_min}

[sites.failsafe]
price_max_age_s = 600
action = "curtail"

[sites.pacing]
min_raise_interval_s = 0
"""


def run_daemon(
    config: Path, tmp: Path, port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``hashspark run config`` (real feeds) in the background: state in ``tmp/state``, its
    log in ``tmp/daemon.log``, metrics on ``port``; ``env``, if given, replaces the environment."""
    return subprocess.Popen(
        [EXE, "run", str(config), "--state-dir", str(tmp / "state"), "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "daemon.log").open("wb"),
        env=env,
    )
