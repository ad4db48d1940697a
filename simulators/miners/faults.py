"""Fault modes a simulated miner can be given, parsed strictly from fleet files and the API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum


class FaultKind(StrEnum):
    """How a miner misbehaves."""

    UNREACHABLE = "unreachable"  # nothing listens: connections are refused
    SLOW = "slow"  # every reply is delayed by ``latency_s`` (wall time)
    SILENT = "silent"  # connections are accepted and never answered
    LIAR = "liar"  # commands are acknowledged and not carried out
    REJECT = "reject"  # commands are refused with the firmware's error reply
    REBOOT = "reboot"  # the miner reboots now: unreachable for ``reboot_s``, then mining
    DRIFT = "drift"  # a sleeping miner resumes by itself after ``drift_after_s``
    BOGUS_POWER = "bogus_power"  # reports ``reported_w`` (e.g. negative) as its wattage


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault and its parameters (only the ones its kind uses matter)."""

    kind: FaultKind
    latency_s: float = 2.0
    reboot_s: float = 60.0
    drift_after_s: float = 60.0
    reported_w: float = -5.0

    def to_json(self) -> dict[str, object]:
        """The fault as the meter API shows it."""
        out: dict[str, object] = {"kind": self.kind.value}
        if self.kind is FaultKind.SLOW:
            out["latency_s"] = self.latency_s
        elif self.kind is FaultKind.REBOOT:
            out["reboot_s"] = self.reboot_s
        elif self.kind is FaultKind.DRIFT:
            out["drift_after_s"] = self.drift_after_s
        elif self.kind is FaultKind.BOGUS_POWER:
            out["reported_w"] = self.reported_w
        return out


_FIELDS = {f.name for f in fields(Fault)}


def parse_fault(raw: Mapping[str, object]) -> Fault:
    """A fault from a mapping like ``{"kind": "slow", "latency_s": 5}``; unknown keys fail."""
    unknown = set(raw) - _FIELDS
    if unknown:
        raise ValueError(f"unknown fault keys {sorted(unknown)}; known: {sorted(_FIELDS)}")
    kind_raw = raw.get("kind")
    try:
        kind = FaultKind(str(kind_raw))
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise ValueError(f"unknown fault kind {kind_raw!r}; known: {known}") from None
    params: dict[str, float] = {}
    for name in ("latency_s", "reboot_s", "drift_after_s"):
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"fault {name} must be a number >= 0, got {value!r}")
            params[name] = float(value)
    if "reported_w" in raw:  # any number, NaN and infinities too: the point is nonsense
        value = raw["reported_w"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"fault reported_w must be a number, got {value!r}")
        params["reported_w"] = float(value)
    return Fault(kind=kind, **params)
