"""The live-path replay publishes the recordings over MQTT when the site has a broker."""

from __future__ import annotations

import math
from pathlib import Path

from controller.app.replay.live import LiveOptions, replay_live
from controller.app.replay.runner import replay
from controller.records import COMPONENTS
from tests.feeds.conftest import Broker
from tests.live_kit import inputs_for, scenario

IP_START = "127.50.50.1"


async def test_live_path_feeds_the_recordings_through_the_sites_broker(
    tmp_path: Path, broker: Broker
) -> None:
    path = scenario(tmp_path)
    text = path.read_text()
    driver = '[sites.driver]\ntype = "simulated"'
    assert driver in text
    path.write_text(
        text.replace(driver, f'[sites.mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n\n{driver}')
    )
    inputs = inputs_for(path, 6, start="2024-08-20T22:00:00+00:00", end="2024-08-21T02:00:00+00:00")
    live = await replay_live(inputs, LiveOptions(ip_start=IP_START))
    lp = live.report["live_path"]
    assert lp["feeds"] == f"mqtt://127.0.0.1:{broker.port}"
    assert lp["readings_published"] >= 16  # one per 15-minute price, and the hashprice
    assert lp["readings_not_delivered"] == 0
    assert lp["commands"]["sent"] > 0
    fast = replay(inputs, engine="fast").report["totals"]
    for key in COMPONENTS:
        assert math.isclose(live.report["totals"][key], fast[key], rel_tol=0.01, abs_tol=1e-6), key
    assert "hb-south/price" in broker.log.read_text()  # it went through the broker
