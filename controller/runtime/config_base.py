"""The base of every config model, and secrets: shared by the core's and the adapters' configs.

Kept apart from ``controller.config`` so that adapter config modules can build on it while
``controller.config`` assembles their unions (no import cycle).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    ValidationInfo,
)

from controller.runtime.redact import register_secret

SECRET_ENV_PREFIX = "HASHSPARK_"  # noqa: S105 (a name prefix, not a password)


def one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped (``\\n``, ``\\x85``).

    Keys and values from a config file reach error messages; one of them holding a line
    break (or U+0085, U+2028) must not split a message over lines or forge another one.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class ConfigError(Exception):
    """A config that cannot be used; ``messages`` holds one line per problem."""

    def __init__(self, messages: list[str]) -> None:
        messages = [one_line(m) for m in messages]
        super().__init__("\n".join(messages))
        self.messages = messages


class Strict(BaseModel):
    """Base of every config model: frozen, unknown keys forbidden, no NaN or inf."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def resolve_secret(value: Any) -> Any:
    """Turn ``{env = ...}`` or ``{file = ...}`` into the secret's value."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        raise ValueError(
            'secrets are not written in config files: use { env = "HASHSPARK_..." } '
            'or { file = "/path" }'
        )
    if not isinstance(value, dict) or len(value) != 1 or not ({"env", "file"} & value.keys()):
        raise ValueError('a secret is { env = "HASHSPARK_..." } or { file = "/path" }')
    if "env" in value:
        name = str(value["env"])
        if not name.startswith(SECRET_ENV_PREFIX):
            raise ValueError(f"secret environment variables start with {SECRET_ENV_PREFIX}: {name}")
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return registered(os.environ[name])
    path = Path(str(value["file"]))
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ValueError(f"secret file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"secret file {path} is readable by others: chmod 600 it")
    return registered(path.read_text(encoding="utf-8").rstrip("\n"))


def registered(value: str) -> str:
    """``value``, registered as a secret: masked in every log line and message from now on."""
    register_secret(value)
    return value


Secret = Annotated[SecretStr, BeforeValidator(resolve_secret)]


def non_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    # Not Field(min_length=1): on a tuple pydantic then also reports "too short" when an
    # item fails, a second message for one mistake.
    if not value:
        raise ValueError("at least one entry is required")
    return value


NonEmpty = AfterValidator(non_empty)


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = value if value.is_absolute() or base is None else Path(base) / value
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return path
