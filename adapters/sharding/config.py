"""Config of a sharded site (``[sites.sharding]``): fleet workers over the site's MQTT broker.

Off by default: one process runs everything. With ``shards = N`` the daemon is the site's
planner and ``hashspark worker CONFIG --shard K`` (K in 0..N-1) runs each shard's miners.
"""

from __future__ import annotations

from pydantic import Field

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
