"""A whole config file: the top-level model, loading, and one-line messages with key paths."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from controller.config.adapters import union_tags
from controller.config.contracts import unique
from controller.config.scenario import CompareConfig, ScenarioConfig
from controller.config.site import SiteConfig
from controller.runtime.config_base import ConfigError, NonEmpty, Strict
from controller.runtime.site_loop import DEFAULT_MAX_UNWRITTEN


class DaemonConfig(Strict):
    """Process-wide settings."""

    cycle_s: float = Field(default=15.0, gt=0, le=3600)
    state_dir: Path = Path("/var/lib/hashspark")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_host: str = "127.0.0.1"  # loopback unless the operator opens it up
    metrics_port: int = Field(default=9108, ge=0, le=65535)  # 0: any free port
    ledger_sync: Literal["full", "normal"] = "full"  # normal: survives kill -9, not power loss
    on_shutdown: Literal["keep", "curtail", "run"] = "keep"  # where SIGTERM leaves the miners
    cycle_timeout_s: float = Field(default=120.0, gt=0)  # a cycle running longer is stuck
    # Settled intervals held in memory while the ledger cannot take them (disk full,
    # read-only), written in order when it can; beyond this, newer ones are dropped (counted).
    ledger_max_unwritten: int = Field(default=DEFAULT_MAX_UNWRITTEN, ge=1, le=1_000_000)


class HashsparkConfig(Strict):
    """A whole config file: daemon settings, optional scenario, and the sites."""

    daemon: DaemonConfig = DaemonConfig()
    scenario: ScenarioConfig | None = None
    compare: CompareConfig | None = None
    sites: Annotated[tuple[SiteConfig, ...], NonEmpty]

    @model_validator(mode="after")
    def _unique_sites(self) -> HashsparkConfig:
        unique("site ids", [s.id for s in self.sites])
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


def _read(path: Path) -> tuple[bytes, dict[str, Any]]:
    """A config file's bytes and its TOML."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: {exc.strerror}"]) from None
    try:
        return raw, tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None


def _errors(path: Path, exc: ValidationError, prefix: str = "") -> ConfigError:
    return ConfigError(
        [f"{path}: {prefix}{format_loc(e['loc'])}: {_message(e)}" for e in exc.errors()]
    )


def load_config(path: Path | str) -> LoadedConfig:
    """Read, parse and validate a config file; every problem is reported at once."""
    path = Path(path)
    raw, data = _read(path)
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
    _, data = _read(path)
    try:
        return DaemonConfig.model_validate(data.get("daemon", {}))
    except ValidationError as exc:
        raise _errors(path, exc, "daemon.") from None


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
    """The resolved config as plain data, secrets masked (for ``check-config``)."""
    return config.model_dump(mode="json")


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with its zone (``Z`` or an offset); naive times are refused."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z or an offset")
    return value
