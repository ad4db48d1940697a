"""The replay report's tables as frozen dataclasses of plain values.

``as_dict()`` gives each one's JSON shape, keys in the report's order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from controller.records import COMPONENTS

#: The keys of ``totals``, in order; the report promises exactly these.
TOTAL_KEYS = ("intervals", "hours", *COMPONENTS)


def _fields_dict(obj: Any) -> dict[str, Any]:
    """A flat dataclass's fields by name, in declaration order."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


@dataclass(frozen=True, slots=True)
class Totals:
    """Every settlement component summed over some intervals (``TOTAL_KEYS``, in order)."""

    intervals: int
    hours: float
    mined_mwh: float
    curtailed_mwh: float
    mining_revenue_usd: float
    power_cost_usd: float
    resale_revenue_usd: float
    call_premium_usd: float
    call_payout_usd: float
    forward_settlement_usd: float
    net_usd: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON ``totals`` object."""
        return {k: getattr(self, k) for k in TOTAL_KEYS}


@dataclass(frozen=True, slots=True)
class Window:
    """The replayed window: the first interval's start and the last one's end (ISO-8601)."""

    start: str
    end: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON ``window`` object."""
        return {"from": self.start, "to": self.end}


@dataclass(frozen=True, slots=True)
class Summary:
    """The fleet and the curtailment over the window, and the margins."""

    nominal_mw: float
    miners: int
    fleet_efficiency_j_per_th: float
    curtailed_hours: float
    fully_curtailed_hours: float
    curtailed_intervals: int
    failsafe_hours: float
    net_margin_usd_per_mwh: float | None  # None when nothing was mined
    hashspark_spread_usd_per_mwh: float | None  # needs a fixed PPA and a forward in term
    #: Forwards' PH/s in term over the fleet's nominal PH/s, time-weighted over the window.
    hedged_share: float | None = None
    #: The margin per MWh at nominal if the unhedged hashrate earned nothing.
    margin_floor_usd_per_mwh: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON ``summary`` object."""
        return _fields_dict(self)


@dataclass(frozen=True, slots=True)
class DayRow:
    """One UTC day's totals (``per_day``)."""

    date: str  # YYYY-MM-DD
    totals: Totals
    curtailed_hours: float

    def as_dict(self) -> dict[str, Any]:
        """One ``per_day`` row: the date, the totals' keys, the curtailed hours."""
        return {"date": self.date, **self.totals.as_dict(), "curtailed_hours": self.curtailed_hours}


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One miner model's energy, revenue and curtailment (``per_model``)."""

    model: str
    miners: int
    nominal_mw: float
    efficiency_j_per_th: float
    mined_mwh: float
    curtailed_mwh: float
    mining_revenue_usd: float
    curtailed_hours: float
    mean_energy_hashprice_usd_per_mwh: float

    def as_dict(self) -> dict[str, Any]:
        """One ``per_model`` row."""
        return _fields_dict(self)


@dataclass(frozen=True, slots=True)
class GridEventResult:
    """One grid event: the fleet's load while it was in force, and whether it complied."""

    id: str
    program: str
    start: str
    end: str
    measured_from: str
    target_mw: float | None
    tolerance_mw: float | None  # base points only
    intervals: int
    max_mw: float | None  # None when no interval was measured
    min_mw: float | None
    compliant: bool | None  # None when not measured

    def as_dict(self) -> dict[str, Any]:
        """One ``grid_events`` row."""
        return {
            "id": self.id,
            "program": self.program,
            "from": self.start,
            "to": self.end,
            "measured_from": self.measured_from,
            "target_mw": self.target_mw,
            "tolerance_mw": self.tolerance_mw,
            "intervals": self.intervals,
            "max_mw": self.max_mw,
            "min_mw": self.min_mw,
            "compliant": self.compliant,
        }


@dataclass(frozen=True, slots=True)
class InstrumentRow:
    """One instrument's (or supply tranche's) total of one component over the window."""

    id: str
    component: str
    usd: float

    def as_dict(self) -> dict[str, Any]:
        """One ``per_instrument`` row."""
        return _fields_dict(self)


@dataclass(frozen=True, slots=True)
class Report:
    """The settled intervals' report: window, totals, summary, per-day and per-model tables."""

    window: Window
    totals: Totals
    summary: Summary
    per_day: tuple[DayRow, ...]
    per_model: tuple[ModelRow, ...]

    def as_dict(self) -> dict[str, Any]:
        """The JSON sections, in the report's order."""
        return {
            "window": self.window.as_dict(),
            "totals": self.totals.as_dict(),
            "summary": self.summary.as_dict(),
            "per_day": [d.as_dict() for d in self.per_day],
            "per_model": [m.as_dict() for m in self.per_model],
        }
