"""The gridstatus publisher end to end over a response recorded from MISO itself: the real
gridstatus code (``MISO.get_lmp``, day-ahead) reads MISO's day-ahead ex-post LMP report for
2026-10-01 as MISO served it, the publisher puts the hour that has begun on a real
Mosquitto, and a running daemon decides on those prices. Runs in .venv-iso (``make
unit-iso``; ``make test`` includes it).

The response body is the recorded file, byte for byte
(tests/fixtures/gridstatus/miso/20261001_da_expost_lmp.csv; its SOURCE.txt says where it
was recorded, by whom, and that the recorder kept 22 of MISO's nodes). Only the HTTP
envelope (status 200 and a content type) is written here, into a vcrpy cassette at the URL
gridstatus 0.37.0 asks for.

The daemon runs under libfaketime with its wall clock started at 21:59:48 UTC on
2026-10-01 (16:59:48 EST, MISO's market clock), twelve seconds before hour ending 18
begins; the publisher's clock starts at the same instant. Both then run at real speed, so
the test lives through the change of hour: hour ending 17 (94.02 USD/MWh at Illinois Hub),
then hour ending 18 (210.11 USD/MWh).
"""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.feeds.gridstatus_publisher import GridstatusPublisher, Target
from adapters.feeds.gridstatus_source import ISOS, GridstatusSource
from adapters.feeds.payloads import DEFAULT_PRICE_BOUND
from adapters.feeds.store import Accepted
from adapters.mqtt_client import make_client
from controller.config import load_config
from controller.runtime.clocks.simulated import ScaledClock
from tests.daemon_kit import free_port, wait_for
from tests.feeds.conftest import Broker
from tests.iso.kit import load_mw, metric, start_daemon, status
from tests.mqtt_daemon_kit import fleet, mqtt_feeds

pytestmark = pytest.mark.iso

RECORDED = (
    Path(__file__).resolve().parents[1] / "fixtures/gridstatus/miso/20261001_da_expost_lmp.csv"
)
#: Where gridstatus 0.37.0 reads MISO's day-ahead prices for 2026-10-01 (MISO._get_lmp).
URL = "https://docs.misoenergy.org/marketreports/20261001_da_expost_lmp.csv"
SITE = "miso-illinois"
FAKE_START = "2026-10-01 21:59:48"
T_START = datetime(2026, 10, 1, 21, 59, 48, tzinfo=UTC).timestamp()
T_HE17 = datetime(2026, 10, 1, 21, 0, tzinfo=UTC).timestamp()  # 16:00 EST
T_HE18 = T_HE17 + 3600.0
LABEL = "gridstatus:MISO:ILLINOIS.HUB:DAY_AHEAD_HOURLY:ex-ante"
HASHPRICE = 50.0  # USD per PH/s per day, published by the test
POOL_FEE = 0.02
#: (count, hashrate TH/s, power W): the daemon's built-in curves for these models.
S19J_PRO = (600, 104.0, 3068.0)
S21 = (400, 200.0, 3500.0)


def _breakeven(hashrate_th: float, power_w: float) -> float:
    """Energy hashprice in USD/MWh (ECONOMICS.md): what a miner earns per MWh it burns."""
    usd_per_day = hashrate_th / 1000.0 * HASHPRICE * (1.0 - POOL_FEE)
    return usd_per_day / (power_w / 1e6 * 24.0)


def _mw(miners: tuple[int, float, float]) -> float:
    return miners[0] * miners[2] / 1e6


def _cassette(tmp: Path, answers: int = 2) -> Any:
    """A vcrpy cassette answering gridstatus's request ``answers`` times with the recorded
    body."""
    import vcr  # noqa: PLC0415 - installed in .venv-iso only

    answer = {
        "request": {"method": "GET", "uri": URL, "body": None, "headers": {}},
        "response": {
            "status": {"code": 200, "message": "OK"},
            # Synthesized: the recording kept the body only.
            "headers": {"Content-Type": ["application/octet-stream"]},
            "body": {"string": RECORDED.read_bytes().decode("utf-8")},
        },
    }
    path = tmp / "miso_da_expost_20261001.json"
    path.write_text(json.dumps({"version": 1, "interactions": [answer] * answers}))
    return vcr.VCR(record_mode="none", serializer="json", ignore_localhost=True).use_cassette(
        str(path), allow_playback_repeats=False
    )


def _config(tmp: Path, broker_port: int) -> Path:
    path = tmp / "miso.toml"
    path.write_text(f"""
[daemon]
cycle_s = 0.5

[[sites]]
id = "{SITE}"
pool_fee = {POOL_FEE}
market = "day_ahead"
{mqtt_feeds(broker_port, "hashspark-miso")}{fleet(S19J_PRO[0], S21[0])}
[sites.supply]
type = "spot"

[sites.policy]
ramp_up_mw_per_min = 600

[sites.failsafe]
price_max_age_s = 5400  # a day-ahead price holds for its hour
action = "curtail"

[sites.pacing]
min_raise_interval_s = 0
""")
    return path


