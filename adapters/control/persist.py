"""Active operator and grid commands, kept on disk so that a restart still obeys them.

A demand response capped at 0 MW must hold through a SIGTERM or a SIGKILL of the daemon.
The site's ``OverrideBook`` calls ``ActiveCommands.save`` after every change (a command
accepted, a ``clear``, an override that ended), which rewrites
``<state_dir>/commands/<site>.json`` durably and atomically before the command is
acknowledged. At start ``restore`` puts back every override not yet over (each logged
``command_restored``) and drops the ended ones (``command_expired``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import get_args

import structlog

from controller.decision.overrides import Override, OverrideKind
from controller.domain import EpochS, iso
from controller.runtime.durable import read_json, write_json_atomic
from controller.runtime.override_book import OverrideBook
from controller.runtime.storage import StorageHealth

#: Where the sites' active commands live, under the state directory.
COMMANDS_DIR = "commands"
_VERSION = 1
_KINDS = frozenset(get_args(OverrideKind))


def to_json(override: Override) -> dict[str, object]:
    """An override as a JSON object."""
    return dataclasses.asdict(override)


def from_json(doc: object) -> Override:
    """An override from ``to_json``'s object (raises ``ValueError`` if it is not one)."""
    if not isinstance(doc, dict):
        raise ValueError(f"an override is an object, not {type(doc).__name__}")
    if doc.get("kind") not in _KINDS:
        raise ValueError("unknown override kind")  # not quoted: file content stays out of logs
    try:
        override = Override(**doc)
    except TypeError:
        raise ValueError("missing or unknown override fields") from None
    for name in ("start", "end", "max_mw", "deadline", "tolerance_mw"):
        value = getattr(override, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{name} is not a number")
    if not isinstance(override.id, str) or not isinstance(override.issued_by, str):
        raise ValueError("id and issued_by must be strings")
    if override.award is not None and not isinstance(override.award, str):
        raise ValueError("award must be a string")
    return override


class ActiveCommands:
    """One site's active overrides in a JSON file."""

    def __init__(self, path: Path, site_id: str, storage: StorageHealth | None = None) -> None:
        self.path = path
        self.site = site_id
        self.saves = 0
        self.storage = storage or StorageHealth()
        self._log = structlog.get_logger("hashspark.commands").bind(site=site_id)

    def save(self, overrides: tuple[Override, ...]) -> None:
        """Replace the file with ``overrides``; a failure is logged (they still apply)."""
        doc = {"version": _VERSION, "overrides": [to_json(o) for o in overrides]}
        try:
            write_json_atomic(self.path, doc)
        except OSError as exc:
            self._log.error(
                "commands_not_persisted",
                path=str(self.path),
                reason=str(exc),
                active=[o.id for o in overrides],
            )
            self.storage.failed("commands", exc, logged=True)
            return
        self.storage.succeeded("commands")
        self.saves += 1

    def load(self) -> list[Override]:
        """Every override in the file (a missing file: none; a damaged one: logged, none)."""
        try:
            doc = read_json(self.path)
            if not isinstance(doc, dict) or doc.get("version") != _VERSION:
                raise ValueError("not a version 1 commands file")
            entries = doc["overrides"]
            if not isinstance(entries, list):
                raise ValueError("overrides is not a list")
            return [from_json(entry) for entry in entries]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError) as exc:
            self._log.error("commands_unreadable", path=str(self.path), reason=str(exc))
            return []

    def restore(self, book: OverrideBook, now: EpochS) -> list[Override]:
        """Put every override not over at ``now`` into ``book``; the ones restored."""
        restored: list[Override] = []
        kept = self.load()
        for override in kept:
            if override.end <= now:
                self._log.info(
                    "command_expired",
                    id=override.id,
                    kind=override.kind,
                    end=iso(override.end),
                )
                continue
            book.add(override)
            restored.append(override)
            self._log.info(
                "command_restored",
                id=override.id,
                kind=override.kind,
                issued_by=override.issued_by,
                start=iso(override.start),
                end=iso(override.end),
                max_mw=override.max_mw,
            )
        if len(restored) != len(kept):
            self.save(tuple(restored))  # the ended ones leave the file too
        return restored
