"""Operator and grid commands (MQTT ``<prefix>/<site>/command``, or the CLI): models, bounds, acks.

Over 300 lines: the wire format of every command kind, its bounds and its ack are one
contract with the operators' tools, and read best side by side.

Every command is JSON with ``command`` (the kind) and a unique ``id``; every one ends by
itself: no command holds the site for longer than ``CommandLimits.max_hold_s`` from now.

| command | fields | meaning |
|---|---|---|
| ``force_curtail`` | ``until`` | curtail everything until then |
| ``force_resume`` | ``until`` | run regardless of economics until then (fail-safes still apply) |
| ``demand_response`` | ``max_mw``, ``deadline``, ``end`` | at most ``max_mw`` by ``deadline``, |
|  |  | held until ``end``, then released under the ramp limit |
| ``peak_window`` | ``start``, ``end``, ``max_mw`` | a 4CP peak alert: at most ``max_mw`` |
|  |  | (default 0) within the window |
| ``base_point`` | ``mw``, ``tolerance_mw``, ``until`` | follow a base point: draw ``mw`` |
|  |  | within the tolerance (controllable load) |
| ``clear`` | ``target`` | end the command with that id, or every command of that kind |
|  |  | (e.g. ``force_curtail``); a target matching nothing is rejected |
| ``list`` | | change nothing: the ack carries the active and scheduled commands |

Optional on all: ``issued_by`` (who, for the audit log), ``reason`` and ``issued_at`` (when
it was issued: outside the replay window it is refused; required on signed commands). Each
command is answered on ``<prefix>/<site>/command/ack`` with ``accepted``, ``rejected`` (with
the reason and a short ``code``) or ``duplicate`` (an id seen before: QoS 1 may deliver
twice). An id may not be a command kind, so that a ``clear`` target is never ambiguous. A
site with issuers takes only signed commands (``adapters/control/auth.py``).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from adapters.control.auth import UNSIGNED, CommandAuth, Refusal
from controller.decision.overrides import OVERRIDE_KINDS
from controller.domain import EpochS, to_datetime

MAX_COMMAND_BYTES = 4096
_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
_PRINTABLE = r"^[\x20-\x7e]{0,200}$"
#: Every ``command`` value; none of them may be used as an id.
COMMAND_KINDS: frozenset[str] = frozenset(OVERRIDE_KINDS) | {"clear", "list"}


class _Command(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    issued_by: str = Field(default="operator", min_length=1, max_length=64, pattern=_PRINTABLE)
    reason: str = Field(default="", max_length=200, pattern=_PRINTABLE)
    issued_at: AwareDatetime | None = None

    @field_validator("id")
    @classmethod
    def _not_a_kind(cls, value: str) -> str:
        if value in COMMAND_KINDS:
            raise ValueError(f"{value!r} is a command kind, not an id (clear targets name either)")
        return value


class ForceCurtail(_Command):
    """Curtail the whole site until ``until``."""

    command: Literal["force_curtail"]
    until: AwareDatetime


class ForceResume(_Command):
    """Run the whole site until ``until``, whatever the economics say."""

    command: Literal["force_resume"]
    until: AwareDatetime


class DemandResponse(_Command):
    """Be at or below ``max_mw`` by ``deadline``, hold until ``end``, then ramp back."""

    command: Literal["demand_response"]
    max_mw: float = Field(ge=0, allow_inf_nan=False)
    deadline: AwareDatetime
    end: AwareDatetime
    award: str | None = Field(default=None, pattern=_ID)  # the capacity award deployed


class PeakWindow(_Command):
    """A 4CP peak alert: stay at or under ``max_mw`` (default 0: fully off) in the window."""

    command: Literal["peak_window"]
    start: AwareDatetime
    end: AwareDatetime
    max_mw: float = Field(default=0.0, ge=0, allow_inf_nan=False)


class BasePoint(_Command):
    """Follow a base point (controllable load): draw ``mw`` within ``tolerance_mw``."""

    command: Literal["base_point"]
    mw: float = Field(ge=0, allow_inf_nan=False)
    tolerance_mw: float = Field(ge=0, allow_inf_nan=False)
    until: AwareDatetime
    award: str | None = Field(default=None, pattern=_ID)  # the capacity award deployed


class Clear(_Command):
    """End the command with id ``target``, or every command of kind ``target``.

    The target is required: a bare ``clear`` used to end every command, grid programs
    included, which no operator means when tidying up their own ``force_curtail``.
    """

    command: Literal["clear"]
    target: str = Field(pattern=_ID)


class ListCommands(_Command):
    """Change nothing; the ack lists the active and scheduled commands."""

    command: Literal["list"]


Command = Annotated[
    ForceCurtail | ForceResume | DemandResponse | PeakWindow | BasePoint | Clear | ListCommands,
    Field(discriminator="command"),
]
_COMMAND: TypeAdapter[Command] = TypeAdapter(Command)


@dataclass(frozen=True, slots=True)
class CommandLimits:
    """Bounds every command must respect (per site)."""

    max_hold_s: float = 24 * 3600.0  # no command lasts longer than this from now
    max_lead_s: float = 48 * 3600.0  # a peak window may be announced this far ahead
    max_mw: float = float("inf")  # the site's nominal power: a DR cap above it is a typo
    clock_skew_s: float = 60.0  # a deadline this far in the past is still "now"


class ActiveCommand(BaseModel):
    """One command in force or scheduled, as the ``list`` ack shows it."""

    model_config = ConfigDict(frozen=True)

    id: str
    command: str  # the kind: force_curtail, demand_response, ...
    issued_by: str
    state: Literal["active", "scheduled"]
    start: datetime  # from when it applies
    end: datetime  # when it expires by itself
    deadline: datetime | None = None  # demand response: when the cap must be met
    cap_mw: float | None = None  # the site power cap, or a base point's target
    tolerance_mw: float | None = None  # base point only


class CommandAck(BaseModel):
    """The reply published for every command received."""

    model_config = ConfigDict(frozen=True)

    id: str | None
    command: str | None
    status: Literal["accepted", "rejected", "duplicate"]
    reason: str | None = None
    code: str | None = None  # a rejection's short reason: malformed, bounds, bad_signature...
    site: str
    received_at: datetime
    active: tuple[ActiveCommand, ...] | None = None  # the answer to ``list``, only

    def to_bytes(self) -> bytes:
        """The JSON published on the ack topic (``active`` only in the answer to ``list``)."""
        exclude = {"active"} if self.active is None else None
        return self.model_dump_json(exclude_none=False, exclude=exclude).encode()


def _conditions(cmd: Command, now: EpochS, limits: CommandLimits) -> list[tuple[bool, str]]:
    """(violated?, why) for each bound that applies to ``cmd``."""
    horizon = now + limits.max_hold_s
    hold = f"{limits.max_hold_s:g} s"
    match cmd:
        case BasePoint(mw=mw, until=until):
            return [
                (mw > limits.max_mw, f"mw {mw:g} exceeds the site's {limits.max_mw:g}"),
                (until.timestamp() <= now, "until is in the past"),
                (until.timestamp() > horizon, f"until is more than {hold} ahead"),
            ]
        case ForceCurtail(until=until) | ForceResume(until=until):
            return [
                (until.timestamp() <= now, "until is in the past"),
                (until.timestamp() > horizon, f"until is more than {hold} ahead"),
            ]
        case DemandResponse(max_mw=max_mw, deadline=deadline, end=end):
            return [
                (max_mw > limits.max_mw, f"max_mw {max_mw:g} exceeds the site's {limits.max_mw:g}"),
                (deadline.timestamp() < now - limits.clock_skew_s, "deadline is in the past"),
                (end <= deadline, "end must be after deadline"),
                (end.timestamp() > horizon, f"end is more than {hold} ahead"),
            ]
        case PeakWindow(start=start, end=end, max_mw=max_mw):
            return [
                (max_mw > limits.max_mw, f"max_mw {max_mw:g} exceeds the site's {limits.max_mw:g}"),
                (end <= start, "end must be after start"),
                (end.timestamp() <= now, "window is over"),
                (
                    start.timestamp() > now + limits.max_lead_s,
                    f"start is more than {limits.max_lead_s:g} s ahead",
                ),
                (
                    (end - start).total_seconds() > limits.max_hold_s,
                    f"window is longer than {hold}",
                ),
            ]
        case Clear() | ListCommands():
            return []


def check_bounds(cmd: Command, now: EpochS, limits: CommandLimits) -> str | None:
    """Why ``cmd`` is out of bounds at ``now``, or None if it is acceptable."""
    return next((why for violated, why in _conditions(cmd, now, limits) if violated), None)


def _best_effort_id(raw: bytes) -> tuple[str | None, str | None]:
    """The id and kind of an invalid command, when they can be read, for the ack."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None, None
    if isinstance(doc, dict) and isinstance(doc.get("signed"), str):  # a signed envelope
        try:
            doc = json.loads(doc["signed"])
        except (ValueError, RecursionError):
            return None, None
    if not isinstance(doc, dict):
        return None, None
    cid, kind = doc.get("id"), doc.get("command")
    ok_id = cid if isinstance(cid, str) and len(cid) <= 64 else None
    ok_kind = kind if isinstance(kind, str) and len(kind) <= 32 else None
    return ok_id, ok_kind


