"""``replay --live-path --decisions``: each change of plan as the site loop makes it, and why.

The live-path replay calls a ``DecisionLog`` after every cycle with the cycle's plan and
status (what the daemon would publish). It prints a line when the plan moves miners, or
when what decides the plan changes (a fail-safe engages or clears, an override starts or
ends): the simulated time, the price, which miners of which model and firmware family
change, how many are mining after it, and the reason (docs/replay.md shows the output).

The JSON report is not touched: this is a view of the run, not a figure of it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.decision.policy import Plan
from controller.domain import OFF, BoolArray, FleetSpec, IntArray, iso
from controller.status import SiteStatus

#: The verbs of a miner's move, in the order they are printed.
_MOVES = ("curtail", "throttle", "raise", "resume")
_INDENT = " " * 24  # under the line's text, after the time
WIDTH = 100  #: lines are wrapped to this many columns


@dataclass(frozen=True, slots=True)
class CycleView:
    """One cycle of the live path, as the decisions printer sees it."""

    fleet: FleetSpec  # the fleet the loop plans for
    families: tuple[str, ...]  # each miner's firmware family
    plan: Plan
    status: SiteStatus  # the cycle's status: its inputs, per-model energy hashprices


def _move(fleet: FleetSpec, i: int, before: int, after: int) -> str | None:
    """What miner ``i``'s change of point is called; None when it does not change."""
    if before == after:
        return None
    if after == OFF:
        return "curtail"
    if before == OFF:
        return "resume"
    return "raise" if fleet.power_w[i, after] > fleet.power_w[i, before] else "throttle"


def reason(view: CycleView) -> str:
    """Why the plan is what it is: fail-safe, override, or the economics; and the ramp."""
    plan, status = view.plan, view.status
    if plan.failsafe is not None:
        why = f"fail-safe ({plan.failsafe.action}): {plan.failsafe.reason}"
    elif plan.override is not None:
        targets = [f"{g.target_mw:g} MW" for g in status.grid if g.target_mw is not None]
        why = f"override {plan.override}" + (f" (target {', '.join(targets)})" if targets else "")
    else:
        why = "economics: " + _economics(status)
    if (n := plan.ramp_limited) > 0:
        why += f"; ramp limit: {n} {'miner' if n == 1 else 'miners'} held back"
    return why


def _economics(status: SiteStatus) -> str:
    """The power's worth against each model's energy hashprice: a model below it is off."""
    c = status.opportunity_cost_usd_per_mwh
    if c is None:
        return "no price"
    price = None if status.price is None else status.price.value
    label = "price" if price is not None and abs(price - c) < 1e-9 else "opportunity cost"
    ehps = [
        (m.model, ehp) for m in status.models if (ehp := m.energy_hashprice_usd_per_mwh) is not None
    ]
    off = " and ".join(f"{model} ({ehp:,.2f})" for model, ehp in ehps if ehp < c)
    on = " and ".join(f"{model} ({ehp:,.2f})" for model, ehp in ehps if ehp >= c)
    text = "price " if label == "price" else f"{label} {c:,.2f} USD/MWh "
    if off and on:
        return text + f"above the energy hashprice of {off}, below that of {on}"
    return text + f"{'above' if off else 'below'} the energy hashprice of {off or on}"


class DecisionLog:
    """Prints each change of plan with its reason; ``before_print`` clears a progress bar."""

    def __init__(
        self,
        stream: Any,
        before_print: Callable[[], None] | None = None,
        note: str | None = None,
    ) -> None:
        self._stream = stream
        self._before_print = before_print
        self._note = note  # printed under the header, e.g. which families were left out
        self._point: IntArray | None = None
        self._why_key: tuple[str | None, str | None] | None = None

    def __call__(self, view: CycleView) -> None:
        first = self._point is None
        text = self.describe(view)
        if text is None:
            return
        if first:
            text = header(view.families, self._note) + "\n" + text
        if self._before_print is not None:
            self._before_print()
        print(text, file=self._stream, flush=True)

    def describe(self, view: CycleView) -> str | None:
        """The lines for this cycle, or None when the plan and its grounds did not change."""
        plan, fleet = view.plan, view.fleet
        failsafe = None if plan.failsafe is None else str(plan.failsafe.action)
        why_key = (failsafe, plan.override)
        before = self._point
        self._point = plan.point.copy()
        first = before is None
        moved = np.zeros(fleet.size, dtype=bool) if before is None else before != plan.point
        if not first and not moved.any() and why_key == self._why_key:
            return None
        self._why_key = why_key
        price = view.status.price
        mining = int((plan.point > OFF).sum())
        head = (
            f"  {iso(plan.now)}  price "
            + ("n/a" if price is None else f"{price.value:,.2f} USD/MWh")
            + f"  -> {mining}/{fleet.size} mining"
        )
        unreachable = sum(m.unreachable for m in view.status.models)
        if unreachable:
            head += f", {unreachable} unreachable"
        if first:
            changes = [f"start: {clause}" for clause in _by_model(view, plan.point > OFF)]
        elif moved.any():
            assert before is not None
            changes = _changes(view, before)
        else:
            changes = ["no change"]
        lines = [head]
        for change in changes:
            lines += _wrap(change, _INDENT, _INDENT + "  ")
        return "\n".join([*lines, *_wrap(f"why: {reason(view)}", _INDENT, _INDENT + "     ")])


def _wrap(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    ) or [first]


def header(families: Sequence[str], note: str | None = None) -> str:
    """The lines printed before the first decision: which families the miners speak."""
    text = (
        f"  decisions   each change of plan as the site loop makes it (times UTC)\n"
        f"  miners      {len(families)} simulated: {_families(families, range(len(families)))}"
    )
    return "\n".join([text, *(_wrap(note, " " * 14, " " * 16) if note else [])])


def _changes(view: CycleView, before: IntArray) -> list[str]:
    """One clause per kind of move and model: "curtail 22 Antminer S19j Pro (luxos 8, ...)"."""
    plan, fleet = view.plan, view.fleet
    groups: dict[tuple[str, str], list[int]] = {}
    for i in np.flatnonzero(before != plan.point):
        move = _move(fleet, int(i), int(before[i]), int(plan.point[i]))
        if move is not None:
            model = fleet.model_names[int(fleet.model_index[i])]
            groups.setdefault((move, model), []).append(int(i))
    return [
        f"{move} {len(rows)} {model} ({_families(view.families, rows)})"
        for move in _MOVES
        for model in fleet.model_names
        if (rows := groups.get((move, model)))
    ]


def _by_model(view: CycleView, selected: BoolArray) -> list[str]:
    """Per model, how many of its miners are ``selected`` (mining), by family."""
    fleet = view.fleet
    parts = []
    for m, model in enumerate(fleet.model_names):
        members = fleet.model_index == m
        rows = [int(i) for i in np.flatnonzero(members & selected)]
        fams = f" ({_families(view.families, rows)})" if rows else ""
        parts.append(f"{model} {len(rows)}/{int(members.sum())} mining{fams}")
    return parts


def _families(families: Sequence[str], rows: Sequence[int]) -> str:
    """How many of ``rows`` speak each family, in the fleet's order of families."""
    counts = dict.fromkeys(dict.fromkeys(families), 0)
    for i in rows:
        counts[families[i]] += 1
    return ", ".join(f"{f} {n}" for f, n in counts.items() if n)
