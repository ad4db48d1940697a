"""Command payloads: validation, bounds, duplicates and acks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.control.apply import AuditLog, CommandHandler
from adapters.control.commands import (
    Clear,
    CommandAck,
    CommandIntake,
    CommandLimits,
    DemandResponse,
    ForceCurtail,
    ListCommands,
    PeakWindow,
)
from controller.domain import iso
from controller.runtime.override_book import OverrideBook

NOW = 1_795_300_000.0  # 2026-11-21T22:26:40Z
LIMITS = CommandLimits(max_hold_s=6 * 3600, max_lead_s=24 * 3600, max_mw=5.0)


def _at(offset_s: float) -> str:
    return iso(NOW + offset_s)


def _dr(max_mw: object, deadline_s: float, end_s: float) -> dict[str, object]:
    return {"command": "demand_response", "id": "d", "max_mw": max_mw,
            "deadline": _at(deadline_s), "end": _at(end_s)}  # fmt: skip


def _pw(start_s: float, end_s: float) -> dict[str, object]:
    return {"command": "peak_window", "id": "p", "start": _at(start_s), "end": _at(end_s)}


def _raw(**doc: object) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        ({"command": "force_curtail", "id": "c1", "until": _at(3600)}, ForceCurtail),
        ({"command": "force_resume", "id": "c2", "until": _at(60), "issued_by": "ops"}, None),
        (
            {
                "command": "demand_response",
                "id": "dr-7",
                "max_mw": 1.5,
                "deadline": _at(600),
                "end": _at(7200),
                "reason": "ERCOT ERS",
            },
            DemandResponse,
        ),
        ({"command": "peak_window", "id": "4cp", "start": _at(3600), "end": _at(7200)}, PeakWindow),
        ({"command": "clear", "id": "c3", "target": "c1"}, Clear),
        ({"command": "clear", "id": "c4", "target": "force_curtail"}, Clear),
        ({"command": "list", "id": "l1"}, ListCommands),
    ],
)
def test_valid_commands_are_accepted(doc: dict[str, object], kind: type | None) -> None:
    cmd, ack = CommandIntake("hb-west", LIMITS).receive(_raw(**doc), NOW)
    assert cmd is not None
    if kind is not None:
        assert isinstance(cmd, kind)
    assert (ack.status, ack.id, ack.command, ack.site) == (
        "accepted",
        doc["id"],
        doc["command"],
        "hb-west",
    )


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ({"command": "force_curtail", "id": "c1", "until": _at(-1)}, "past"),
        ({"command": "force_curtail", "id": "c1", "until": _at(7 * 3600)}, "ahead"),
        ({"command": "force_curtail", "id": "c1", "until": "2026-11-21T23:00:00"}, "timezone"),
        ({"command": "force_curtail", "id": "c1"}, "until"),
        ({"command": "force_curtail", "id": "c 1", "until": _at(60)}, "id"),
        ({"command": "force_curtail", "id": "c1", "until": _at(60), "x": 1}, "x"),
        ({"command": "launch", "id": "c1"}, "command"),
        ({"command": "clear", "id": "c4"}, "target"),  # no "clear everything"
        ({"command": "force_curtail", "id": "force_curtail", "until": _at(60)}, "kind"),
        (_dr(9, 0, 60), "exceeds"),  # above the site's power: a typo
        (_dr(-1, 0, 60), "max_mw"),
        (_dr(1, 60, 0), "after"),
        (_dr("1", 0, 60), "max_mw"),  # a string is not a number
        (_dr(1, -3600, 60), "past"),
        (_dr(1, 0, 7 * 3600), "ahead"),  # unbounded hold
        (_pw(-7200, -3600), "over"),
        (_pw(25 * 3600, 26 * 3600), "ahead"),
        (_pw(0, 7 * 3600), "longer"),
    ],
)  # fmt: skip
def test_invalid_or_unbounded_commands_are_rejected(doc: dict[str, object], why: str) -> None:
    intake = CommandIntake("hb-west", LIMITS)
    cmd, ack = intake.receive(_raw(**doc), NOW)
    assert cmd is None
    assert ack.status == "rejected"
    assert ack.reason is not None
    assert why in ack.reason
    assert intake.rejected == 1


def test_duplicate_ids_are_acknowledged_but_not_applied_twice() -> None:
    intake = CommandIntake("hb-west", LIMITS)
    raw = _raw(command="force_curtail", id="c1", until=_at(600))
    first, _ = intake.receive(raw, NOW)
    again, ack = intake.receive(raw, NOW + 1)
    assert first is not None
    assert again is None
    assert ack.status == "duplicate"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'"force_curtail"', b"{" * 5000])
def test_garbage_gets_a_rejection_ack(raw: bytes) -> None:
    cmd, ack = CommandIntake("hb-west", LIMITS).receive(raw, NOW)
    assert cmd is None
    assert ack.status == "rejected"
    assert CommandAck.model_validate_json(ack.to_bytes()) == ack  # the ack is valid JSON


def _handler(tmp_path: Path) -> tuple[CommandHandler, OverrideBook]:
    book = OverrideBook()
    intake = CommandIntake("hb-west", LIMITS)
    return CommandHandler("hb-west", intake, book, AuditLog(tmp_path / "audit.jsonl")), book


def _send(handler: CommandHandler, **doc: object) -> dict[str, Any]:
    ack: dict[str, Any] = json.loads(handler.receive(_raw(**doc), NOW).to_bytes())
    return ack


def test_clear_names_an_id_or_a_kind_and_spares_the_rest(tmp_path: Path) -> None:
    handler, book = _handler(tmp_path)
    _send(handler, command="force_curtail", id="op-1", until=_at(600))
    _send(handler, command="force_curtail", id="op-2", until=_at(900))
    _send(handler, **_dr(1, 600, 3600) | {"id": "ers-1"})
    _send(handler, **_pw(3600, 7200) | {"id": "4cp-1"})  # scheduled, not yet active
    assert _send(handler, command="clear", id="c1", target="op-1")["status"] == "accepted"
    assert {o.id for o in book.current(NOW)} == {"op-2", "ers-1", "4cp-1"}
    assert _send(handler, command="clear", id="c2", target="force_curtail")["status"] == "accepted"
    assert {o.id for o in book.current(NOW)} == {"ers-1", "4cp-1"}  # grid programs stay
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["cleared"] == ["op-2"]


@pytest.mark.parametrize("target", ["op-9", "force_resume"])
def test_a_clear_that_names_nothing_is_rejected_with_the_reason(
    tmp_path: Path, target: str
) -> None:
    handler, book = _handler(tmp_path)
    _send(handler, command="force_curtail", id="op-1", until=_at(600))
    ack = _send(handler, command="clear", id="c1", target=target)
    assert ack["status"] == "rejected"
    assert ack["reason"] == f"no active or scheduled command with id or kind {target!r}"
    assert [o.id for o in book.current(NOW)] == ["op-1"]


def test_list_answers_with_the_active_and_scheduled_commands(tmp_path: Path) -> None:
    handler, _ = _handler(tmp_path)
    assert "active" not in _send(handler, command="force_curtail", id="op-1", until=_at(600))
    _send(handler, **_dr(1.5, 600, 3600) | {"id": "ers-1", "issued_by": "ercot"})
    _send(handler, **_pw(3600, 7200) | {"id": "4cp-1"})
    ack = _send(handler, command="list", id="l1")
    assert ack["status"] == "accepted"
    assert ack["active"] == [  # in start order, then by id
        {"id": "ers-1", "command": "demand_response", "issued_by": "ercot", "state": "active",
         "start": _at(0), "end": _at(3600), "deadline": _at(600), "cap_mw": 1.5,
         "tolerance_mw": None},
        {"id": "op-1", "command": "force_curtail", "issued_by": "operator", "state": "active",
         "start": _at(0), "end": _at(600), "deadline": None, "cap_mw": 0.0,
         "tolerance_mw": None},
        {"id": "4cp-1", "command": "peak_window", "issued_by": "operator",
         "state": "scheduled", "start": _at(3600), "end": _at(7200), "deadline": None,
         "cap_mw": 0.0, "tolerance_mw": None},
    ]  # fmt: skip
    assert _send(handler, command="list", id="l2")["active"] != []  # list changes nothing
