"""The latest-reading store (order, duplicates, future, wake-ups) and the feed recorder."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from adapters.feeds.recorded import HASHPRICE_COLUMN, PRICE_COLUMN, load_recording
from adapters.feeds.recorder import FeedRecorder, format_timestamp
from adapters.feeds.store import Accepted, FeedStats, LatestStore, Rejected, RejectReason
from controller.domain import Reading

NOW = 1_795_300_000.0


def _store(stats: FeedStats | None = None) -> LatestStore:
    return LatestStore("site:price:test", stats or FeedStats(), max_future_s=300)


@pytest.mark.parametrize(
    ("t", "value", "reason"),
    [
        (NOW - 60, 40.0, RejectReason.DUPLICATE),  # same time, other value
        (NOW - 60, 41.0, RejectReason.DUPLICATE),  # a plain redelivery
        (NOW - 120, 41.0, RejectReason.OUT_OF_ORDER),
        (NOW + 301, 41.0, RejectReason.FUTURE),
        (NOW - 1, float("nan"), RejectReason.NOT_FINITE),
        (NOW - 1, float("-inf"), RejectReason.NOT_FINITE),
    ],
)
def test_store_rejects_and_counts(t: float, value: float, reason: RejectReason) -> None:
    stats = FeedStats()
    store = _store(stats)
    assert isinstance(store.offer(41.0, NOW - 60, "src", NOW), Accepted)
    store.updated.clear()
    outcome = store.offer(value, t, "src", NOW)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is reason
    assert stats.rejected[("site:price:test", reason)] == 1
    assert store.current == Reading(41.0, NOW - 60, "src")  # unchanged
    assert not store.updated.is_set()  # nothing to wake anyone for


def test_store_accepts_newer_and_wakes_listeners() -> None:
    store = _store()
    seen: list[Reading] = []
    store.add_listener(seen.append)
    store.offer(41.0, NOW - 60, "a", NOW)
    store.offer(42.0, NOW + 200, "b", NOW)  # within the allowed skew
    assert [r.value for r in seen] == [41.0, 42.0]
    assert store.updated.is_set()
    assert store.age_s(NOW) == 0.0  # held as observed when it arrived, not 200 s ahead
    assert store.stats.accepted["site:price:test"] == 2


def test_a_future_dated_reading_does_not_block_the_valid_ones_after_it() -> None:
    """Issue 16: a reading stamped 290 s ahead made every valid one "out of order"."""
    store = _store()
    assert isinstance(store.offer(41.0, NOW - 10, "a", NOW), Accepted)
    assert isinstance(store.offer(999.0, NOW + 290, "skewed", NOW), Accepted)
    for i, t in enumerate((NOW + 5, NOW + 10, NOW + 60), start=1):
        outcome = store.offer(40.0 + i, t, "a", t)
        assert isinstance(outcome, Accepted), outcome
        assert store.current is not None
        assert store.current.value == 40.0 + i
    assert store.stats.rejected_total() == 0


def test_a_redelivered_future_dated_reading_is_a_duplicate() -> None:
    store = _store()
    store.offer(41.0, NOW + 100, "a", NOW)
    outcome = store.offer(41.0, NOW + 100, "a", NOW + 1)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is RejectReason.DUPLICATE


def test_two_future_dated_readings_in_one_instant_keep_their_order() -> None:
    store = _store()
    store.offer(41.0, NOW + 100, "a", NOW)
    assert isinstance(store.offer(42.0, NOW + 200, "a", NOW), Accepted)
    assert store.current is not None
    assert store.current.value == 42.0


@pytest.mark.parametrize(
    ("t", "reason"),
    [
        (253_402_387_139.0, RejectReason.FUTURE),  # 9999-12-31T23:59:59-23:59: year 10000 UTC
        (-62_135_683_140.0, RejectReason.OUT_OF_RANGE),  # 0001-01-01T00:00:00+23:59: year 0
        (1e300, RejectReason.FUTURE),
        (1e12, RejectReason.FUTURE),  # year 33658
        (0.0, RejectReason.OUT_OF_RANGE),  # 1970: no live price is that old
        (4_102_444_801.0, RejectReason.FUTURE),  # just past 2100
        (float("nan"), RejectReason.NOT_FINITE),
    ],
)
def test_impossible_times_are_rejected_and_counted_not_raised(
    t: float, reason: RejectReason
) -> None:
    stats = FeedStats()
    store = LatestStore("site:price:test", stats, max_future_s=1e12)  # the window, not the skew
    outcome = store.offer(41.0, t, "src", NOW)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is reason
    assert stats.rejected[("site:price:test", reason)] == 1
    assert store.current is None
    assert not store.restore(Reading(41.0, t, "src"), NOW)


def test_rejection_logs_are_paced_but_every_rejection_is_counted() -> None:
    stats = FeedStats()
    store = _store(stats)
    with capture_logs() as logs:
        for _ in range(50):
            store.reject(RejectReason.MALFORMED, "not JSON")
    assert stats.rejected_total() == 50
    warnings = [e for e in logs if e["event"] == "reading_rejected"]
    assert len(warnings) == 1
    assert warnings[0]["reason"] == "malformed"


def test_recorder_writes_daily_files_that_load_back(tmp_path: Path) -> None:
    rec = FeedRecorder(tmp_path / "price", PRICE_COLUMN)
    day1 = 1_795_219_200.0  # 2026-11-21T00:00:00Z
    values = [(day1 + 900 * i, 30.0 + i / 3) for i in range(4)]
    values.append((day1 + 86_400 + 0.25, -12.5))  # next day, a fractional second
    for t, v in values:
        rec(Reading(v, t, "test"))
    rec.close()
    first = load_recording(tmp_path / "price" / "2026-11-21.csv", PRICE_COLUMN)
    second = load_recording(tmp_path / "price" / "2026-11-22.csv", PRICE_COLUMN)
    assert first.times.tolist() == [t for t, _ in values[:4]]
    assert first.values.tolist() == [v for _, v in values[:4]]  # repr round-trips exactly
    assert second.times.tolist() == [values[4][0]]
    assert format_timestamp(values[4][0]) == "2026-11-22T00:00:00.250000Z"


def test_recorder_survives_a_torn_line_and_a_restart(tmp_path: Path) -> None:
    day = 1_795_219_200.0
    rec = FeedRecorder(tmp_path, HASHPRICE_COLUMN, fsync=False)
    rec(Reading(55.0, day, "t"))
    rec(Reading(55.5, day + 60, "t"))
    rec.close()
    path = tmp_path / "2026-11-21.csv"
    with path.open("a", encoding="utf-8") as f:
        f.write("2026-11-21T00:02:00Z,5")  # the crash: half a line
    restarted = FeedRecorder(tmp_path, HASHPRICE_COLUMN, fsync=False)
    restarted(Reading(55.5, day + 60, "t"))  # re-received after the restart: skipped
    restarted(Reading(56.0, day + 180, "t"))
    restarted.close()
    rec2 = load_recording(path, HASHPRICE_COLUMN)
    assert rec2.values.tolist() == [55.0, 55.5, 56.0]
    assert restarted.skipped == 1
