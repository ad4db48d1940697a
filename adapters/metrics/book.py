"""The P&L book: cumulative money and energy per site, by direction of money."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from adapters.metrics.table import MONEY
from controller.records import COMPONENTS, IntervalRecord

#: Components whose positive values are money out of the site (the rest are money in).
_COSTS = {
    "power_cost_usd",
    "call_payout_usd",
    "contract_energy_usd",
    "spot_energy_usd",
    "pool_shortfall_charge_usd",
    "nonperformance_penalty_usd",
}


class PnlBook:
    """Cumulative P&L per site and direction, seeded from the ledger, updated per interval."""

    def __init__(self) -> None:
        self.money: dict[tuple[str, str, str], float] = defaultdict(float)  # (metric, site, dir)
        self.instrument: dict[tuple[str, str, str, str], float] = defaultdict(float)
        self.energy: dict[tuple[str, str], float] = defaultdict(float)

    def add(self, record: IntervalRecord) -> None:
        """Account one settled interval."""
        site = record.site_id
        for name in COMPONENTS:
            value = record.component(name)
            if name in MONEY:
                direction = _direction(name, value)
                self.money[(f"hashspark_{name}", site, direction)] += abs(value)
            else:
                self.energy[(f"hashspark_{name}", site)] += value
        self.energy[("hashspark_settled_intervals", site)] += 1
        for inst, comp, usd in record.instruments:
            self.instrument[
                (f"hashspark_instrument_{comp}", site, inst, _direction(comp, usd))
            ] += abs(usd)

    def seed(self, records: Iterable[IntervalRecord]) -> None:
        """Add every stored interval (at start-up)."""
        for record in records:
            self.add(record)


def _direction(component: str, value: float) -> str:
    """``out`` for money the site pays: a positive cost or a negative revenue."""
    if component in _COSTS:
        return "in" if value < 0 else "out"
    return "out" if value < 0 else "in"
