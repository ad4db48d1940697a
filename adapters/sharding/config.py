"""Config of a sharded site (``[sites.sharding]``): fleet workers over the site's MQTT broker.

Off by default: one process runs everything. With ``shards = N`` the daemon is the site's
planner and ``hashspark worker CONFIG --shard K`` (K in 0..N-1) runs each shard's miners.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from adapters.feeds.config import MqttBrokerConfig
from controller.runtime.config_base import Strict

#: Most miners one shard may hold (and so one plan or report may name).
MAX_SHARD_MINERS = 65_536


class ShardingConfig(Strict):
    """Split the site's miners into ``shards`` by address range, one worker process each."""

    shards: int = Field(ge=1, le=256)
    # Planner and workers meet here; default: the site's broker ([sites.mqtt] or a feed's).
    broker: MqttBrokerConfig | None = None
    report_timeout_s: float = Field(default=120.0, gt=0, le=3600)  # plan sent -> shard's report
    # The planner waits this long for workers at start: below the unit's TimeoutStartSec (120 s).
    startup_timeout_s: float = Field(default=60.0, ge=0, le=3600)
    plan_max_age_s: float = Field(default=60.0, gt=0, le=3600)  # workers ignore older plans
    # The planner's lease (and each shard's, between a worker and its standby): renewed every
    # lease_s / 3; a standby takes over within lease_s of the holder's death (lease.py).
    lease_s: float = Field(default=15.0, ge=1.0, le=600.0)
    # A worker that hears no live planner (no plan, no lease renewal) this long applies the
    # site's fail-safe action to its miners itself. Above lease_s, so a standby planner
    # takes over before the fail-safe fires.
    planner_silence_s: float = Field(default=60.0, ge=2.0, le=3600.0)

    @model_validator(mode="after")
    def _silence_outlasts_the_lease(self) -> Self:
        if self.planner_silence_s <= self.lease_s:
            raise ValueError(
                f"planner_silence_s ({self.planner_silence_s:g}) must exceed lease_s"
                f" ({self.lease_s:g}): a standby planner takes over within lease_s"
            )
        return self
