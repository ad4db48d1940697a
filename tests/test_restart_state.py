"""What a restart keeps: each feed's last reading. The daemon-level tests are in
tests/feeds/test_restart*.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from adapters.feeds.memory import ReadingMemory
from adapters.feeds.store import Accepted, FeedStats, LatestStore, Rejected, RejectReason

NOW = 1_795_300_000.0


def _store() -> LatestStore:
    return LatestStore("s:price:mqtt", FeedStats(), max_future_s=300)


def test_a_fresh_reading_is_restored_a_stale_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "readings" / "s" / "price.json"
    first = _store()
    first.add_listener(ReadingMemory(path, first.feed))
    assert isinstance(first.offer(42.0, NOW - 100, "mqtt:x", NOW), Accepted)
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was renamed

    fresh = _store()
    with capture_logs() as logged:
        restored = ReadingMemory(path, fresh.feed).restore_into(fresh, NOW, max_age_s=900)
    assert restored is not None
    assert fresh.current == restored
    assert (restored.value, restored.observed_at) == (42.0, NOW - 100)
    assert logged[0]["event"] == "reading_restored"
    assert logged[0]["age_s"] == 100.0

    stale = _store()
    with capture_logs() as logged:
        assert ReadingMemory(path, stale.feed).restore_into(stale, NOW, max_age_s=100) is None
    assert stale.current is None
    assert logged[0]["event"] == "reading_not_restored"


def test_a_newer_live_reading_wins_an_older_retained_one_does_not(tmp_path: Path) -> None:
    path = tmp_path / "price.json"
    path.write_text(json.dumps({"value": 40.0, "observed_at": NOW - 60, "source": "mqtt:x"}))
    store = _store()
    ReadingMemory(path, store.feed).restore_into(store, NOW, max_age_s=900)
    older = store.offer(30.0, NOW - 120, "mqtt:x", NOW)  # a retained message, older
    assert isinstance(older, Rejected)
    assert older.reason is RejectReason.OUT_OF_ORDER
    assert isinstance(store.offer(50.0, NOW - 1, "mqtt:x", NOW), Accepted)
    assert store.current is not None
    assert store.current.value == 50.0


@pytest.mark.parametrize(
    "content",
    ["", "{", "[]", '{"value": "x", "observed_at": 1, "source": "s"}', '{"value": NaN}'],
)
def test_a_damaged_memory_is_logged_and_ignored(tmp_path: Path, content: str) -> None:
    path = tmp_path / "price.json"
    path.write_text(content)
    store = _store()
    with capture_logs() as logged:
        assert ReadingMemory(path, store.feed).restore_into(store, NOW, 900) is None
    assert [e["event"] for e in logged] == ["reading_not_restored"]
