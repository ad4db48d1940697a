"""``[central]``: where ``hashspark ledger ship`` copies the site's books, and how often."""

from __future__ import annotations

from pydantic import Field

from controller.runtime.config_base import Secret, Strict

#: The environment variable ``ledger summary|export --central`` and ``ledger ship`` read the
#: connection string from when no config file with ``[central]`` is given.
CENTRAL_DSN_ENV = "HASHSPARK_CENTRAL_DSN"


class CentralConfig(Strict):
    """The central PostgreSQL ledger: its connection string (a secret) and shipping pace."""

    # A libpq connection string (postgresql://user:password@host:port/db, or key=value
    # pairs), given as { env = "HASHSPARK_..." } or { file = "/path" } like every secret.
    dsn: Secret
    # Seconds between looks at the local ledger for intervals not yet shipped.
    ship_interval_s: float = Field(default=10.0, ge=0.1, le=3600.0)
    # The longest wait between attempts while the central database is unreachable
    # (capped exponential backoff with full jitter from 1 s).
    retry_cap_s: float = Field(default=60.0, ge=1.0, le=3600.0)
    # Intervals per transaction: a batch is acknowledged (and the watermark moved) whole.
    batch_size: int = Field(default=500, ge=1, le=100_000)
