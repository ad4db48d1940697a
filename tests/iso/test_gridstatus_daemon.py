"""The gridstatus publisher end to end over SPP: the real gridstatus code reads a vcrpy
cassette of SPP's "latest interval" file, the publisher puts the newest interval on a real
Mosquitto, and a running daemon decides on those prices. Runs in .venv-iso (``make
unit-iso``; ``make test`` includes it).

The SPP cassette is REBUILT, not recorded: real SPP prices (from EIA) placed in SPP's file
layout by hand (tests/fixtures/gridstatus/SOURCE.txt says exactly what is real). The test
over a response recorded from the ISO itself is test_gridstatus_miso_daemon.py (MISO).

The recorded prices are from 2024-07-25 and a live daemon calls prices older than
``failsafe.price_max_age_s`` stale: the daemon runs under libfaketime with its wall clock
started at 19:21:30 UTC that day (a machine whose clock says so), the broker and the test on
the real one. The daemon's code is untouched; only the time the OS tells it is not now.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.feeds.gridstatus_publisher import GridstatusPublisher, Target
from adapters.feeds.gridstatus_source import GridstatusSource
from adapters.feeds.payloads import DEFAULT_PRICE_BOUND
from adapters.feeds.store import Accepted, RejectReason
from adapters.mqtt_client import make_client
from controller.app.cli import main as cli_main
from controller.config import load_config
from controller.runtime.clocks.system import SystemClock
from tests.daemon_kit import free_port, wait_for
from tests.feeds.conftest import Broker
from tests.iso.kit import load_mw, metric, start_daemon, status
from tests.mqtt_daemon_kit import capped_ppa_site

pytestmark = pytest.mark.iso

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gridstatus"
#: Rebuilt by hand, not recorded (SOURCE.txt): real SPP prices in SPP's file layout.
CASSETTE = FIXTURES / "spp_rtbm_lmp_latest_interval_2024-07-25.yaml"
#: The daemon's clock: 2 min 30 s into the first recorded interval's successor.
FAKE_START = "2024-07-25 19:21:30"
T_1915 = 1721934900.0  # 2024-07-25T19:15:00Z, the first recorded interval's start
T_1920 = T_1915 + 300.0
LABEL = "gridstatus:SPP:SPPSOUTH_HUB:REAL_TIME_5_MIN:prelim"


def _cassette() -> Any:
    import vcr  # noqa: PLC0415 - installed in .venv-iso only

    return vcr.VCR(record_mode="none", ignore_localhost=True).use_cassette(
        str(CASSETTE), allow_playback_repeats=False
    )


def _config(tmp: Path, broker_port: int) -> Path:
    path = tmp / "spp.toml"
    path.write_text(capped_ppa_site("spp-south", broker_port, "hashspark-spp", ramp_mw_per_min=600))
    return path


def _load_mw(port: int) -> float | None:
    return load_mw(port, "spp-south")


def _metric(port: int, name: str) -> float | None:
    return metric(port, name)


def _status(broker: Broker) -> dict[str, Any]:
    return status(broker, "spp-south")


def test_real_gridstatus_over_rebuilt_spp_cassette_moves_a_running_daemon(
    tmp_path: Path, broker: Broker
) -> None:
    config = _config(tmp_path, broker.port)
    port = free_port()
    with _cassette() as cassette:
        # 1. The CLI, once: the 19:15 interval, published retained before the daemon runs.
        argv = ["feed", "gridstatus", str(config), "--iso", "SPP", "--location",
                "SPPSOUTH_HUB", "--market", "REAL_TIME_5_MIN", "--once"]  # fmt: skip
        assert cli_main(argv) == 0
        assert cassette.play_count == 1

        daemon = start_daemon(config, tmp_path, port, FAKE_START)
        try:
            wait_for(lambda: _load_mw(port) is not None, timeout=30, what="daemon up")
            broker.publish(
                "hashspark/spp-south/hashprice",
                json.dumps({"usd_per_ph_day": 50.0, "ts": "2024-07-25T19:00:00Z"}),
                retain=True,
            )
            # 32.72 USD/MWh at SPP South: the whole fleet mines.
            wait_for(lambda: _load_mw(port) == 3.2408, timeout=20, what="the fleet running")
            price = _status(broker)["inputs"]["price"]
            assert price == {"value": 32.7155, "observed_at": "2024-07-25T19:15:00Z",
                             "source": LABEL}  # fmt: skip

            # 2. A publisher that restarts: it sends 19:15 again (the daemon refuses it as a
            # duplicate), asks again (no news: nothing sent), then sends the spike.
            asyncio.run(_poll(config))
            assert cassette.play_count == 4
            # 1489.77 USD/MWh: the capped PPA resells at 100, so only the S21s keep mining.
            wait_for(lambda: _load_mw(port) == 1.4, timeout=10, what="S19j Pros curtailed")
            price = _status(broker)["inputs"]["price"]
            assert (price["value"], price["observed_at"]) == (1489.7666, "2024-07-25T19:20:00Z")
            feed = 'feed="spp-south:price:mqtt:hashspark/spp-south/price"'
            assert _metric(port, f"hashspark_feed_readings_accepted_total{{{feed}}}") == 2.0
            duplicate = f'hashspark_feed_readings_rejected_total{{{feed},reason="duplicate"}}'
            assert _metric(port, duplicate) == 1.0  # one decision per interval, not two
            log = (tmp_path / "daemon.log").read_text()
            assert "2024-07-25T19:21" in log  # the daemon's own clock said so
        finally:
            daemon.terminate()
            daemon.wait(timeout=15)
    assert daemon.returncode == 0, (tmp_path / "daemon.log").read_text()[-2000:]


async def _poll(config: Path) -> None:
    site = load_config(config).config.sites[0]
    assert site.broker is not None
    target = Target(site.broker, "hashspark/spp-south/price", "hashspark-gridstatus-test")
    source = GridstatusSource("SPP", "REAL_TIME_5_MIN", "SPPSOUTH_HUB")
    publisher = GridstatusPublisher(
        source, target, SystemClock(), bound=DEFAULT_PRICE_BOUND, interval_s=60.0
    )
    async with make_client(target.broker, target.client_id) as client:
        first = await publisher.poll()  # 19:15, new to this publisher
        assert isinstance(first, Accepted)
        assert first.reading.observed_at == T_1915
        await publisher.publish(client, first)
        again = await publisher.poll()  # SPP's file has not moved on: nothing to say
        assert again is None
        assert publisher.stats.rejected_total() == 0
        spike = await publisher.poll()
        assert isinstance(spike, Accepted)
        assert (spike.reading.observed_at, spike.reading.value) == (T_1920, 1489.7666)
        assert spike.reading.source == LABEL
        await publisher.publish(client, spike)
    assert publisher.published == 2
    assert publisher.stats.rejected[(publisher.store.feed, RejectReason.DUPLICATE)] == 0


def test_gridstatus_reads_the_rebuilt_file_by_location(tmp_path: Path) -> None:
    source = GridstatusSource("SPP", "REAL_TIME_5_MIN", "SPPNORTH_HUB")
    with _cassette():
        rows = source.fetch(time.time())
    assert [(r.start, r.usd_per_mwh) for r in rows] == [(T_1915, 26.5587)]


def test_cli_once_without_a_broker_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, free_port())  # nobody listens there
    argv = ["feed", "gridstatus", str(config), "--iso", "SPP", "--location", "SPPSOUTH_HUB",
            "--once"]  # fmt: skip
    with _cassette() as cassette:
        assert cli_main(argv) == 2
        assert cassette.play_count == 0  # the broker first: nothing fetched for nobody
    err = capsys.readouterr().err  # the outage, logged once, then the error line
    assert err.splitlines()[-1].startswith("hashspark: error: broker 127.0.0.1:")
    assert "Traceback" not in err
