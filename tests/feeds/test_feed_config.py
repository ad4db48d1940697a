"""Feed config models: the examples in docs/feeds.md parse; mistakes fail with the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from adapters.feeds.chain import ChainFeedConfig
from adapters.feeds.ercot import ErcotFeedConfig
from adapters.feeds.hashprice_index import HashpriceIndexFeedConfig
from adapters.feeds.mqtt import MqttFeedConfig
from adapters.feeds.payloads import ReadingKind, ValueBound
from controller.config import FeedConfig

ROOT = Path(__file__).resolve().parents[2]
ADAPTER: TypeAdapter[FeedConfig] = TypeAdapter(FeedConfig)


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    monkeypatch.setenv("HASHSPARK_MQTT_PASSWORD", "mqtt-pw")
    monkeypatch.setenv("HASHSPARK_ERCOT_PASSWORD", "ercot-pw")
    monkeypatch.setenv("HASHSPARK_ERCOT_SUBSCRIPTION_KEY", "sub")
    key = tmp_path / "index.key"
    key.write_text("index-key\n")
    key.chmod(0o600)
    ca = tmp_path / "ca.crt"
    ca.write_text("not checked here\n")
    return {"/etc/hashspark/index.key": str(key), "/etc/hashspark/site-ca.crt": str(ca)}


def test_every_example_in_docs_feeds_parses(secrets: dict[str, str]) -> None:
    text = (ROOT / "docs/feeds.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    kinds: list[type] = []
    for block in blocks:
        resolved = block
        for old, new in secrets.items():
            resolved = resolved.replace(old, new)
        site = tomllib.loads(resolved)["sites"]
        feeds = [site[k] for k in ("price_feed", "hashprice_feed") if k in site]
        kinds.extend(type(ADAPTER.validate_python(feed)) for feed in feeds)
    assert kinds == [MqttFeedConfig, ErcotFeedConfig, ChainFeedConfig, HashpriceIndexFeedConfig]


def test_secrets_are_masked_and_never_inline(secrets: dict[str, str]) -> None:
    ok = ADAPTER.validate_python(
        {"type": "ercot", "settlement_point": "HB_WEST", "username": "u",
         "password": {"env": "HASHSPARK_ERCOT_PASSWORD"},
         "subscription_key": {"env": "HASHSPARK_ERCOT_SUBSCRIPTION_KEY"}}
    )  # fmt: skip
    assert isinstance(ok, ErcotFeedConfig)
    assert "ercot-pw" not in repr(ok)
    assert ok.password.get_secret_value() == "ercot-pw"
    with pytest.raises(ValidationError, match="secrets are not written in config files"):
        ADAPTER.validate_python(
            {"type": "ercot", "settlement_point": "HB_WEST", "username": "u",
             "password": "inline", "subscription_key": {"env": "HASHSPARK_ERCOT_SUBSCRIPTION_KEY"}}
        )  # fmt: skip


@pytest.mark.parametrize(
    ("doc", "loc"),
    [
        ({"type": "carrier_pigeon"}, ()),
        ({"type": "chain", "base_url": "ftp://x"}, ("chain", "base_url")),
        ({"type": "chain", "interval": 5}, ("chain", "interval")),  # unknown key
        ({"type": "chain", "min_value": 10, "max_value": 1}, ("chain",)),
        ({"type": "mqtt", "broker": {"host": "b", "password": {"env": "HASHSPARK_MQTT_PASSWORD"}}},
         ("mqtt", "broker")),  # a password without a user
        ({"type": "mqtt", "broker": {"host": "b"}, "topic": "a/#"}, ("mqtt", "topic")),
        ({"type": "ercot", "settlement_point": "hb west", "username": "u",
          "password": {"env": "HASHSPARK_ERCOT_PASSWORD"},
          "subscription_key": {"env": "HASHSPARK_ERCOT_SUBSCRIPTION_KEY"}},
         ("ercot", "settlement_point")),
        ({"type": "ercot", "settlement_point": "HB_WEST", "username": "u", "interval_s": 1,
          "password": {"env": "HASHSPARK_ERCOT_PASSWORD"},
          "subscription_key": {"env": "HASHSPARK_ERCOT_SUBSCRIPTION_KEY"}},
         ("ercot", "interval_s")),  # faster than ERCOT's 30 requests a minute
    ],
)  # fmt: skip
def test_mistakes_fail_with_their_key(
    secrets: dict[str, str], doc: dict[str, object], loc: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as err:
        ADAPTER.validate_python(doc)
    assert err.value.errors()[0]["loc"][: len(loc)] == loc


def test_bounds_default_per_kind_and_override() -> None:
    cfg = ChainFeedConfig(type="chain", max_value=500)
    assert cfg.bound(ReadingKind.HASHPRICE) == ValueBound(1e-3, 500)
    assert ChainFeedConfig(type="chain").bound(ReadingKind.PRICE) == ValueBound(-10_000, 10_000)
