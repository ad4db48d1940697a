"""Config models of the live feeds, a discriminated union on ``type``.

``mqtt``, ``ercot``, ``chain`` and ``hashprice_index`` join ``recorded`` in the site's
``price_feed`` / ``hashprice_feed`` union. Credentials are ``controller.runtime.config_base.Secret``
fields (``{ env = "HASHSPARK_..." }`` or ``{ file = "/path" }``), never inline strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from adapters.feeds.payloads import (
    DEFAULT_HASHPRICE_BOUND,
    DEFAULT_PRICE_BOUND,
    ReadingKind,
    ValueBound,
)
from controller.runtime.config_base import Secret, Strict

HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s/$.?#][^\s]*$")]
#: MQTT topic names without wildcards (we publish to some of them).
Topic = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^#+\x00]+$")]

_B2C = "https://ercotb2c.b2clogin.com/ercotb2c.onmicrosoft.com"
ERCOT_TOKEN_URL = f"{_B2C}/B2C_1_PUBAPI-ROPC-FLOW/oauth2/v2.0/token"
ERCOT_CLIENT_ID = "fec253ea-0d06-4272-a5e6-b478baeecd70"  # ERCOT's public ROPC client, fixed


def _existing_file(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    base = (info.context or {}).get("base_dir")
    path = value if value.is_absolute() or base is None else Path(base) / value
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return path


class BackoffConfig(Strict):
    """Capped full-jitter exponential backoff between retries."""

    base_s: float = Field(default=1.0, gt=0)
    cap_s: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.cap_s < self.base_s:
            raise ValueError("cap_s must be at least base_s")
        return self


class _Bounded(Strict):
    """Plausibility bounds of a feed's values (defaults per kind) and allowed clock skew."""

    min_value: float | None = None
    max_value: float | None = None
    max_future_s: float = Field(default=300.0, ge=0, le=86_400)

    def bound(self, kind: ReadingKind) -> ValueBound:
        """The bound for ``kind``, the defaults overridden by what the config sets."""
        default = DEFAULT_PRICE_BOUND if kind is ReadingKind.PRICE else DEFAULT_HASHPRICE_BOUND
        return ValueBound(
            default.min_value if self.min_value is None else self.min_value,
            default.max_value if self.max_value is None else self.max_value,
        )

    @model_validator(mode="after")
    def _ordered_bounds(self) -> _Bounded:
        if (
            self.min_value is not None
            and self.max_value is not None
            and self.min_value >= self.max_value
        ):
            raise ValueError("min_value must be below max_value")
        return self


class MqttTlsConfig(Strict):
    """TLS to the broker: a CA to verify it (system CAs if omitted), optional client cert."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    _check_files = field_validator("ca_file", "cert_file", "key_file")(_existing_file)

    @model_validator(mode="after")
    def _pair(self) -> MqttTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttBrokerConfig(Strict):
    """One site's MQTT connection: broker, credentials, TLS, session and retry settings."""

    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65_535)
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    username: str | None = Field(default=None, min_length=1)
    password: Secret | None = None
    tls: MqttTlsConfig | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    qos: Literal[0, 1, 2] = 1
    topic_prefix: Topic = "hashspark"
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    backoff: BackoffConfig = BackoffConfig(base_s=0.5, cap_s=60.0)

    @model_validator(mode="after")
    def _password_needs_user(self) -> MqttBrokerConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password given without username")
        return self


class MqttFeedConfig(_Bounded):
    """Readings published on the site's broker (``<prefix>/<site>/price`` or ``.../hashprice``)."""

    type: Literal["mqtt"]
    broker: MqttBrokerConfig
    topic: Topic | None = None


class ErcotFeedConfig(_Bounded):
    """ERCOT public API: 15-min settlement point prices (NP6-905-CD) or SCED LMPs (NP6-788-CD)."""

    type: Literal["ercot"]
    product: Literal["spp", "lmp"] = "spp"
    settlement_point: str = Field(pattern=r"^[A-Z0-9_]{2,32}$")
    username: str = Field(min_length=1)
    password: Secret
    subscription_key: Secret
    base_url: HttpUrl = "https://api.ercot.com/api/public-reports"
    token_url: HttpUrl = ERCOT_TOKEN_URL
    client_id: str = ERCOT_CLIENT_ID
    # ERCOT allows 30 requests a minute per subscription; one poll is one request.
    interval_s: float = Field(default=60.0, ge=2.0, le=3600)
    timeout_s: float = Field(default=20.0, gt=0, le=120)
    lookback_h: float = Field(default=2.0, gt=0, le=48)
    backoff: BackoffConfig = BackoffConfig(base_s=5.0, cap_s=600.0)


class ChainFeedConfig(_Bounded):
    """Hashprice computed from chain data served by a mempool.space-style REST API."""

    type: Literal["chain"]
    base_url: HttpUrl = "https://mempool.space"
    interval_s: float = Field(default=600.0, ge=10.0, le=86_400)
    timeout_s: float = Field(default=20.0, gt=0, le=120)
    min_blocks: int = Field(default=6, ge=1, le=1000)
    backoff: BackoffConfig = BackoffConfig(base_s=5.0, cap_s=900.0)


class HashpriceIndexFeedConfig(_Bounded):
    """A published hashprice index over HTTP; JSON value and time found by dotted paths."""

    type: Literal["hashprice_index"]
    url: HttpUrl
    api_key: Secret | None = None
    api_key_header: str = Field(default="X-API-Key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    value_path: str = Field(default="usd_per_ph_day", pattern=r"^[A-Za-z0-9_.-]{1,200}$")
    time_path: str = Field(default="ts", pattern=r"^[A-Za-z0-9_.-]{1,200}$")
    source: str = Field(default="index", pattern=r"^[\x21-\x7e]{1,64}$")
    interval_s: float = Field(default=900.0, ge=10.0, le=86_400)
    timeout_s: float = Field(default=20.0, gt=0, le=120)
    backoff: BackoffConfig = BackoffConfig(base_s=5.0, cap_s=900.0)


LiveFeedConfig = Annotated[
    MqttFeedConfig | ErcotFeedConfig | ChainFeedConfig | HashpriceIndexFeedConfig,
    Field(discriminator="type"),
]

#: The discriminator values, for ``controller.config._UNION_TAGS`` (key paths skip them).
LIVE_FEED_TYPES = ("mqtt", "ercot", "chain", "hashprice_index")
