"""Commands into overrides, with an append-only audit log of everything received."""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog

from adapters.control.commands import (
    BasePoint,
    Clear,
    Command,
    CommandAck,
    CommandIntake,
    DemandResponse,
    ForceCurtail,
    ForceResume,
    PeakWindow,
)
from controller.decision.overrides import Override
from controller.domain import EpochS, iso
from controller.runtime.override_book import OverrideBook


def to_override(cmd: Command, now: EpochS) -> Override | None:
    """The override a command asks for (None for ``clear``)."""
    match cmd:
        case ForceCurtail(until=until):
            return Override(
                cmd.id, "force_curtail", now, until.timestamp(), issued_by=cmd.issued_by
            )
        case ForceResume(until=until):
            return Override(cmd.id, "force_resume", now, until.timestamp(), issued_by=cmd.issued_by)
        case DemandResponse(max_mw=max_mw, deadline=deadline, end=end):
            # Act at once: the deadline is when the grid measures, not when to start.
            return Override(
                cmd.id,
                "demand_response",
                now,
                end.timestamp(),
                max_mw,
                cmd.issued_by,
                deadline=deadline.timestamp(),
            )
        case PeakWindow(start=start, end=end, max_mw=max_mw):
            return Override(
                cmd.id, "peak_window", start.timestamp(), end.timestamp(), max_mw, cmd.issued_by
            )
        case BasePoint(mw=mw, tolerance_mw=tol, until=until):
            return Override(
                cmd.id, "base_point", now, until.timestamp(), mw, cmd.issued_by, tolerance_mw=tol
            )
        case Clear():
            return None


class AuditLog:
    """One JSON line per command received and what became of it; flushed and fsynced."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def write(self, entry: dict[str, object]) -> None:
        """Append one entry durably."""
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


class CommandHandler:
    """Takes raw command payloads for one site: validate, apply, audit, acknowledge."""

    def __init__(
        self, site_id: str, intake: CommandIntake, book: OverrideBook, audit: AuditLog
    ) -> None:
        self._site = site_id
        self._intake = intake
        self._book = book
        self._audit = audit
        self._log = structlog.get_logger("hashspark.commands").bind(site=site_id)

    def receive(self, raw: bytes, now: EpochS) -> CommandAck:
        """Handle one payload; the ack says accepted, rejected (why) or duplicate."""
        cmd, ack = self._intake.receive(raw, now)
        entry: dict[str, object] = {
            "at": iso(now),
            "site": self._site,
            "status": ack.status,
            "id": ack.id,
            "command": ack.command,
            "reason": ack.reason,
        }
        if cmd is not None:
            entry["payload"] = cmd.model_dump(mode="json")
            override = to_override(cmd, now)
            if override is None:
                assert isinstance(cmd, Clear)
                entry["cleared"] = self._book.clear(cmd.target)
            else:
                self._book.add(override)
                entry["effective"] = {"from": iso(override.start), "to": iso(override.end)}
            self._log.info(
                "command_accepted", id=cmd.id, command=cmd.command, issued_by=cmd.issued_by
            )
        else:
            self._log.warning(
                "command_not_applied", id=ack.id, status=ack.status, reason=ack.reason
            )
        self._audit.write(entry)
        return ack
