"""Issue 16, a hostile world: impossible times and magnitudes are rejections, never crashes.

Each row is a payload that once raised (or was accepted and crashed later, when a log line,
the recorder or the ledger turned its time into a datetime). Every parser must hand back a
``Rejected`` with the reason the store counts it under.
"""

from __future__ import annotations

import json

import pytest

from adapters.feeds.chain import parse_chain
from adapters.feeds.hashprice_index import parse_index
from adapters.feeds.payloads import (
    DEFAULT_HASHPRICE_BOUND,
    DEFAULT_PRICE_BOUND,
    Candidate,
    ReadingKind,
    ingest,
    parse_reading,
)
from adapters.feeds.store import FeedStats, LatestStore, Rejected, RejectReason
from tests.feeds.scripted_server import fixture

NOW = 1_795_300_000.0


def _price(ts: str, value: float = 41.0) -> bytes:
    return json.dumps({"usd_per_mwh": value, "ts": ts}).encode()


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("9999-12-31T23:59:59-23:59", RejectReason.FUTURE),  # year 10000 in UTC
        ("9999-12-31T23:59:59Z", RejectReason.FUTURE),
        ("0001-01-01T00:00:00+23:59", RejectReason.OUT_OF_RANGE),  # year 0 in UTC
        ("0001-01-01T00:00:00Z", RejectReason.OUT_OF_RANGE),
        ("1970-01-01T00:00:00Z", RejectReason.OUT_OF_RANGE),
        ("2100-01-01T00:00:01Z", RejectReason.FUTURE),
        ("10000-01-01T00:00:00Z", RejectReason.MALFORMED),  # not a datetime at all
    ],
)
def test_price_payload_times_outside_2000_to_2100_are_rejected(
    ts: str, reason: RejectReason
) -> None:
    result = parse_reading(_price(ts), ReadingKind.PRICE, DEFAULT_PRICE_BOUND, default_source="t")
    assert isinstance(result, Rejected), result
    assert result.reason is reason
    stats = FeedStats()
    store = LatestStore("site:price:mqtt", stats)
    assert ingest(store, result, NOW) == result
    assert stats.rejected[("site:price:mqtt", reason)] == 1
    assert store.current is None


def test_a_price_in_the_window_still_parses() -> None:
    result = parse_reading(
        _price("2026-11-21T22:15:00Z"), ReadingKind.PRICE, DEFAULT_PRICE_BOUND, default_source="t"
    )
    assert isinstance(result, Candidate)


def _index(ts: object, value: object = 55.2) -> bytes:
    return json.dumps({"usd_per_ph_day": value, "ts": ts}).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_index(1e300), RejectReason.FUTURE),  # was OverflowError downstream
        (_index(1e15), RejectReason.FUTURE),  # taken for ms: 1e12 s, year 33658
        (_index(1e11 - 1), RejectReason.FUTURE),  # seconds, year 5138
        (_index(-1e300), RejectReason.OUT_OF_RANGE),
        (_index(0.0), RejectReason.OUT_OF_RANGE),
        (_index("9999-12-31T23:59:59-23:59"), RejectReason.FUTURE),
        (_index("0001-01-01T00:00:00+23:59"), RejectReason.OUT_OF_RANGE),
        (_index(NOW, 1e308), RejectReason.OUT_OF_RANGE),
        (_index(NOW, -1e308), RejectReason.OUT_OF_RANGE),
        (b'{"usd_per_ph_day": 55.2, "ts": 1e400}', RejectReason.NOT_FINITE),
        (b'{"usd_per_ph_day": 1e400, "ts": 1795300000}', RejectReason.NOT_FINITE),
    ],
)
def test_index_times_and_magnitudes_are_rejected(raw: bytes, reason: RejectReason) -> None:
    result = parse_index(
        raw, value_path="usd_per_ph_day", time_path="ts", source="i", bound=DEFAULT_HASHPRICE_BOUND
    )
    assert isinstance(result, Rejected), result
    assert result.reason is reason, result


def test_index_epoch_milliseconds_in_the_window_still_parse() -> None:
    result = parse_index(
        _index(NOW * 1000),
        value_path="usd_per_ph_day",
        time_path="ts",
        source="i",
        bound=DEFAULT_HASHPRICE_BOUND,
    )
    assert isinstance(result, Candidate)
    assert result.observed_at == NOW


def _blocks(**override: object) -> bytes:
    blocks = json.loads(fixture("mempool_blocks.json"))
    for block in blocks:
        for key, value in override.items():
            if key == "totalFees":
                block["extras"]["totalFees"] = value
            else:
                block[key] = value
    return json.dumps(blocks).encode()


def _prices(usd: object) -> bytes:
    doc = json.loads(fixture("mempool_prices.json"))
    doc["USD"] = usd
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("blocks", "prices"),
    [
        (_blocks(totalFees=10**400), fixture("mempool_prices.json")),  # int / int overflowed
        (_blocks(totalFees=21_000_000 * 100_000_000 + 1), fixture("mempool_prices.json")),
        (_blocks(height=10**30), fixture("mempool_prices.json")),
        (_blocks(difficulty=1e308), fixture("mempool_prices.json")),
        (_blocks(difficulty=1e-300), fixture("mempool_prices.json")),  # hashprice ~1e300
        (fixture("mempool_blocks.json"), _prices(1e308)),
        (b'[{"height": 1, "timestamp": 1, "difficulty": Infinity}]', _prices(1.0)),
    ],
)
def test_chain_absurd_magnitudes_are_rejected_not_raised(blocks: bytes, prices: bytes) -> None:
    result = parse_chain(
        blocks,
        prices,
        observed_at=NOW,
        source="chain:test",
        min_blocks=6,
        bound=DEFAULT_HASHPRICE_BOUND,
    )
    assert isinstance(result, Rejected), result
    assert result.reason in (
        RejectReason.MALFORMED,
        RejectReason.OUT_OF_RANGE,
        RejectReason.NOT_FINITE,
    )
