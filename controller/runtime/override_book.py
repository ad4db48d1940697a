"""A site's operator and grid overrides: added by commands, ended by time or by ``clear``."""

from __future__ import annotations

import asyncio

from controller.decision.overrides import Override
from controller.domain import EpochS


class OverrideBook:
    """The overrides a site loop hands to ``decide()``; ``changed`` wakes the loop."""

    def __init__(self) -> None:
        self._items: dict[str, Override] = {}
        self.changed = asyncio.Event()

    def add(self, override: Override) -> None:
        """Add (or replace, by id) an override."""
        self._items[override.id] = override
        self.changed.set()

    def matching(self, target: str) -> list[str]:
        """The ids ``target`` names: the override with that id, else every one of that kind.

        Command ids cannot be kind names (``adapters/control/commands.py``), so the two never
        clash. Scheduled overrides (a peak window not yet started) count as well as active ones.
        """
        if target in self._items:
            return [target]
        return [oid for oid, o in self._items.items() if o.kind == target]

    def clear(self, target: str) -> list[str]:
        """End the override with id ``target``, or every one of kind ``target``; returns the
        ids ended (none: nothing matched). There is no "clear everything": a grid program is
        ended only by naming it or its kind."""
        ended = self.matching(target)
        for oid in ended:
            del self._items[oid]
        if ended:
            self.changed.set()
        return ended

    def current(self, now: EpochS) -> tuple[Override, ...]:
        """Overrides not yet over at ``now`` (active or scheduled); the ended are dropped."""
        for oid in [oid for oid, o in self._items.items() if o.end <= now]:
            del self._items[oid]
        return tuple(self._items.values())

    def next_change_after(self, now: EpochS) -> EpochS | None:
        """The next start or end of an override after ``now`` (the loop wakes then)."""
        times = [t for o in self._items.values() for t in (o.start, o.end) if t > now]
        return min(times, default=None)
