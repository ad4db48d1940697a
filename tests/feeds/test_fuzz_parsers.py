"""Property tests: arbitrary payloads at every parser never crash, are all counted, never act.

The default run is a few seconds (a few hundred cases per property); the 10,000-case
variants are marked slow (``make test-slow``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.control.commands import CommandAck, CommandIntake, CommandLimits
from adapters.feeds.chain import parse_chain
from adapters.feeds.ercot import parse_report
from adapters.feeds.hashprice_index import parse_index
from adapters.feeds.payloads import (
    DEFAULT_HASHPRICE_BOUND,
    DEFAULT_PRICE_BOUND,
    Candidate,
    ParseResult,
    ReadingKind,
    ValueBound,
    ingest,
    parse_reading,
)
from adapters.feeds.store import FeedStats, LatestStore, Rejected
from tests.feeds.scripted_server import fixture

NOW = 1_795_300_000.0
FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)

_VALID_PRICE = {"usd_per_mwh": 41.2, "ts": "2026-11-21T22:15:00Z", "source": "ercot:HB_WEST"}
_KEYS = ["usd_per_mwh", "usd_per_ph_day", "ts", "source", "command", "id", "until", "data"]


@st.composite
def mutants(draw: st.DrawFn) -> bytes:
    """A valid price payload with keys replaced, added or removed: near misses."""
    doc: dict[str, Any] = dict(_VALID_PRICE)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(_KEYS) | st.text(max_size=8))
        if draw(st.booleans()):
            doc.pop(key, None)
        else:
            doc[key] = draw(json_values)
    return json.dumps(doc).encode()


@st.composite
def ercot_reports(draw: st.DrawFn) -> bytes:
    """ERCOT envelopes whose rows are arbitrary (some right-looking, most not)."""
    names = ["deliveryDate", "deliveryHour", "deliveryInterval", "settlementPoint",
             "settlementPointType", "settlementPointPrice", "DSTFlag"]  # fmt: skip
    good = ["2026-11-21", 16, 1, "HB_WEST", "HU", 41.2, False]
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        row = list(good)
        for _ in range(draw(st.integers(0, 3))):
            row[draw(st.integers(0, len(row) - 1))] = draw(json_values)
        if draw(st.booleans()):
            row = row[: draw(st.integers(0, len(row)))]
        rows.append(row)
    return json.dumps({"fields": [{"name": n} for n in names], "data": rows}).encode()


garbage = st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
payloads = garbage | mutants() | ercot_reports()


def _counted(store: LatestStore, result: ParseResult) -> None:
    """Ingest one result: exactly one of accepted / rejected moves; anything accepted is sane."""
    before = store.stats.rejected_total() + sum(store.stats.accepted.values())
    ingest(store, result, NOW)
    after = store.stats.rejected_total() + sum(store.stats.accepted.values())
    assert after == before + 1
    if isinstance(result, Rejected):
        assert store.current is None


def _sane(result: ParseResult | None, bound: ValueBound) -> None:
    if isinstance(result, Candidate):
        assert math.isfinite(result.value)
        assert bound.min_value <= result.value <= bound.max_value
        assert math.isfinite(result.observed_at)


def _every_parser(raw: bytes) -> None:
    for kind, bound in ((ReadingKind.PRICE, DEFAULT_PRICE_BOUND),
                        (ReadingKind.HASHPRICE, DEFAULT_HASHPRICE_BOUND)):  # fmt: skip
        result = parse_reading(raw, kind, bound, default_source="fuzz")
        _sane(result, bound)
        _counted(LatestStore("fuzz", FeedStats()), result)
    for product in ("spp", "lmp"):
        report = parse_report(raw, product, "HB_WEST", DEFAULT_PRICE_BOUND)
        _sane(report, DEFAULT_PRICE_BOUND)
        if report is not None:
            _counted(LatestStore("fuzz", FeedStats()), report)
    index = parse_index(raw, value_path="data.0.usdHashprice", time_path="data.0.timestamp",
                        source="fuzz", bound=DEFAULT_HASHPRICE_BOUND)  # fmt: skip
    _sane(index, DEFAULT_HASHPRICE_BOUND)
    _counted(LatestStore("fuzz", FeedStats()), index)
    blocks, prices = fixture("mempool_blocks.json"), fixture("mempool_prices.json")
    for b, p in ((raw, prices), (blocks, raw)):
        chain = parse_chain(b, p, observed_at=NOW, source="fuzz", min_blocks=1,
                            bound=DEFAULT_HASHPRICE_BOUND)  # fmt: skip
        _sane(chain, DEFAULT_HASHPRICE_BOUND)
        _counted(LatestStore("fuzz", FeedStats()), chain)
    intake = CommandIntake("fuzz", CommandLimits())
    cmd, ack = intake.receive(raw, NOW)
    assert (cmd is None) == (ack.status != "accepted")
    assert intake.accepted + intake.rejected + intake.duplicates == 1
    assert CommandAck.model_validate_json(ack.to_bytes()) == ack


def _garbage_never_acts(raw: bytes) -> None:
    stats = FeedStats()
    store = LatestStore("fuzz", stats)
    for kind, bound in ((ReadingKind.PRICE, DEFAULT_PRICE_BOUND),
                        (ReadingKind.HASHPRICE, DEFAULT_HASHPRICE_BOUND)):  # fmt: skip
        ingest(store, parse_reading(raw, kind, bound, default_source="fuzz"), NOW)
    assert store.current is None  # nothing reaches latest()
    assert stats.rejected_total() == 2  # and both refusals were counted
    cmd, _ = CommandIntake("fuzz", CommandLimits()).receive(raw, NOW)
    assert cmd is None


def _both(check: Callable[[bytes], None], strategy: st.SearchStrategy[bytes]) -> tuple[Any, Any]:
    fast = FAST(given(strategy)(check))
    slow = pytest.mark.slow(SLOW(given(strategy)(check)))
    return fast, slow


test_every_parser_counts_every_payload, test_every_parser_counts_every_payload_10k = _both(
    _every_parser, payloads
)
test_garbage_never_acts, test_garbage_never_acts_10k = _both(_garbage_never_acts, garbage)
