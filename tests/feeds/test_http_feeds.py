"""HTTP pollers against a local server playing recorded responses: every failure class."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from adapters.feeds.chain import ChainFeedConfig, ChainHashpriceFeed, parse_chain
from adapters.feeds.ercot import ErcotFeed, ErcotFeedConfig, parse_report
from adapters.feeds.hashprice_index import HashpriceIndexFeed, HashpriceIndexFeedConfig
from adapters.feeds.health import FeedFailedError, FeedState
from adapters.feeds.payloads import DEFAULT_HASHPRICE_BOUND, DEFAULT_PRICE_BOUND, Candidate
from adapters.feeds.store import FeedStats, LatestStore, RejectReason
from controller.domain import to_epoch
from controller.runtime.clocks.system import SystemClock
from controller.runtime.retry import Backoff
from tests.feeds.conftest import eventually
from tests.feeds.scripted_server import Reply, Script, fixture, scripted_server

SPP = "/np6-905-cd/spp_node_zone_hub"
LMP = "/np6-788-cd/lmp_node_zone_hub"
TOKEN = "/token"
INDEX = "/index"
FAST = 0.05  # poll interval in these tests


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return to_epoch(datetime(year, month, day, hour, minute, second, tzinfo=UTC))


def _backoff() -> Backoff:
    return Backoff(0.01, 0.05, random.Random(7))


def _ercot(script: Script, stats: FeedStats, product: str = "spp") -> ErcotFeed:
    cfg = ErcotFeedConfig(
        type="ercot",
        product=product,
        settlement_point="HB_WEST",
        username="ops@example.com",
        password=SecretStr("pw"),
        subscription_key=SecretStr("sub-key"),
        base_url=script.base_url,
        token_url=script.base_url + TOKEN,
    ).model_copy(update={"interval_s": FAST, "timeout_s": 2.0})
    return ErcotFeed(
        cfg, LatestStore("hb-west:price:ercot", stats), SystemClock(), backoff=_backoff()
    )


def _index(script: Script, stats: FeedStats, timeout_s: float = 2.0) -> HashpriceIndexFeed:
    cfg = HashpriceIndexFeedConfig(
        type="hashprice_index",
        url=script.base_url + INDEX,
        api_key=SecretStr("k"),
        value_path="data.0.usdHashprice",
        time_path="data.0.timestamp",
        source="index:test",
    ).model_copy(update={"interval_s": FAST, "timeout_s": timeout_s})
    store = LatestStore("hb-west:hashprice:index", stats)
    return HashpriceIndexFeed(cfg, store, SystemClock(), backoff=_backoff())


def _index_doc(value: float, ts: str) -> bytes:
    return json.dumps({"data": [{"timestamp": ts, "usdHashprice": value}]}).encode()


# --- ERCOT -------------------------------------------------------------------------------


async def test_ercot_spp_success_with_token_and_subscription_key() -> None:
    async with scripted_server() as s:
        s.on("POST", TOKEN, Reply(body=fixture("ercot_token.json")))
        s.on("GET", SPP, Reply(body=fixture("ercot_np6-905-cd_hb_west.json")))
        stats = FeedStats()
        async with _ercot(s, stats) as feed:
            await feed.wait_up(5)
            await eventually(lambda: s.count(SPP) >= 3, what="three polls")
        reading = feed.latest(0)
        assert reading is not None
        # Hour ending 16, interval 3 on 2026-11-21 (CST) starts 15:30 local = 21:30Z.
        assert (reading.value, reading.observed_at) == (41.2, _utc(2026, 11, 21, 21, 30))
        assert reading.source == "ercot:HB_WEST"
        assert feed.token_requests == 1  # cached across polls
        token_hit = s.hits[TOKEN][0]
        assert token_hit.form["grant_type"] == "password"
        assert token_hit.form["username"] == "ops@example.com"
        assert token_hit.form["client_id"] in token_hit.form["scope"]
        hit = s.hits[SPP][0]
        assert hit.headers["Authorization"] == "Bearer eyJ.id.test"
        assert hit.headers["Ocp-Apim-Subscription-Key"] == "sub-key"
        assert hit.query["settlementPoint"] == "HB_WEST"
        assert "deliveryDateFrom" in hit.query
        assert stats.accepted["hb-west:price:ercot"] == 1  # re-reading the same row is no news
        assert stats.rejected_total() == 0


async def test_ercot_lmp_newest_sced_row() -> None:
    async with scripted_server() as s:
        s.on("POST", TOKEN, Reply(body=fixture("ercot_token.json")))
        s.on("GET", LMP, Reply(body=fixture("ercot_np6-788-cd_hb_west.json")))
        async with _ercot(s, FeedStats(), "lmp") as feed:
            await feed.wait_up(5)
        reading = feed.latest(0)
        assert reading is not None
        assert (reading.value, reading.observed_at) == (39.87, _utc(2026, 11, 21, 21, 35, 13))
        assert "SCEDTimestampFrom" in s.hits[LMP][0].query


def test_ercot_repeated_dst_hour_is_the_later_one() -> None:
    result = parse_report(
        fixture("ercot_np6-905-cd_dst_repeat.json"), "spp", "HB_WEST", DEFAULT_PRICE_BOUND
    )
    # 01:45 local on the fall-back day: 06:45Z (CDT) unflagged, 07:45Z (CST) flagged.
    assert result == Candidate(23.75, _utc(2026, 11, 1, 7, 45), "ercot:HB_WEST")


async def test_ercot_expired_token_is_refreshed_once() -> None:
    async with scripted_server() as s:
        s.on("POST", TOKEN, Reply(body=fixture("ercot_token.json")))
        s.on(
            "GET",
            SPP,
            Reply(status=401, body=fixture("ercot_401.json")),
            Reply(body=fixture("ercot_np6-905-cd_hb_west.json")),
        )
        async with _ercot(s, FeedStats()) as feed:
            await feed.wait_up(5)
        assert feed.token_requests == 2
        assert feed.health.outages == 0


async def test_ercot_401_after_a_fresh_token_is_permanent() -> None:
    async with scripted_server() as s:
        s.on("POST", TOKEN, Reply(body=fixture("ercot_token.json")))
        s.on("GET", SPP, Reply(status=401, body=fixture("ercot_401.json")))
        async with _ercot(s, FeedStats()) as feed:
            with pytest.raises(FeedFailedError, match="401"):
                await feed.wait_up(5)
            await asyncio.sleep(10 * FAST)  # ten intervals: no retry may happen
            assert s.count(SPP) == 2
            assert feed.health.state is FeedState.FAILED


async def test_ercot_bad_password_fails_at_the_token() -> None:
    async with scripted_server() as s:
        s.on("POST", TOKEN, Reply(status=400, body=fixture("ercot_token_invalid_grant.json")))
        s.on("GET", SPP, Reply(body=fixture("ercot_np6-905-cd_hb_west.json")))
        async with _ercot(s, FeedStats()) as feed:
            with pytest.raises(FeedFailedError, match=r"token refused.*AADB2C90225"):
                await feed.wait_up(5)
        assert s.count(SPP) == 0
        assert s.count(TOKEN) == 1


# --- failure classes (index feed: the simplest poller) -----------------------------------


async def test_403_is_permanent_and_polling_stops() -> None:
    async with scripted_server() as s:
        s.on("GET", INDEX, Reply(status=403, body=b'{"error":"forbidden"}'))
        async with _index(s, FeedStats()) as feed:
            with pytest.raises(FeedFailedError, match="403"):
                await feed.wait_up(5)
            await asyncio.sleep(10 * FAST)
        assert s.count(INDEX) == 1


async def test_429_retry_after_is_obeyed() -> None:
    async with scripted_server() as s:
        s.on(
            "GET",
            INDEX,
            Reply(status=429, headers={"Retry-After": "1"}),
            Reply(body=_index_doc(55.21, "2026-11-20T00:00:00Z")),
        )
        async with _index(s, FeedStats()) as feed:
            await feed.wait_up(5)
        first, second = s.hits[INDEX][:2]
        # The backoff alone would retry within 0.05 s; the server asked for 1 s.
        assert second.at - first.at >= 0.95
        assert feed.health.outages == 1


async def test_5xx_retried_with_backoff_outage_and_recovery_logged_once() -> None:
    async with scripted_server() as s:
        s.on(
            "GET",
            INDEX,
            Reply(body=_index_doc(55.21, "2026-11-20T00:00:00Z")),
            Reply(status=500),
            Reply(status=502),
            Reply(status=503),
            Reply(body=_index_doc(56.0, "2026-11-21T00:00:00Z")),
        )
        with capture_logs() as logs:
            async with _index(s, FeedStats()) as feed:
                await eventually(lambda: feed.health.state is FeedState.DOWN, what="the outage")
                kept = feed.latest(0)
                assert kept is not None
                assert kept.value == 55.21  # last good value kept, with its age
                age = feed.store.age_s(SystemClock().now())
                assert age is not None
                assert age > 0
                await eventually(lambda: feed.health.state is FeedState.UP, what="recovery")
        reading = feed.latest(0)
        assert reading is not None
        assert reading.value == 56.0
        assert s.count(INDEX) == 5
        events = [e["event"] for e in logs if e.get("feed") == "hb-west:hashprice:index"]
        assert events.count("feed_outage") == 1
        assert events.count("feed_recovered") == 1


async def test_malformed_json_is_rejected_counted_and_the_good_value_kept() -> None:
    async with scripted_server() as s:
        s.on(
            "GET",
            INDEX,
            Reply(body=_index_doc(55.21, "2026-11-20T00:00:00Z")),
            Reply(body=b'{"data": [{"timestamp": "2026-11-21T00:00:00Z", "usdHash'),
            Reply(body=b'{"data": [{"timestamp": "2026-11-21T00:00:00Z", "usdHashprice": NaN}]}'),
            Reply(body=_index_doc(56.0, "2026-11-21T00:00:00Z")),
        )
        stats = FeedStats()
        async with _index(s, stats) as feed:
            await eventually(lambda: s.count(INDEX) >= 4, what="four polls")
            await eventually(lambda: (r := feed.latest(0)) is not None and r.value == 56.0)
        assert stats.rejected[("hb-west:hashprice:index", RejectReason.MALFORMED)] == 1
        assert stats.rejected[("hb-west:hashprice:index", RejectReason.NOT_FINITE)] == 1
        assert feed.health.outages == 1


async def test_timeout_is_transient() -> None:
    async with scripted_server() as s:
        s.on(
            "GET",
            INDEX,
            Reply(body=_index_doc(55.21, "2026-11-20T00:00:00Z"), delay_s=1.0),
            Reply(body=_index_doc(55.21, "2026-11-20T00:00:00Z")),
        )
        async with _index(s, FeedStats(), timeout_s=0.2) as feed:
            await eventually(lambda: feed.health.last_error is not None, what="the timeout")
            assert "timeout" in (feed.health.last_error or "")
            await feed.wait_up(5)


# --- chain -------------------------------------------------------------------------------


def test_chain_hashprice_matches_economics_check() -> None:
    result = parse_chain(
        fixture("mempool_blocks.json"),
        fixture("mempool_prices.json"),
        observed_at=1_795_300_000.0,
        source="chain:test",
        min_blocks=6,
        bound=DEFAULT_HASHPRICE_BOUND,
    )
    assert isinstance(result, Candidate)
    # ECONOMICS.md: difficulty 108.52e12, BTC 93,450, subsidy 3.125, fees 0.0931 -> 55.75.
    assert round(result.value, 2) == 55.75
    assert result.source == "chain:test@925009"


async def test_chain_feed_polls_blocks_and_prices() -> None:
    async with scripted_server() as s:
        s.on("GET", "/api/v1/blocks", Reply(body=fixture("mempool_blocks.json")))
        s.on("GET", "/api/v1/prices", Reply(body=fixture("mempool_prices.json")))
        cfg = ChainFeedConfig(type="chain", base_url=s.base_url).model_copy(
            update={"interval_s": FAST}
        )
        store = LatestStore("hb-west:hashprice:chain", FeedStats())
        async with ChainHashpriceFeed(cfg, store, SystemClock(), backoff=_backoff()) as feed:
            await feed.wait_up(5)
        reading = feed.latest(0)
        assert reading is not None
        assert round(reading.value, 2) == 55.75
        assert reading.source.startswith("chain:127.0.0.1:")


async def test_index_reads_configured_paths() -> None:
    async with scripted_server() as s:
        s.on("GET", INDEX, Reply(body=fixture("hashprice_index.json")))
        async with _index(s, FeedStats()) as feed:
            await feed.wait_up(5)
        reading = feed.latest(0)
        assert reading is not None
        assert (reading.value, reading.observed_at) == (55.21, _utc(2026, 11, 21))
        assert s.hits[INDEX][0].headers["X-API-Key"] == "k"


async def test_exit_does_not_wait_out_a_request_in_flight() -> None:
    async with scripted_server() as s:
        s.on("GET", INDEX, Reply(body=_index_doc(55.21, "2026-11-20T00:00:00Z"), delay_s=5.0))
        async with _index(s, FeedStats(), timeout_s=10.0):
            await eventually(lambda: s.count(INDEX) == 1, what="a request in flight")
            started = time.monotonic()
        assert time.monotonic() - started < 1.0
