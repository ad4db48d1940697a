"""A whole config file: the top-level model, loading, and one-line messages with key paths."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator

from controller.config.adapters import union_tags
from controller.config.central import CentralConfig
from controller.config.contracts import unique
from controller.config.scenario import CompareConfig, ScenarioConfig
from controller.config.site import SiteConfig
from controller.runtime.config_base import ConfigError, NonEmpty, Strict
from controller.runtime.config_bounds import (
    MAX_CYCLE_S,
    MAX_CYCLE_TIMEOUT_S,
    MAX_SITES,
    MIN_CYCLE_S,
)
from controller.runtime.config_file import read_toml
from controller.runtime.redact import scrub_value
from controller.runtime.site_loop import DEFAULT_MAX_UNWRITTEN

_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _bind_host(value: str) -> str:
    """An address to listen on, written out: an IP address or a host name, never empty
    (an empty host binds every interface, IPv4 and IPv6, without saying so)."""
    if not value:
        raise ValueError(
            "empty: it would listen on every interface; write the address "
            '("127.0.0.1", or "0.0.0.0" to open it to every IPv4 interface)'
        )
    try:
        ipaddress.ip_address(value)
    except ValueError:
        labels = value.removesuffix(".").split(".")
        if len(value) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
            raise ValueError(f"{value!r} is neither an IP address nor a host name") from None
    return value


BindHost = Annotated[str, AfterValidator(_bind_host)]


class DaemonConfig(Strict):
    """Process-wide settings."""

    cycle_s: float = Field(default=15.0, ge=MIN_CYCLE_S, le=MAX_CYCLE_S)
    state_dir: Path = Path("/var/lib/hashspark")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_host: BindHost = "127.0.0.1"  # loopback unless the operator opens it up
    metrics_port: int = Field(default=9108, ge=0, le=65535)  # 0: any free port
    ledger_sync: Literal["full", "normal"] = "full"  # normal: survives kill -9, not power loss
    on_shutdown: Literal["keep", "curtail", "run"] = "keep"  # where SIGTERM leaves the miners
    # A cycle running longer is stuck (the watchdog is withheld).
    cycle_timeout_s: float = Field(default=120.0, gt=0, le=MAX_CYCLE_TIMEOUT_S)
    # Settled intervals held in memory while the ledger cannot take them (disk full,
    # read-only), written in order when it can; beyond this, newer ones are dropped (counted).
    ledger_max_unwritten: int = Field(default=DEFAULT_MAX_UNWRITTEN, ge=1, le=1_000_000)


class HashsparkConfig(Strict):
    """A whole config file: daemon settings, optional scenario, and the sites."""

    daemon: DaemonConfig = DaemonConfig()
    central: CentralConfig | None = None  # the central ledger `hashspark ledger ship` feeds
    scenario: ScenarioConfig | None = None
    compare: CompareConfig | None = None
    sites: Annotated[tuple[SiteConfig, ...], NonEmpty, Field(max_length=MAX_SITES)]

    @model_validator(mode="after")
    def _unique_sites(self) -> HashsparkConfig:
        unique("site ids", [s.id for s in self.sites])
        return self

    @model_validator(mode="after")
    def _awards_exist(self) -> HashsparkConfig:
        """A grid event deploys a capacity award some site holds."""
        awards = set().union(*(s.award_ids() for s in self.sites))
        for k, event in enumerate(self.scenario.events if self.scenario else ()):
            if event.award is not None and event.award not in awards:
                known = ", ".join(sorted(awards)) or "none"
                raise ValueError(
                    f"scenario.events[{k}].award {event.award!r} names no capacity award "
                    f"(known: {known})"
                )
        return self


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config with where it came from and a version for the ledger."""

    config: HashsparkConfig
    path: Path
    version: str


def format_loc(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a key path: ``sites[0].miners[1].count``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in union_tags():
            continue  # the discriminator value pydantic inserts; the key path is clearer without
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _errors(path: Path, exc: ValidationError, prefix: str = "") -> ConfigError:
    return ConfigError(
        [f"{path}: {prefix}{format_loc(e['loc'])}: {_message(e)}" for e in exc.errors()]
    )


def load_config(path: Path | str) -> LoadedConfig:
    """Read, parse and validate a config file; every problem is reported at once."""
    path = Path(path)
    raw, data = read_toml(path)
    try:
        config = HashsparkConfig.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise _errors(path, exc) from None
    return LoadedConfig(config=config, path=path, version=hashlib.sha256(raw).hexdigest()[:12])


def load_daemon_settings(path: Path | str) -> DaemonConfig:
    """Only the ``[daemon]`` table of a config file, validated.

    For the readers of the daemon's state (``hashspark ledger``): they need its state
    directory, not the sites' secrets, which they may not be allowed to read.
    """
    path = Path(path)
    _, data = read_toml(path)
    try:
        return DaemonConfig.model_validate(data.get("daemon", {}))
    except ValidationError as exc:
        raise _errors(path, exc, "daemon.") from None


def load_central_settings(path: Path | str) -> tuple[DaemonConfig, CentralConfig | None]:
    """The ``[daemon]`` and ``[central]`` tables of a config file, validated: what the
    shipper and the central ledger's readers need (not the sites' secrets)."""
    path = Path(path)
    daemon = load_daemon_settings(path)
    _, data = read_toml(path)
    if "central" not in data:
        return daemon, None
    try:
        return daemon, CentralConfig.model_validate(
            data["central"], context={"base_dir": path.parent}
        )
    except ValidationError as exc:
        raise _errors(path, exc, "central.") from None


def _message(error: Any) -> str:
    msg = str(error["msg"])
    msg = msg.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "union_tag_invalid":
        return msg.replace("Input tag", "type")
    if error["type"] == "literal_error" and error["loc"] and error["loc"][-1] == "type":
        return f"unknown type {error['input']!r} (should be {msg.removeprefix('Input should be ')})"
    return msg


def render(config: HashsparkConfig) -> dict[str, Any]:
    """The resolved config as plain data, secrets masked (for ``check-config``).

    Secret fields dump as ``**********``; URLs are shown with their credentials masked.
    """
    dumped: dict[str, Any] = scrub_value(config.model_dump(mode="json"))
    return dumped


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with its zone (``Z`` or an offset); naive times are refused."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z or an offset")
    return value
