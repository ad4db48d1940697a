"""Commands into overrides, with an append-only audit log of everything received."""

from __future__ import annotations

import json
from pathlib import Path

import structlog

from adapters.control.auth import Refusal
from adapters.control.commands import (
    ActiveCommand,
    BasePoint,
    Clear,
    Command,
    CommandAck,
    CommandIntake,
    DemandResponse,
    ForceCurtail,
    ForceResume,
    ListCommands,
    PeakWindow,
)
from adapters.control.rejections import CommandStats, RejectionLimiter
from controller.decision.overrides import Override
from controller.domain import EpochS, iso, to_datetime
from controller.runtime.durable import append_lines
from controller.runtime.override_book import OverrideBook
from controller.runtime.storage import StorageHealth


def to_override(cmd: Command, now: EpochS) -> Override | None:
    """The override a command asks for (None for ``clear`` and ``list``)."""
    match cmd:
        case ForceCurtail(until=until):
            return Override(
                cmd.id, "force_curtail", now, until.timestamp(), issued_by=cmd.issued_by
            )
        case ForceResume(until=until):
            return Override(cmd.id, "force_resume", now, until.timestamp(), issued_by=cmd.issued_by)
        case DemandResponse(max_mw=max_mw, deadline=deadline, end=end, award=award):
            # Act at once: the deadline is when the grid measures, not when to start.
            return Override(
                cmd.id,
                "demand_response",
                now,
                end.timestamp(),
                max_mw,
                cmd.issued_by,
                deadline=deadline.timestamp(),
                award=award,
            )
        case PeakWindow(start=start, end=end, max_mw=max_mw):
            return Override(
                cmd.id, "peak_window", start.timestamp(), end.timestamp(), max_mw, cmd.issued_by
            )
        case BasePoint(mw=mw, tolerance_mw=tol, until=until, award=award):
            return Override(
                cmd.id,
                "base_point",
                now,
                until.timestamp(),
                mw,
                cmd.issued_by,
                tolerance_mw=tol,
                award=award,
            )
        case Clear() | ListCommands():
            return None


def listed(override: Override, now: EpochS) -> ActiveCommand:
    """An override as the answer to ``list`` shows it."""
    return ActiveCommand(
        id=override.id,
        command=override.kind,
        issued_by=override.issued_by,
        state="active" if override.active(now) else "scheduled",
        start=to_datetime(override.start),
        end=to_datetime(override.end),
        deadline=None if override.deadline is None else to_datetime(override.deadline),
        cap_mw=override.cap_mw,
        tolerance_mw=override.tolerance_mw if override.kind == "base_point" else None,
    )


class AuditLog:
    """One JSON line per command received and what became of it; flushed and fsynced.

    A write that fails (disk full, read-only) is logged and counted in ``storage``, never
    raised: the command is still applied and acknowledged.
    """

    def __init__(self, path: Path, storage: StorageHealth | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.storage = storage or StorageHealth()

    def write(self, entry: dict[str, object]) -> None:
        """Append one entry durably (a failure is logged and counted)."""
        try:
            append_lines(self.path, [json.dumps(entry, sort_keys=True, default=str)])
        except OSError as exc:
            self.storage.failed("operator_audit", exc, path=str(self.path), id=entry.get("id"))
            return
        self.storage.succeeded("operator_audit")


class CommandHandler:
    """Takes raw command payloads for one site: validate, apply, audit, acknowledge.

    Refusals past a rate are counted and summarised rather than logged, audited and
    acknowledged one by one (``adapters/control/rejections.py``).
    """

    def __init__(
        self,
        site_id: str,
        intake: CommandIntake,
        book: OverrideBook,
        audit: AuditLog,
        *,
        stats: CommandStats | None = None,
        limiter: RejectionLimiter | None = None,
    ) -> None:
        self._site = site_id
        self._intake = intake
        self._book = book
        self._audit = audit
        self.stats = stats or CommandStats()
        self._limiter = limiter or RejectionLimiter()
        self._log = structlog.get_logger("hashspark.commands").bind(site=site_id)
        self._now: EpochS = 0.0

    def _applicable(self, cmd: Command) -> str | Refusal | None:
        """Why a command cannot apply to the book as it is: a ``clear`` naming nothing, or
        naming a grid program that neither its issuer nor an operator asks to end."""
        if not isinstance(cmd, Clear):
            return None
        ids = self._book.matching(cmd.target)
        if not ids:
            return f"no active or scheduled command with id or kind {cmd.target!r}"
        book = {o.id: o for o in self._book.current(self._now)}
        for oid in ids:
            o = book.get(oid)
            if o is not None and not self._intake.auth.may_clear(
                cmd.issued_by, o.kind, o.issued_by
            ):
                return Refusal(
                    "not_permitted",
                    f"{o.kind} {oid} was issued by {o.issued_by}: only its issuer or an "
                    "operator may clear it",
                )
        return None

    def receive(self, raw: bytes, now: EpochS) -> CommandAck:
        """Handle one payload; the ack says accepted, rejected (why) or duplicate.

        The answer to ``list`` carries the active and scheduled commands, in start order.
        """
        return self._process(raw, now)[0]

    def handle(self, raw: bytes, now: EpochS) -> bytes | None:
        """``receive``, for the broker: the ack to publish, or None for a refusal past the
        rate (counted, and summarised when its burst ends)."""
        ack, detailed = self._process(raw, now)
        return ack.to_bytes() if detailed else None

    def refuse(self, code: str, now: EpochS) -> None:
        """A command the link refused before reading it (``retained``, ``overflow``)."""
        self.idle(now)
        self.stats.count(self._site, "ignored", code)
        if self._limiter.admit(now, code):
            self._log.warning("command_ignored", reason=code)
            self._audit.write(
                {"at": iso(now), "site": self._site, "status": "ignored", "reason": code}
            )

    def idle(self, now: EpochS) -> None:
        """Write the summary of a burst of refusals that has ended."""
        summary = self._limiter.due(now)
        if summary is None:
            return
        span = {"from": iso(summary.first), "to": iso(summary.last)}
        self._log.warning(
            "commands_refused_summary", count=summary.count, codes=summary.codes, **span
        )
        self._audit.write(
            {
                "at": iso(now),
                "site": self._site,
                "status": "refused_summary",
                "count": summary.count,
                "codes": summary.codes,
                **span,
            }
        )

    def _process(self, raw: bytes, now: EpochS) -> tuple[CommandAck, bool]:
        self.idle(now)
        self._now = now
        self._book.current(now)  # drops the overrides that ended: they can be neither
        # cleared nor listed
        cmd, ack = self._intake.receive(raw, now, self._applicable)
        self.stats.count(self._site, ack.status, ack.code)
        if cmd is None and not self._limiter.admit(now, ack.code or ack.status):
            return ack, False
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
            if isinstance(cmd, ListCommands):
                current = sorted(self._book.current(now), key=lambda o: (o.start, o.id))
                ack = ack.model_copy(update={"active": tuple(listed(o, now) for o in current)})
                entry["listed"] = [o.id for o in current]
            elif override is None:
                assert isinstance(cmd, Clear)
                entry["cleared"] = self._book.clear(cmd.target)
            else:
                self._book.add(override)
                entry["effective"] = {"from": iso(override.start), "to": iso(override.end)}
            self._log.info(
                "command_accepted", id=cmd.id, command=cmd.command, issued_by=cmd.issued_by
            )
        else:
            entry["code"] = ack.code
            self._log.warning(
                "command_not_applied", id=ack.id, status=ack.status, reason=ack.reason
            )
        self._audit.write(entry)
        return ack, True