def test_real_gridstatus_over_a_recorded_miso_report_moves_a_running_daemon(
    tmp_path: Path, broker: Broker
) -> None:
    # The decisions follow from the recorded prices: 94.02 lies between the two models'
    # breakevens (S21s mine, S19j Pros do not), 210.11 above both (nothing mines).
    s19, s21 = _breakeven(*S19J_PRO[1:]), _breakeven(*S21[1:])
    assert s19 < 94.02 < s21 < 210.11
    config = _config(tmp_path, broker.port)
    port = free_port()
    with _cassette(tmp_path) as cassette:
        daemon = start_daemon(config, tmp_path, port, FAKE_START)
        try:
            asyncio.run(_run(config, port, broker))
            assert cassette.play_count == 2  # one request per poll, both answered
            feed = f'feed="{SITE}:price:mqtt:hashspark/{SITE}/price"'
            assert metric(port, f"hashspark_feed_readings_accepted_total{{{feed}}}") == 2.0
            assert "2026-10-01T22:00" in (tmp_path / "daemon.log").read_text()
        finally:
            daemon.terminate()
            daemon.wait(timeout=15)
    assert daemon.returncode == 0, (tmp_path / "daemon.log").read_text()[-2000:]


async def _run(config: Path, port: int, broker: Broker) -> None:
    site = load_config(config).config.sites[0]
    assert site.broker is not None
    target = Target(site.broker, f"hashspark/{SITE}/price", "hashspark-gridstatus-test")
    source = GridstatusSource("MISO", "DAY_AHEAD_HOURLY", "ILLINOIS.HUB")
    clock = ScaledClock(T_START)  # the publisher's machine: same instant as the daemon's
    publisher = GridstatusPublisher(
        source, target, clock, bound=DEFAULT_PRICE_BOUND, interval_s=60.0
    )
    async with make_client(target.broker, target.client_id) as client:
        # 1. Before 17:00 EST: hour ending 17 is the newest that has begun.
        he17 = await publisher.poll()
        assert isinstance(he17, Accepted)
        assert (he17.reading.observed_at, he17.reading.value) == (T_HE17, 94.02)
        assert he17.reading.source == LABEL
        await publisher.publish(client, he17)
        await asyncio.to_thread(wait_for, lambda: load_mw(port, SITE) is not None, 30, "up")
        broker.publish(
            f"hashspark/{SITE}/hashprice",
            json.dumps({"usd_per_ph_day": HASHPRICE, "ts": "2026-10-01T00:00:00Z"}),
            retain=True,
        )
        await asyncio.to_thread(
            wait_for, lambda: load_mw(port, SITE) == _mw(S21), 20, "only the S21s mining"
        )
        price = await asyncio.to_thread(status, broker, SITE)
        assert price["inputs"]["price"] == {
            "value": 94.02, "observed_at": "2026-10-01T21:00:00Z", "source": LABEL,
        }  # fmt: skip

        # 2. The hour turns: the same recorded file, read again, now offers hour ending 18.
        await clock.sleep_until(T_HE18 + 1.0)
        he18 = await publisher.poll()
        assert isinstance(he18, Accepted)
        assert (he18.reading.observed_at, he18.reading.value) == (T_HE18, 210.11)
        await publisher.publish(client, he18)
        await asyncio.to_thread(
            wait_for, lambda: load_mw(port, SITE) == 0.0, 20, "the whole fleet curtailed"
        )
        price = await asyncio.to_thread(status, broker, SITE)
        assert (price["inputs"]["price"]["value"], price["inputs"]["price"]["observed_at"]) == (
            210.11,
            "2026-10-01T22:00:00Z",
        )


def test_gridstatus_reads_every_miso_hub_of_the_recorded_report(tmp_path: Path) -> None:
    # The oracle: the report's own LMP rows, read here with the csv module. Hour ending h
    # starts at (h - 1):00 EST, which is UTC-5 all year (MISO's market clock).
    lines = RECORDED.read_text().splitlines()[4:]  # banner, date, blank, note; then the header
    lmp = {r["Node"]: r for r in csv.DictReader(lines) if r["Value"] == "LMP"}
    midnight = datetime(2026, 10, 1, 5, 0, tzinfo=UTC).timestamp()
    hubs = ISOS["MISO"].locations
    assert set(hubs) <= set(lmp)  # every hub the publisher offers is in MISO's report
    with _cassette(tmp_path, answers=len(hubs)) as cassette:
        for hub in hubs:
            rows = GridstatusSource("MISO", "DAY_AHEAD_HOURLY", hub).fetch(T_START)
            expected = [(midnight + 3600.0 * h, float(lmp[hub][f"HE {h + 1}"])) for h in range(24)]
            assert [(r.start, r.usd_per_mwh) for r in rows] == expected, hub
        assert cassette.play_count == len(hubs)
