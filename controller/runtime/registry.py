"""Adapter registries: each adapter family maps a config ``type`` to its config model and builder.

An adapter module registers itself when imported (``FEEDS.register("ercot", ...)``); the
config layer derives its discriminated unions from what is registered, and the composition
root builds adapters by asking the registry, so adding an adapter is one module plus its
registration, never an edit to a hand-kept list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

B = TypeVar("B", bound=Callable[..., Any])


class RegistryError(LookupError):
    """An unknown or duplicate ``type`` name; the message lists the known ones."""


@dataclass(frozen=True, slots=True)
class Entry(Generic[B]):
    """One registered adapter: its ``type`` name, config model and builder."""

    name: str
    config: type[Any]
    build: B


class Registry(Generic[B]):
    """The adapters of one family (feeds, miner drivers), by their config ``type``."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Entry[B]] = {}

    def register(self, type_name: str, config: type[Any], build: B) -> None:
        """Add an adapter; a second adapter under the same name is refused."""
        if type_name in self._entries:
            raise RegistryError(f"{self.family} type {type_name!r} is registered twice")
        self._entries[type_name] = Entry(type_name, config, build)

    def get(self, type_name: str) -> Entry[B]:
        """The adapter registered as ``type_name``."""
        try:
            return self._entries[type_name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(
                f"unknown {self.family} type {type_name!r} (known: {known})"
            ) from None

    def types(self) -> tuple[str, ...]:
        """Every registered ``type`` name, in registration order."""
        return tuple(self._entries)

    def configs(self) -> tuple[type[Any], ...]:
        """Every registered config model, in registration order."""
        return tuple(e.config for e in self._entries.values())
