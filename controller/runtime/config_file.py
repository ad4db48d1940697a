"""Reading a TOML file someone else wrote: a bounded regular file, parsed to a bounded depth.

Shared by the config loader (``controller/config/load.py``) and the simulators' fleet files:
a FIFO or a device as the path is refused without blocking or reading, at most
``MAX_CONFIG_BYTES`` are read, and tables and arrays nest at most ``MAX_TOML_DEPTH`` deep
(checked iteratively; the parser's own ``RecursionError`` is caught).

Keys are bounded before the parser sees them: ``tomllib`` takes time quadratic in the parts
of a dotted key (``a.a.a...a = 1``: 10,000 parts take 8 s, a 4 MB line would take days),
and a long table header slows every key under it. A key or header of more than
``MAX_TOML_DEPTH`` dotted parts is refused from a scan of the lines (dots inside a quoted key
part count too: no real key has 32 of them).
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from controller.runtime.config_base import ConfigError
from controller.runtime.config_bounds import MAX_CONFIG_BYTES, MAX_TOML_DEPTH


def _read_bytes(path: Path) -> bytes:
    """A regular file's bytes, at most ``MAX_CONFIG_BYTES`` of them.

    Opened without blocking and checked before it is read: a FIFO would block the open (and
    ``run`` with it), ``/dev/zero`` would never end.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: {exc.strerror}"]) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "Is a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ConfigError([f"{path}: {kind} (a config is a TOML file)"])
    with os.fdopen(fd, "rb") as handle:
        try:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError([f"{path}: {exc.strerror}"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_CONFIG_BYTES} bytes"])
    return raw


def _depth(data: dict[str, Any]) -> int:
    """How deep tables and arrays nest (iteratively: no recursion limit to hit)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_TOML_DEPTH:
            break
        children = list(value.values()) if isinstance(value, dict) else value
        if isinstance(children, list):
            stack += [(v, depth + 1) for v in children if isinstance(v, dict | list)]
    return deepest


def _long_key(text: str) -> int | None:
    """The number of the first line whose key or table header has too many dotted parts."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.count(".") <= MAX_TOML_DEPTH:
            continue  # the common case, and most lines of a big file
        stripped = line.lstrip()
        if stripped.startswith("["):
            key = stripped.partition("]")[0]
        elif "=" in stripped and not stripped.startswith(("{", "#")):
            key = stripped.partition("=")[0]
        else:
            continue
        if key.count(".") >= MAX_TOML_DEPTH:
            return number
    return None


#: tomllib messages that quote the file's content (a key, a character), and what we say instead.
_TOML_QUOTING = (
    ("Cannot declare", "a key or table declared twice"),
    ("Cannot mutate immutable namespace", "a key or table redefined"),
    ("Cannot redefine namespace", "a key or table redefined"),
    ("Duplicate inline table key", "a key repeated in an inline table"),
    ("Found invalid character", "invalid character"),
    ("Illegal character", "invalid character"),
)


def toml_reason(message: str) -> str:
    """tomllib's message without any content of the file: the reason and where it is.

    Pointed at the wrong file (``/etc/shadow``), the error must not print what it read.
    """
    reason, sep, where = message.rpartition(" (at ")
    if not sep:
        reason, where = message, ""
    for prefix, replacement in _TOML_QUOTING:
        if reason.startswith(prefix):
            reason = replacement
    if not reason.isascii() or len(reason) > 80:
        reason = "not valid TOML"
    return f"{reason} (at {where}" if where else reason


def read_toml(path: Path) -> tuple[bytes, dict[str, Any]]:
    """A config file's bytes and its TOML; every problem a ``ConfigError`` of one line."""
    raw = _read_bytes(path)
    too_deep = ConfigError([f"{path}: tables or arrays nested deeper than {MAX_TOML_DEPTH}"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    line = _long_key(text)
    if line is not None:
        raise ConfigError(
            [f"{path}:{line}: a key or table header of more than {MAX_TOML_DEPTH} dotted parts"]
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {toml_reason(str(exc))}"]) from None
    except RecursionError:
        raise too_deep from None
    if _depth(data) > MAX_TOML_DEPTH:
        raise too_deep
    return raw, data
