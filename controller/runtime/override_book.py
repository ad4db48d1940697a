"""A site's operator and grid overrides: added by commands, ended by time or by ``clear``.

A book may be given ``on_change``: it is called with every override the book holds after
each change (an add, a clear, ended ones dropped), so the daemon can keep them on disk and a
restart obeys what was active (``adapters/control/persist.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from controller.decision.overrides import Override
from controller.domain import EpochS

#: Called with the book's overrides after every change.
OnChange = Callable[[tuple[Override, ...]], None]


class OverrideBook:
    """The overrides a site loop hands to ``decide()``; ``changed`` wakes the loop."""

    def __init__(self, on_change: OnChange | None = None) -> None:
        self._items: dict[str, Override] = {}
        self.changed = asyncio.Event()
        self.on_change = on_change

    def add(self, override: Override) -> None:
        """Add (or replace, by id) an override."""
        self._items[override.id] = override
        self._changed()

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
            self._changed()
        return ended

    def current(self, now: EpochS) -> tuple[Override, ...]:
        """Overrides not yet over at ``now`` (active or scheduled); the ended are dropped."""
        over = [oid for oid, o in self._items.items() if o.end <= now]
        for oid in over:
            del self._items[oid]
        if over and self.on_change is not None:
            self.on_change(tuple(self._items.values()))
        return tuple(self._items.values())

    def next_change_after(self, now: EpochS) -> EpochS | None:
        """The next start or end of an override after ``now`` (the loop wakes then), and
        the deadline of a deployment of a capacity award (its settlement is measured from
        there: the interval closes)."""
        times = [
            t
            for o in self._items.values()
            for t in (o.start, o.end, o.deadline if o.award is not None else None)
            if t is not None and t > now
        ]
        return min(times, default=None)

    def _changed(self) -> None:
        self.changed.set()
        if self.on_change is not None:
            self.on_change(tuple(self._items.values()))
