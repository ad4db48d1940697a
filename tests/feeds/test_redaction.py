"""Redaction, piece by piece: URLs, registered secrets, log lines, HTTP errors, parse errors.

The whole-daemon greps are tests/feeds/test_secrets.py (a run) and test_secrets_matrix.py
(every failure path, slow suite); these pin each mechanism so a regression names its cause.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr, ValidationError

from adapters.control.persist import ActiveCommands
from adapters.feeds.chain import ChainFeedConfig, ChainHashpriceFeed
from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.ercot import ErcotFeed, ErcotFeedConfig
from adapters.feeds.health import FeedHealth, PermanentFeedError, TransientFeedError
from adapters.feeds.http import fetch_bytes
from adapters.feeds.recorded import PRICE_COLUMN, RecordingError, load_recording
from adapters.feeds.store import FeedStats, LatestStore
from adapters.metrics.book import PnlBook
from adapters.metrics.collector import Metrics
from controller.app.cli import main
from controller.config import ConfigError, load_config, render
from controller.runtime import logs
from controller.runtime.clocks.system import SystemClock
from controller.runtime.redact import (
    MASK,
    forget_all,
    redact_url,
    register_secret,
    register_url,
    registered_count,
    scrub,
)
from tests.daemon_kit import free_port
from tests.feeds.scripted_server import Reply, fixture, scripted_server


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    forget_all()
    yield
    forget_all()


def _token(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.example.com/v1/x?size=10", "https://api.example.com/v1/x?size=10"),
        ("https://bob:hunter2@api.example.com/x", f"https://{MASK}@api.example.com/x"),
        ("https://tok3n@api.example.com/x", f"https://{MASK}@api.example.com/x"),
        ("https://h/x?api_key=s3cr3t&size=1", f"https://h/x?api_key={MASK}&size=1"),
        ("https://h/x?apikey=a&key=b&token=c", f"https://h/x?apikey={MASK}&key={MASK}&token={MASK}"),
        ("https://h/x?access_token=a&password=b", f"https://h/x?access_token={MASK}&password={MASK}"),
        ("https://h/x?subscription-key=a&X-Api-Key=b", f"https://h/x?subscription-key={MASK}&X-Api-Key={MASK}"),
        ("https://h/x?sig=a&client_secret=b", f"https://h/x?sig={MASK}&client_secret={MASK}"),
        ("https://h/x#access_token=a", f"https://h/x#{MASK}"),
        ("mqtts://u:p@broker:8883", f"mqtts://{MASK}@broker:8883"),
    ],
)  # fmt: skip
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_an_unparseable_url_keeps_only_its_scheme() -> None:
    assert redact_url("http://[::1:bob:pw@x/") == f"http://{MASK}"


def test_scrub_masks_urls_and_registered_secrets_in_any_text() -> None:
    pw, key = _token("pw"), _token("key")
    url = f"https://bob:{pw}@h.example/p?api_key={key}&n=1"
    register_url(url)
    basic = base64.b64encode(f"bob:{pw}".encode()).decode()
    text = f"GET {url} failed; echoed: Authorization: Basic {basic}; key={key}; quoted='{url}'"
    out = scrub(text)
    for value in (pw, key, basic):
        assert value not in out, out
    assert "h.example/p" in out  # still says where


def test_a_user_name_is_a_secret_only_when_it_stands_alone() -> None:
    token, pw = _token("ghp"), _token("pw")
    register_url(f"https://{token}@h.example/x")
    register_url(f"https://operator:{pw}@h.example/x")
    assert scrub(f"{token} operator {pw}") == f"{MASK} operator {MASK}"


def test_registered_secrets_are_masked_raw_and_url_encoded() -> None:
    value = "p@ss w/rd+" + secrets.token_hex(4)
    register_secret(value)
    assert value not in scrub(f"x {value} y")
    assert quote(value, safe="") not in scrub(f"form password={quote(value, safe='')}")


def test_short_secrets_are_not_scrubbed_by_value() -> None:
    register_secret("ab")
    assert scrub("abc about") == "abc about"


def test_config_secrets_are_registered_when_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, baseline_toml: str
) -> None:
    pw, from_file = _token("envpw"), _token("filepw")
    monkeypatch.setenv("HASHSPARK_T_PW", pw)
    secret_file = tmp_path / "pw"
    secret_file.write_text(from_file + "\n")
    secret_file.chmod(0o600)
    text = baseline_toml + (
        '\n[sites.mqtt]\nhost = "127.0.0.1"\nusername = "u"\n'
        'password = { env = "HASHSPARK_T_PW" }\n'
    )
    path = tmp_path / "c.toml"
    path.write_text(text)
    load_config(path)
    assert scrub(f"{pw}") == MASK
    broker = MqttBrokerConfig.model_validate(
        {"host": "h", "username": "u", "password": {"file": str(secret_file)}}
    )
    assert broker.password is not None
    assert scrub(from_file) == MASK


# --- log lines ---------------------------------------------------------------------------------


def test_log_lines_mask_urls_and_secrets_structlog_and_stdlib(
    capsys: pytest.CaptureFixture[str],
) -> None:
    token, key = _token("bearer"), _token("qkey")
    register_secret(token)
    logs.configure("info")
    try:
        structlog.get_logger("t").warning(
            "feed_outage", error=f"HTTP 500 from https://h/x?token={key}", echoed=[token]
        )
        try:
            raise ValueError(f"Authorization: Bearer {token}")
        except ValueError:
            structlog.get_logger("t").exception("boom")
        logging.getLogger("aiohttp.client").warning("request to https://u:%s@h failed", key)
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert token not in err, err
    assert key not in err, err
    assert err.count(MASK) >= 4, err
    assert "feed_outage" in err
    assert "boom" in err
    assert "request to" in err


# --- HTTP errors -------------------------------------------------------------------------------


async def test_http_errors_never_quote_the_body_or_the_query() -> None:
    token, key = _token("tok"), _token("key")
    echo = json.dumps(
        {"headers": {"Authorization": f"Bearer {token}"}, "error": f"Bearer {token}"}
    ).encode()
    async with scripted_server() as s, aiohttp.ClientSession() as session:
        s.on("GET", "/x", Reply(status=401, body=echo))
        s.on("GET", "/y", Reply(status=502, body=echo))
        s.on("GET", "/z", Reply(status=400, body=b'{"error": "invalid_grant: AADB2C90225"}'))
        url = f"{s.base_url}/x?api_key={key}"
        with pytest.raises(PermanentFeedError) as perm:
            await fetch_bytes(session, "GET", url, timeout_s=5, headers={"Authorization": token})
        with pytest.raises(TransientFeedError) as trans:
            await fetch_bytes(session, "GET", f"{s.base_url}/y?token={key}", timeout_s=5)
        with pytest.raises(PermanentFeedError) as coded:
            await fetch_bytes(session, "GET", f"{s.base_url}/z", timeout_s=5)
    assert str(perm.value) == f"HTTP 401 Unauthorized from {s.base_url}/x?api_key={MASK}"
    assert str(trans.value) == f"HTTP 502 Bad Gateway from {s.base_url}/y?token={MASK}"
    assert str(coded.value) == f"HTTP 400 Bad Request (invalid_grant) from {s.base_url}/z"


async def test_a_connection_error_names_no_credentials() -> None:
    pw = _token("pw")
    url = f"http://bob:{pw}@127.0.0.1:{free_port()}/x?key={pw}"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransientFeedError) as info:
            await fetch_bytes(session, "GET", url, timeout_s=5)
    assert pw not in str(info.value)
    assert str(info.value).startswith("cannot connect"), info.value


async def test_ercot_tokens_are_masked_and_a_replaced_one_forgotten() -> None:
    first, second = _token("idtok1"), _token("idtok2")
    async with scripted_server() as s:
        s.on(
            "POST",
            "/token",
            Reply(body=json.dumps({"id_token": first, "expires_in": 3600}).encode()),
            Reply(body=json.dumps({"id_token": second, "expires_in": 3600}).encode()),
        )
        spp = "/np6-905-cd/spp_node_zone_hub"
        s.on("GET", spp, Reply(status=401), Reply(body=fixture("ercot_np6-905-cd_hb_west.json")))
        cfg = ErcotFeedConfig(
            type="ercot",
            settlement_point="HB_WEST",
            username="ops@example.com",
            password=SecretStr("pw"),
            subscription_key=SecretStr("sub-key"),
            base_url=s.base_url,
            token_url=s.base_url + "/token",
        ).model_copy(update={"interval_s": 0.05, "timeout_s": 2.0})
        store = LatestStore("t:price:ercot", FeedStats())
        async with ErcotFeed(cfg, store, SystemClock()) as feed:
            await feed.wait_up(5)  # a 401 on data: a fresh token, then the report
    assert feed.token_requests == 2
    assert scrub(f"{first} {second}") == f"{first} {MASK}"
    assert registered_count() <= 3  # the forms of one token, not one per refresh


def test_feed_metric_labels_are_scrubbed() -> None:
    pw = _token("pw")
    register_secret(pw)
    registry = CollectorRegistry()
    stats = FeedStats()
    metrics = Metrics(registry, PnlBook(), stats)
    name = f"s:price:https://u:{pw}@h/x?key={pw}"
    stats.count_accepted(name)
    metrics.feed_health[name] = FeedHealth(name)
    text = generate_latest(registry).decode()
    assert pw not in text
    assert text.count(MASK) >= 2, text


def test_chain_source_has_no_userinfo() -> None:
    pw = _token("pw")
    cfg = ChainFeedConfig(type="chain", base_url=f"https://u:{pw}@mempool.example:8443")
    feed = ChainHashpriceFeed(cfg, LatestStore("s:hashprice:chain", FeedStats()), SystemClock())
    assert feed._source == "chain:mempool.example:8443"


def test_an_mqtt_host_with_credentials_is_refused_without_quoting_it() -> None:
    pw = _token("pw")
    with pytest.raises(ValidationError) as info:
        MqttBrokerConfig.model_validate({"host": f"mqtt://u:{pw}@broker"})
    assert pw not in str(info.value.errors(include_input=False))
    assert "not a URL" in str(info.value)


def test_check_config_shows_urls_masked(tmp_path: Path, baseline_toml: str) -> None:
    key, pw = _token("idx"), _token("pw")
    path = tmp_path / "c.toml"
    url = f"https://u:{pw}@index.example/h?api_key={key}"
    path.write_text(_with_index(baseline_toml, url))
    dumped = json.dumps(render(load_config(path).config))
    assert key not in dumped
    assert pw not in dumped
    assert f"https://{MASK}@index.example/h?api_key={MASK}" in dumped


def _with_index(baseline: str, url: str) -> str:
    """The baseline with its hashprice feed replaced by an HTTP index at ``url``."""
    start = baseline.index("[sites.hashprice_feed]")
    end = baseline.index("[", start + 1)
    table = f'[sites.hashprice_feed]\ntype = "hashprice_index"\nurl = "{url}"\n\n'
    return baseline[:start] + table + baseline[end:]


# --- parse errors quote nothing of what they read ----------------------------------------------

SHADOW = "root:$6$Xq8dJ3kz$hQwqv0Vb9oXH0Q1mZpG9vA7nWl0o3pZ2:19700:0:99999:7:::\n"


def _shadow(tmp_path: Path) -> tuple[Path, str]:
    """A file shaped like /etc/shadow with a distinctive hash; the hash to grep for."""
    digest = secrets.token_hex(16)
    path = tmp_path / "shadow"
    path.write_text(SHADOW.replace("hQwqv0Vb9oXH0Q1mZpG9vA7nWl0o3pZ2", digest) + "daemon:*:1::\n")
    return path, digest


def test_a_recording_that_does_not_parse_prints_no_content(tmp_path: Path) -> None:
    path, digest = _shadow(tmp_path)
    with pytest.raises(RecordingError) as info:
        load_recording(path, PRICE_COLUMN)
    assert digest not in str(info.value)
    assert "$6$" not in str(info.value)
    assert str(info.value).startswith(f"{path}:1: header is not the expected")
    bad_rows = [
        ("timestamp,usd_per_mwh\n" + digest + ",1\n", "timestamp is not ISO-8601"),
        ("timestamp,usd_per_mwh\n2024-08-20T00:00:00Z," + digest + "\n", "value is not a number"),
        ("timestamp,usd_per_mwh\n2024-08-20T00:00:00+00:00,1\n2024-08-20T00:00:00Z,1\n", "dup"),
        ("timestamp,usd_per_mwh\n" + digest + "-01-01T00:00:00,1\n", "ISO-8601"),
    ]
    for i, (body, reason) in enumerate(bad_rows):
        p = tmp_path / f"r{i}.csv"
        p.write_text(body)
        with pytest.raises(RecordingError) as info:
            load_recording(p, PRICE_COLUMN)
        assert reason in str(info.value)
        assert digest not in str(info.value)


@pytest.mark.parametrize(
    "extra",
    [
        "",  # line 1 is not TOML at all
        "[a]\nx = 1\n[a]\n",  # a table declared twice: tomllib quotes its name
        'k = { q = 1, q = 2 }\n',  # an inline key twice
    ],
)  # fmt: skip
def test_a_config_that_does_not_parse_prints_no_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str
) -> None:
    path, digest = _shadow(tmp_path)
    if extra:
        name = f"t{digest}"
        path.write_text(extra.replace("[a]", f"[{name}]").replace("q", name))
        digest = name
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (message,) = info.value.messages
    assert digest not in message, message
    assert message.startswith(f"{path}: invalid TOML: "), message
    assert "(at line" in message, message
    for command in (["check-config", str(path)], ["replay", str(path)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert digest not in err, err
        assert err.count("\n") == 1, err


def test_a_commands_file_that_does_not_parse_logs_no_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = secrets.token_hex(16)
    path = tmp_path / "site.json"
    docs = [
        {"version": 1, "overrides": [{"kind": digest}]},
        {"version": 1, "overrides": [{"kind": "force_curtail", digest: 1}]},
    ]
    logs.configure("info")
    try:
        for doc in docs:
            path.write_text(json.dumps(doc))
            assert ActiveCommands(path, "s").load() == []
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert err.count("commands_unreadable") == 2, err
    assert digest not in err, err
