"""Config of the drivers of real miners (``driver.type = "pyasic"`` or ``"asic-rs"``).

Credentials are ``Secret`` fields (``{ env = "HASHSPARK_..." }`` or
``{ file = "/path" }``); pyasic's defaults (root/root on stock web, root with no password
on Braiins OS+) apply when they are omitted.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from controller.runtime.config_base import Secret, Strict
from controller.runtime.config_bounds import MAX_GROUP_MINERS


class MinerDriverConfig(Strict):
    """What every driver of real miners shares: pacing, deadlines, thresholds, credentials."""

    needs_addresses: ClassVar[bool] = True  # the driver talks to miners at addresses

    concurrency: int = Field(default=200, ge=1, le=4096)  # miners talked to at once
    call_timeout_s: float = Field(default=5.0, gt=0, le=120)  # each pyasic call
    discovery_timeout_s: float = Field(default=10.0, gt=0, le=120)  # pyasic.get_miner
    confirm_timeout_s: float = Field(default=30.0, gt=0, le=600)  # command to telemetry
    confirm_poll_s: float = Field(default=1.0, gt=0, le=60)  # between read-backs
    retry_attempts: int = Field(default=3, ge=1, le=10)  # per call, transient failures only
    retry_base_s: float = Field(default=0.2, gt=0, le=10)  # full-jitter backoff base ...
    retry_cap_s: float = Field(default=2.0, gt=0, le=60)  # ... and cap
    resume_batch_size: int = Field(default=100, ge=1, le=MAX_GROUP_MINERS)  # resumed per step
    off_hashrate_fraction: float = Field(default=0.02, ge=0, lt=1)  # of nameplate: "off"
    sleep_power_fraction: float = Field(default=0.05, ge=0, lt=1)  # of nameplate: "asleep"
    resume_hashrate_fraction: float = Field(default=0.03, gt=0, lt=1)  # "climbing"
    power_tolerance_fraction: float = Field(default=0.10, gt=0, lt=1)  # throttle "near"
    antminer_web_password: Secret | None = None  # stock Antminer web UI (user root)
    braiins_password: Secret | None = None  # Braiins OS+ gRPC (user root)
    # A replay cannot reach miners: it runs this site on the in-process model, started so.
    initial_state: Literal["running", "curtailed"] = "running"

    @model_validator(mode="after")
    def _ordered(self) -> MinerDriverConfig:
        if self.retry_cap_s < self.retry_base_s:
            raise ValueError("retry_cap_s must be at least retry_base_s")
        if self.confirm_poll_s > self.confirm_timeout_s:
            raise ValueError("confirm_poll_s must not exceed confirm_timeout_s")
        return self


class PyasicDriverConfig(MinerDriverConfig):
    """Real miners through pyasic; every command is confirmed from the miner's telemetry."""

    type: Literal["pyasic"]


class AsicRsDriverConfig(MinerDriverConfig):
    """Real miners through asic-rs (``pyasic-rs``); the same deadlines and confirmation.

    ``call_timeout_s`` and ``discovery_timeout_s`` bound each asic-rs call here, as for
    pyasic; asic-rs's own identification timeout is set from ``discovery_timeout_s``.
    """

    type: Literal["asic-rs"]
