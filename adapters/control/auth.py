"""Who may command a site: HMAC-signed commands from configured issuers, a replay window.

A site that configures issuers (``[sites.commands.issuers.<name>]``, each a key and a role)
takes only signed commands. A signed command is an envelope around the command's JSON text:

    {"signed": "<the command as JSON text>", "hmac_sha256": "<64 hex digits>"}

The HMAC (SHA-256) is over the UTF-8 bytes of ``signed`` exactly as sent, with the key of the
issuer the command names in ``issued_by``; so no canonical JSON is needed, and a client in
any language signs the bytes it publishes. The command must carry ``issued_at`` (ISO 8601
with an offset) within ``replay_window_s`` of the daemon's clock, and an id not used by the
same site within the window (a replayed envelope is a ``duplicate``, never applied twice).

The issuer's role says what it may clear: an ``operator`` may clear any command; a ``grid``
issuer only what it issued itself (and ``force_curtail``/``force_resume``).

Without issuers the site takes unsigned commands, as before: ``issued_by`` is then only a
claim, and the names ``operator`` and ``cli`` (the field's and the CLI's defaults) hold the
operator role. ``check-config`` warns that such a site's commands are unauthenticated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from controller.runtime.config_base import Secret, Strict

Role = Literal["operator", "grid"]
#: The kinds only their issuer or an operator may clear.
GRID_PROGRAM_KINDS = frozenset({"demand_response", "peak_window", "base_point"})
#: Unsigned commands: the claimed names that hold the operator role.
UNSIGNED_OPERATORS = frozenset({"operator", "cli"})
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class IssuerConfig(Strict):
    """One issuer of commands: its HMAC key and its role."""

    key: Secret
    role: Role = "grid"


class CommandAuthConfig(Strict):
    """Issuers whose signed commands a site takes (none: unsigned commands, unauthenticated)."""

    issuers: dict[str, IssuerConfig] = Field(default_factory=dict)
    replay_window_s: float = Field(default=300.0, gt=0, le=3600)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command was refused: a short code (a metric label) and the reason (the ack)."""

    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Verified:
    """The command's JSON text and the issuer that signed it."""

    raw: bytes
    issuer: str


def sign(command_json: str, key: str) -> bytes:
    """The envelope of ``command_json`` signed with ``key`` (what ``hashspark command`` sends)."""
    mac = hmac.new(key.encode(), command_json.encode(), hashlib.sha256).hexdigest()
    return json.dumps({"signed": command_json, "hmac_sha256": mac}).encode()


class CommandAuth:
    """The site's issuers and keys; verifies envelopes (cheaply: one JSON parse, one HMAC)."""

    def __init__(self, issuers: dict[str, tuple[bytes, Role]], replay_window_s: float) -> None:
        self._issuers = dict(issuers)
        self.replay_window_s = replay_window_s

    @classmethod
    def from_config(cls, config: CommandAuthConfig) -> CommandAuth:
        """From the site's ``[sites.commands]`` table."""
        return cls(
            {n: (i.key.get_secret_value().encode(), i.role) for n, i in config.issuers.items()},
            config.replay_window_s,
        )

    @property
    def required(self) -> bool:
        """Whether commands must be signed (issuers are configured)."""
        return bool(self._issuers)

    def role(self, issuer: str) -> Role:
        """The role of a verified issuer, or of a claimed name when signing is off."""
        if self.required:
            return self._issuers[issuer][1] if issuer in self._issuers else "grid"
        return "operator" if issuer in UNSIGNED_OPERATORS else "grid"

    def open(self, raw: bytes) -> Verified | Refusal:
        """The signed command inside ``raw`` and its issuer, or why it is refused."""
        envelope = _envelope(raw)
        if isinstance(envelope, Refusal):
            return envelope
        signed, mac = envelope
        try:
            inner = json.loads(signed)
        except (ValueError, RecursionError):
            return Refusal("malformed", "signed is not JSON")
        issuer = inner.get("issued_by") if isinstance(inner, dict) else None
        if not isinstance(issuer, str) or issuer not in self._issuers:
            return Refusal("unknown_issuer", "issued_by names no configured issuer")
        body = signed.encode()
        expected = hmac.new(self._issuers[issuer][0], body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, mac.lower()):
            return Refusal("bad_signature", f"signature does not verify for issuer {issuer}")
        return Verified(body, issuer)

    def may_clear(self, issuer: str, kind: str, issued_by: str) -> bool:
        """Whether ``issuer`` may clear a command of ``kind`` that ``issued_by`` issued."""
        if kind not in GRID_PROGRAM_KINDS or issuer == issued_by:
            return True
        return self.role(issuer) == "operator"


def _envelope(raw: bytes) -> tuple[str, str] | Refusal:
    """``signed`` and ``hmac_sha256`` of an envelope, or why it is not one."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return Refusal("malformed", "not JSON")
    if not isinstance(doc, dict):
        return Refusal("malformed", "a command is a JSON object")
    if "signed" not in doc:
        return Refusal("unsigned", "this site takes only signed commands")
    signed, mac = doc.get("signed"), doc.get("hmac_sha256")
    if set(doc) != {"signed", "hmac_sha256"} or not isinstance(signed, str):
        return Refusal("malformed", "a signed command is {signed, hmac_sha256} only")
    if not isinstance(mac, str) or _HEX64.fullmatch(mac) is None:
        return Refusal("bad_signature", "hmac_sha256 is not 64 hex digits")
    return signed, mac


#: Signing off, claimed issuers: what a site without ``[sites.commands.issuers]`` uses.
UNSIGNED = CommandAuth({}, 300.0)
