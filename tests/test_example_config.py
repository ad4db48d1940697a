"""deploy/hashspark.example.toml: it loads, and the daemon builds every adapter it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.feeds.chain import ChainHashpriceFeed
from adapters.feeds.ercot import ErcotFeed
from adapters.feeds.hashprice_index import HashpriceIndexFeed
from adapters.feeds.recorded import RecordedFeed
from adapters.feeds.store import StoreFeed
from adapters.ledger.sqlite import SqliteLedger
from adapters.miners.driver import PyasicDriver
from controller.app.daemon import Daemon, DaemonOptions
from controller.config import load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy/hashspark.example.toml"
SECRETS = {
    "HASHSPARK_MQTT_PASSWORD": "mqtt-secret-value",
    "HASHSPARK_ERCOT_PASSWORD": "ercot-secret-value",
    "HASHSPARK_ERCOT_SUBSCRIPTION_KEY": "ercot-key-value",
    "HASHSPARK_INDEX_API_KEY": "index-key-value",
    "HASHSPARK_ANTMINER_PASSWORD": "antminer-secret-value",
    "HASHSPARK_BRAIINS_PASSWORD": "braiins-secret-value",
    "HASHSPARK_COMMAND_KEY_OPS": "ops-command-key-value",
    "HASHSPARK_COMMAND_KEY_QSE": "qse-command-key-value",
}


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def test_every_adapter_type_appears(secrets: None) -> None:
    cfg = load_config(EXAMPLE).config
    feeds = [f for s in cfg.sites for f in (s.price_feed, s.hashprice_feed) if f is not None]
    feed_types = {f.type for f in feeds}
    assert feed_types == {"recorded", "mqtt", "ercot", "chain", "hashprice_index"}
    assert {s.supply.type for s in cfg.sites} == {"spot", "fixed_ppa", "capped_ppa"}
    assert {h.type for s in cfg.sites for h in s.hedges} == {
        "short_call",
        "hashrate_forward",
        "btc_collar",
    }
    assert {s.driver.type for s in cfg.sites} == {"simulated", "pyasic"}


def test_the_daemon_builds_every_adapter(secrets: None, tmp_path: Path) -> None:
    loaded = load_config(EXAMPLE)
    daemon = Daemon(loaded, DaemonOptions(state_dir=tmp_path))
    ledger = SqliteLedger.open(
        tmp_path / "ledger.sqlite3", run_id="t", config_version=loaded.version, started_at=0.0
    )
    try:
        sites = {s.id: daemon.build_site(s, ledger) for s in loaded.config.sites}
    finally:
        ledger.close()
    feeds = {sid: s.loop.feeds for sid, s in sites.items()}
    assert isinstance(feeds["west-1"][0], StoreFeed)  # MQTT
    assert isinstance(feeds["lab"][0], RecordedFeed)
    assert isinstance(feeds["lab"][1], RecordedFeed)
    runners = [r for f in daemon.site_feeds for r in f.runners]
    kinds = {type(r) for r in runners}
    assert {ErcotFeed, ChainHashpriceFeed, HashpriceIndexFeed} <= kinds
    # west-1's chain explorer serves its hashprice, BTC price and difficulty: three pollers.
    chain = [r for r in runners if isinstance(r, ChainHashpriceFeed)]
    assert len(chain) == 3
    links = [link for f in daemon.site_feeds for link in f.links.values()]
    assert len(links) == 2  # west-1 over its feed's broker, south-2 over sites.mqtt
    driver = sites["south-2"].loop.driver
    assert isinstance(driver, PyasicDriver)
    assert len(driver.addresses) == 300 + 126  # a /25 holds 126 hosts
    assert driver.addresses[0] == "10.20.0.1"


def test_check_config_masks_every_secret(secrets: None, capsys: pytest.CaptureFixture[str]) -> None:
    from controller.app.cli import main  # noqa: PLC0415

    assert main(["check-config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    for value in SECRETS.values():
        assert value not in out
    assert out.count("**********") == len(SECRETS) + 1  # the operators' key serves two sites
