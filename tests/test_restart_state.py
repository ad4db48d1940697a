"""What a restart keeps: feeds' last readings, active commands; and a log level that changes
for loggers already bound. The daemon-level tests are in tests/feeds/test_restart*.py."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from adapters.control.commands import CommandIntake, CommandLimits
from adapters.control.persist import ActiveCommands, from_json, to_json
from adapters.feeds.memory import ReadingMemory
from adapters.feeds.store import Accepted, FeedStats, LatestStore, Rejected, RejectReason
from controller.decision.overrides import Override
from controller.runtime import logs
from controller.runtime.override_book import OverrideBook

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


def test_active_commands_round_trip_and_the_ended_are_dropped(tmp_path: Path) -> None:
    active = ActiveCommands(tmp_path / "commands" / "s.json", "s")
    book = OverrideBook(on_change=active.save)
    dr = Override("dr-1", "demand_response", NOW, NOW + 600, 0.0, "ercot", deadline=NOW + 60)
    ended = Override("fc-1", "force_curtail", NOW - 600, NOW + 10)
    book.add(dr)
    book.add(ended)
    assert {o["id"] for o in json.loads(active.path.read_text())["overrides"]} == {"dr-1", "fc-1"}

    later = OverrideBook()
    with capture_logs() as logged:
        restored = ActiveCommands(active.path, "s").restore(later, NOW + 20)
    assert restored == [dr]
    assert later.current(NOW + 20) == (dr,)
    assert [(e["event"], e["id"]) for e in logged] == [
        ("command_restored", "dr-1"),
        ("command_expired", "fc-1"),
    ]
    assert [o["id"] for o in json.loads(active.path.read_text())["overrides"]] == ["dr-1"]

    book.clear("dr-1")
    book.current(NOW + 20)  # fc-1 ends: dropped, and the file follows
    assert json.loads(active.path.read_text())["overrides"] == []


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"id": "a", "kind": "shutdown", "start": 0, "end": 1},
        {"id": "a", "kind": "force_curtail", "start": "0", "end": 1},
        {"id": "a", "kind": "force_curtail", "start": 0, "end": 1, "extra": 1},
        {"id": "a", "kind": "force_curtail", "start": True, "end": 1},
    ],
)
def test_a_damaged_override_is_refused(doc: object) -> None:
    with pytest.raises(ValueError):
        from_json(doc)


def test_an_override_survives_json() -> None:
    o = Override("bp", "base_point", NOW, NOW + 60, 1.5, "ops", tolerance_mw=0.1)
    assert from_json(json.loads(json.dumps(to_json(o)))) == o


def test_a_restored_command_redelivered_is_a_duplicate() -> None:
    intake = CommandIntake("s", CommandLimits())
    intake.remember(["dr-1"])
    raw = json.dumps({"command": "clear", "id": "dr-1", "target": "force_curtail"}).encode()
    cmd, ack = intake.receive(raw, NOW)
    assert cmd is None
    assert ack.status == "duplicate"


def test_the_log_level_changes_for_loggers_already_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    try:
        logs.configure("info")
        bound = structlog.get_logger("t").bind(site="s")
        bound.debug("hidden")
        logs.set_level("debug")
        assert logs.level() == "debug"
        bound.debug("shown")
        logs.set_level("warning")
        bound.info("hidden too")
        bound.warning("warned")
    finally:
        logs.configure("info")
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == ["shown", "warned"]
