"""The replay report, typed: what ``--report-json`` writes and the summaries read.

The core's ``Report`` (window, totals, summary, per-day and per-model tables) with what
the replay adds around it: the scenario and its feeds, the grid events' compliance, the
on/off baseline of the optimiser, the live path's run. ``as_dict()`` is the one JSON shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.accounting.report_types import (
    DayRow,
    GridEventResult,
    InstrumentRow,
    ModelRow,
    Report,
    Summary,
    Totals,
    Window,
)


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """A recording the replay read."""

    source: str
    observations: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON object under ``feeds``."""
        return {"source": self.source, "observations": self.observations}


@dataclass(frozen=True, slots=True)
class OptimiserGain:
    """The same replay with every miner only on or off: what the power targets gained."""

    onoff_net_usd: float
    optimiser_gain_usd: float


@dataclass(frozen=True, slots=True)
class RampLosses:
    """What the simulated miners' resume ramps held back, valued (``live_path.ramp_losses``)."""

    ramp_ups: int
    ph_hours_not_hashed: float
    mwh_not_drawn: float
    mining_revenue_usd: float
    power_value_usd: float
    net_usd: float  # power value kept minus revenue not earned

    def as_dict(self) -> dict[str, Any]:
        """The JSON ``ramp_losses`` object."""
        return {
            "ramp_ups": self.ramp_ups,
            "ph_hours_not_hashed": self.ph_hours_not_hashed,
            "mwh_not_drawn": self.mwh_not_drawn,
            "mining_revenue_usd": self.mining_revenue_usd,
            "power_value_usd": self.power_value_usd,
            "net_usd": self.net_usd,
        }


@dataclass(frozen=True, slots=True)
class LivePath:
    """How a live-path replay ran (``live_path``)."""

    miners: int
    family: str
    addresses: str  # first..last
    feeds: str  # the feed transport
    readings_published: int
    readings_not_delivered: int
    speed: float
    resume_ramp_s: float
    faults: tuple[dict[str, Any], ...]  # as a fleet file's [[fault]]
    wall_s: float
    sim_s_per_wall_s: float | None
    cycles: int
    commands: Mapping[str, int]  # sent, applied, then each failure kind
    late_start_s: float
    late_readings: int
    max_reading_lateness_s: float
    meter: str
    ramp_losses: RampLosses
    net_usd_after_ramp_losses: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON ``live_path`` object."""
        return {
            "miners": self.miners,
            "family": self.family,
            "addresses": self.addresses,
            "feeds": self.feeds,
            "readings_published": self.readings_published,
            "readings_not_delivered": self.readings_not_delivered,
            "speed": self.speed,
            "resume_ramp_s": self.resume_ramp_s,
            "faults": list(self.faults),
            "wall_s": self.wall_s,
            "sim_s_per_wall_s": self.sim_s_per_wall_s,
            "cycles": self.cycles,
            "commands": dict(self.commands),
            "late_start_s": self.late_start_s,
            "late_readings": self.late_readings,
            "max_reading_lateness_s": self.max_reading_lateness_s,
            "meter": self.meter,
            "ramp_losses": self.ramp_losses.as_dict(),
            "net_usd_after_ramp_losses": self.net_usd_after_ramp_losses,
        }


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """A finished replay's report; every engine's has this shape."""

    scenario: str
    config_file: str
    config_version: str
    site: str
    engine: str
    price_feed: FeedInfo
    hashprice_feed: FeedInfo
    window: Window
    totals: Totals
    summary: Summary
    per_day: tuple[DayRow, ...]
    per_model: tuple[ModelRow, ...]
    optimiser: OptimiserGain | None = None  # fast path, fleets with power targets
    grid_events: tuple[GridEventResult, ...] | None = None  # scenarios with grid events
    live_path: LivePath | None = None  # the live path only
    #: Per instrument and supply tranche (id, component, USD); None: the site has none.
    per_instrument: tuple[InstrumentRow, ...] | None = None
    #: What every money figure is in; keys say it (``net_eur`` in a EUR site's report).
    currency: str = "USD"
    #: The rate the feeds were converted at (a recording's name, or a stated assumption).
    exchange_rate: str | None = None

    @property
    def core(self) -> Report:
        """The core's part: window, totals, summary and the tables."""
        return Report(self.window, self.totals, self.summary, self.per_day, self.per_model)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON data: what ``--report-json`` and ``report.json`` hold."""
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "config_file": self.config_file,
            "config_version": self.config_version,
            "site": self.site,
            "engine": self.engine,
            "currency": self.currency,
            "feeds": {
                "price": self.price_feed.as_dict(),
                "hashprice": self.hashprice_feed.as_dict(),
            },
            **self.core.as_dict(),
        }
        if self.optimiser is not None:
            out["summary"]["onoff_net_usd"] = self.optimiser.onoff_net_usd
            out["summary"]["optimiser_gain_usd"] = self.optimiser.optimiser_gain_usd
        if self.grid_events is not None:
            out["grid_events"] = [g.as_dict() for g in self.grid_events]
        if self.live_path is not None:
            out["live_path"] = self.live_path.as_dict()
        if self.per_instrument is not None:
            out["per_instrument"] = [row.as_dict() for row in self.per_instrument]
        if self.exchange_rate is not None:
            out["exchange_rate"] = self.exchange_rate
        return out if self.currency == "USD" else relabel(out, self.currency)


def relabel(data: Any, currency: str) -> Any:
    """``data`` with every ``usd`` in a key naming ``currency`` instead (``net_usd`` ->
    ``net_eur``): the figures were computed in the site's currency, the names must say so."""
    code = currency.lower()
    if isinstance(data, dict):
        return {_key(k, code): relabel(v, currency) for k, v in data.items()}
    if isinstance(data, list):
        return [relabel(v, currency) for v in data]
    return data


def _key(key: str, code: str) -> str:
    parts = key.split("_")
    return "_".join(code if p == "usd" else p for p in parts)
