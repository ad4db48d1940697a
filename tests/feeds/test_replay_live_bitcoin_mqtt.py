"""Over the site's broker, the live path publishes the Bitcoin recordings on the topics the
daemon subscribes to, and its Bitcoin instruments book what the fast path books."""

from __future__ import annotations

import math
from pathlib import Path

from controller.app.replay.live import LiveOptions, replay_live
from controller.app.replay.runner import replay
from tests.feeds.conftest import Broker
from tests.live_kit import ROOT, inputs_for
from tests.test_replay_live_bitcoin import BTC_HEDGES, REL, WINDOW, bitcoin_flows

IP_START = "127.50.100.1"


async def test_live_path_publishes_the_bitcoin_inputs_through_the_sites_broker(
    tmp_path: Path, broker: Broker
) -> None:
    text = BTC_HEDGES.read_text().replace(
        "../../simulators/recordings/", f"{ROOT / 'simulators' / 'recordings'}/"
    )
    driver = '[sites.driver]\ntype = "simulated"'
    assert driver in text
    path = tmp_path / "btc-hedges.toml"
    path.write_text(
        text.replace(driver, f'[sites.mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n\n{driver}')
    )
    inputs = inputs_for(path, 4, start=WINDOW[0], end=WINDOW[1])
    live = await replay_live(inputs, LiveOptions(ip_start=IP_START, speed=30.0))
    lp = live.report["live_path"]
    assert lp["feeds"] == f"mqtt://127.0.0.1:{broker.port}"
    assert lp["readings_not_delivered"] == 0
    log = broker.log.read_text()
    assert "hb-south/btc_usd" in log
    assert "hb-south/difficulty" in log
    expected = bitcoin_flows(replay(inputs, engine="fast").report)
    assert expected["btc-fwd-dec", "btc_forward_settlement_usd"] > 1000
    got = bitcoin_flows(live.report)
    assert set(got) == set(expected)
    for key, usd in expected.items():
        assert math.isclose(got[key], usd, rel_tol=REL, abs_tol=1e-6), (key, got[key], usd)
