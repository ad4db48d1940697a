"""The fleet file (TOML): groups of miners, faults, meter port and speed, parsed strictly."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from controller.runtime.config_base import ConfigError
from controller.runtime.config_file import read_toml
from simulators.miners.faults import Fault, FaultKind
from simulators.miners.fleet import MinerSpec, consecutive_ips
from simulators.miners.meter import DEFAULT_METER_PORT
from simulators.miners.miner import Family
from simulators.miners.models import MODELS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GroupConfig(_Strict):
    """Miners of one family and model on consecutive addresses."""

    family: Family
    model: str = "S19jPro"
    count: int = Field(ge=1, le=60_000)
    ip_start: str

    @model_validator(mode="after")
    def _known_model_and_range(self) -> GroupConfig:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(sorted(MODELS))}")
        consecutive_ips(self.ip_start, self.count)  # raises if it is not loopback
        return self


class FaultConfig(_Strict):
    """A fault for named miners and/or a seeded random fraction of the fleet."""

    kind: FaultKind
    miners: tuple[str, ...] = ()
    fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int = 0
    latency_s: float = Field(default=2.0, ge=0)
    reboot_s: float = Field(default=60.0, ge=0)
    drift_after_s: float = Field(default=60.0, ge=0)

    def fault(self) -> Fault:
        """The fault value."""
        return Fault(self.kind, self.latency_s, self.reboot_s, self.drift_after_s)


class FleetConfig(_Strict):
    """A whole fleet file."""

    meter_port: int = Field(default=DEFAULT_METER_PORT, ge=0, le=65535)
    speed: float = Field(default=1.0, gt=0)
    seed: int = 0
    group: tuple[GroupConfig, ...] = Field(min_length=1)
    fault: tuple[FaultConfig, ...] = ()

    @model_validator(mode="after")
    def _addresses_unique_and_known(self) -> FleetConfig:
        seen: set[str] = set()
        for spec in self.specs():
            if spec.ip in seen:
                raise ValueError(f"groups overlap at {spec.ip}")
            seen.add(spec.ip)
        for i, fault in enumerate(self.fault):
            unknown = [ip for ip in fault.miners if ip not in seen]
            if unknown:
                raise ValueError(f"fault {i} names addresses outside the fleet: {unknown}")
        return self

    def specs(self) -> list[MinerSpec]:
        """One spec per miner, in file order."""
        out: list[MinerSpec] = []
        for g in self.group:
            out += [MinerSpec(ip, g.family, g.model) for ip in consecutive_ips(g.ip_start, g.count)]
        return out


class FleetFileError(ValueError):
    """The fleet file cannot be used; the message names the key path and the reason."""


def load_fleet_file(path: Path) -> FleetConfig:
    """Parse and validate a fleet file."""
    try:
        _, raw = read_toml(path)  # a FIFO, /dev/zero, 4 GB or deep nesting: refused
    except ConfigError as exc:
        raise FleetFileError("; ".join(exc.messages)) from None
    try:
        return FleetConfig.model_validate(raw)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise FleetFileError(f"{path}: {reasons}") from None
