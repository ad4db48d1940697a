"""What feed configs share: value bounds, backoff, the MQTT broker connection, URL and topic types.

Each feed's own config model lives with its adapter module and registers there
(``adapters/feeds/registry.py``); the site's ``price_feed`` / ``hashprice_feed`` union is
derived from the registry. Credentials are ``controller.runtime.config_base.Secret``
fields (``{ env = "HASHSPARK_..." }`` or ``{ file = "/path" }``), never inline strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from adapters.feeds.payloads import ReadingKind, ValueBound, default_bound
from controller.runtime.config_base import Secret, Strict
from controller.runtime.config_bounds import MAX_BACKOFF_S, MAX_READING_ABS
from controller.runtime.redact import register_url

#: Credentials a URL carries (userinfo, ``?api_key=``) are registered as secrets: every log
#: line and message shows the URL redacted (``controller/runtime/redact.py``).
HttpUrl = Annotated[
    str,
    Field(max_length=2048, pattern=r"^https?://[^\s/$.?#][^\s]*$"),
    AfterValidator(register_url),
]
#: MQTT topic names without wildcards (we publish to some of them).
Topic = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^#+\x00]+$")]


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

    base_s: float = Field(default=1.0, gt=0, le=MAX_BACKOFF_S)
    cap_s: float = Field(default=300.0, gt=0, le=MAX_BACKOFF_S)

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.cap_s < self.base_s:
            raise ValueError("cap_s must be at least base_s")
        return self


class BoundedFeedConfig(Strict):
    """Plausibility bounds of a feed's values (defaults per kind) and allowed clock skew."""

    min_value: float | None = Field(default=None, ge=-MAX_READING_ABS, le=MAX_READING_ABS)
    max_value: float | None = Field(default=None, ge=-MAX_READING_ABS, le=MAX_READING_ABS)
    max_future_s: float = Field(default=300.0, ge=0, le=86_400)

    def bound(self, kind: ReadingKind) -> ValueBound:
        """The bound for ``kind``, the defaults overridden by what the config sets."""
        default = default_bound(kind)
        return ValueBound(
            default.min_value if self.min_value is None else self.min_value,
            default.max_value if self.max_value is None else self.max_value,
        )

    @model_validator(mode="after")
    def _ordered_bounds(self) -> BoundedFeedConfig:
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

    # A name or an address: no scheme, path or ``user:pass@`` (credentials would be logged).
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=1883, ge=1, le=65_535)
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    username: str | None = Field(default=None, min_length=1, max_length=256)
    password: Secret | None = None
    tls: MqttTlsConfig | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    qos: Literal[0, 1, 2] = 1
    topic_prefix: Topic = "hashspark"
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    backoff: BackoffConfig = BackoffConfig(base_s=0.5, cap_s=60.0)

    @field_validator("host")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        if (
            any(c in value for c in "@/")
            or not value.isprintable()
            or any(c.isspace() for c in value)
        ):
            raise ValueError(
                "a host name or address, not a URL: no scheme, path or user:pass@ "
                "(credentials go in username and password)"
            )
        return value

    @model_validator(mode="after")
    def _password_needs_user(self) -> MqttBrokerConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password given without username")
        return self