class CommandIntake:
    """Parses, authenticates, bounds and de-duplicates commands for one site; every call
    yields an ack."""

    def __init__(
        self,
        site: str,
        limits: CommandLimits,
        *,
        remember: int = 1024,
        auth: CommandAuth = UNSIGNED,
    ) -> None:
        self.site = site
        self.limits = limits
        self.auth = auth
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        # Ids of accepted signed commands, until their replay window has passed: a replay
        # within the window is a duplicate however many commands came since.
        self._signed: dict[str, float] = {}
        self.accepted = 0
        self.rejected = 0
        self.duplicates = 0

    def remember(self, ids: list[str]) -> None:
        """Treat ``ids`` as seen (commands restored after a restart): a redelivery of one is
        a duplicate, not applied again."""
        for cid in ids:
            self._seen[cid] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)

    def receive(
        self,
        raw: bytes,
        now: EpochS,
        applicable: Callable[[Command], str | Refusal | None] | None = None,
    ) -> tuple[Command | None, CommandAck]:
        """The command to apply (None if rejected or a duplicate) and the ack to publish.

        ``applicable`` says why a well-formed command cannot apply to the site as it is
        (a ``clear`` naming nothing active, or a grid program its issuer may not clear), or
        None; it is asked after the bounds.
        """
        received_at = to_datetime(now)
        parsed = self._parse(raw)
        if isinstance(parsed, Refusal):
            return None, self._reject(raw, parsed, received_at)
        cmd, body, signer = parsed
        self._forget_expired(now)
        problem = self._replay(cmd, now, signed=signer is not None)
        if problem is not None:  # before the ids: an id is remembered only for the window
            return None, self._reject(body, problem, received_at)
        if cmd.id in self._seen or cmd.id in self._signed:
            self.duplicates += 1
            return None, CommandAck(
                id=cmd.id,
                command=cmd.command,
                status="duplicate",
                site=self.site,
                received_at=received_at,
            )
        bound = check_bounds(cmd, now, self.limits)
        problem = None if bound is None else Refusal("bounds", bound)
        if problem is None and applicable is not None:
            why = applicable(cmd)
            problem = Refusal("not_applicable", why) if isinstance(why, str) else why
        if problem is not None:
            return None, self._reject(body, problem, received_at)
        self._seen[cmd.id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        if signer is not None:
            self._signed[cmd.id] = now + 2 * self.auth.replay_window_s
        self.accepted += 1
        ack = CommandAck(
            id=cmd.id,
            command=cmd.command,
            status="accepted",
            site=self.site,
            received_at=received_at,
        )
        return cmd, ack

    def _parse(self, raw: bytes) -> tuple[Command, bytes, str | None] | Refusal:
        """The command, its JSON text and who signed it (None: unsigned), or why not."""
        if len(raw) > MAX_COMMAND_BYTES:
            return Refusal("too_large", f"command of {len(raw)} bytes is too large")
        body, signer = raw, None
        if self.auth.required:
            opened = self.auth.open(raw)
            if isinstance(opened, Refusal):
                return opened
            body, signer = opened.raw, opened.issuer
        try:
            cmd = _COMMAND.validate_json(body)
        except ValidationError as exc:
            err = exc.errors(include_input=False, include_url=False)[0]
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            return Refusal("malformed", f"{loc}: {err['msg']}")
        except ValueError as exc:
            return Refusal("malformed", str(exc))
        if signer is not None and cmd.issued_by != signer:
            return Refusal("bad_signature", "issued_by is not the issuer that signed")
        return cmd, body, signer

    def _replay(self, cmd: Command, now: EpochS, *, signed: bool) -> Refusal | None:
        """Why ``cmd`` falls outside the replay window (signed commands must say when)."""
        if cmd.issued_at is None:
            return Refusal("replay", "a signed command carries issued_at") if signed else None
        window = self.auth.replay_window_s
        if abs(cmd.issued_at.timestamp() - now) > window:
            return Refusal("replay", f"issued_at is outside the replay window of {window:g} s")
        return None

    def _forget_expired(self, now: EpochS) -> None:
        if self._signed and next(iter(self._signed.values())) <= now:
            self._signed = {cid: t for cid, t in self._signed.items() if t > now}

    def _reject(self, raw: bytes, refusal: Refusal, received_at: datetime) -> CommandAck:
        self.rejected += 1
        cid, kind = _best_effort_id(raw[:MAX_COMMAND_BYTES])
        return CommandAck(
            id=cid,
            command=kind,
            status="rejected",
            reason=refusal.reason,
            code=refusal.code,
            site=self.site,
            received_at=received_at,
        )
