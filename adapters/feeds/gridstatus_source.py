"""Prices of the US ISOs through ``gridstatus``: which ISO, market and location, and one fetch.

``gridstatus`` (BSD-3) is synchronous and heavy (pandas, lxml, plotly): it is imported only
inside :meth:`GridstatusSource.fetch`, which runs in the publisher's own process and
environment (``.venv-iso``, ``make iso-env``; docs/feeds.md). Everything else here (the
catalogue of ISOs, markets and locations, the choice of the interval, the labels) is plain
Python, so the CLI can refuse a bad ``--iso``/``--location``/``--market`` and the rest of the
project can import this module without gridstatus installed.

A gridstatus frame is read by column name only (``Interval Start``, ``Location``, ``LMP``),
without importing pandas: the frame is the library's, the readings are ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from controller.domain import EpochS


class PriceBasis(StrEnum):
    """How final a price is, in the reading's source label."""

    EX_ANTE = "ex-ante"  # known before its interval (day-ahead, forecast dispatch)
    PRELIM = "prelim"  # real-time, as posted after its interval; may still be corrected
    FINAL = "final"  # verified for settlement


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One gridstatus market of one ISO: how to ask for it and how final its prices are."""

    basis: PriceBasis
    method: str  # the gridstatus ISO method that reads it
    latest: bool  # the method answers ``date="latest"`` (else: the ISO's local today)


@dataclass(frozen=True, slots=True)
class IsoSpec:
    """A US ISO as gridstatus names it, with its markets and the locations sites price at."""

    gridstatus_class: str
    timezone: str
    markets: dict[str, MarketSpec]
    locations: tuple[str, ...]  # hubs and zones; gridstatus's own names


_RT = "REAL_TIME_5_MIN"
_DA = "DAY_AHEAD_HOURLY"
_GET_LMP_MARKETS = {
    _RT: MarketSpec(PriceBasis.PRELIM, "get_lmp", latest=False),
    _DA: MarketSpec(PriceBasis.EX_ANTE, "get_lmp", latest=False),
}

#: What ``hashspark feed gridstatus`` knows. SPP reads its "latest interval" file (one
#: request, every settlement location); the others go through gridstatus's ``get_lmp``.
ISOS: dict[str, IsoSpec] = {
    "SPP": IsoSpec(
        "SPP",
        "US/Central",
        {
            _RT: MarketSpec(PriceBasis.PRELIM, "get_lmp_real_time_5_min_by_location", latest=True),
            _DA: MarketSpec(PriceBasis.EX_ANTE, "get_lmp_day_ahead_hourly", latest=False),
        },
        ("SPPNORTH_HUB", "SPPSOUTH_HUB"),
    ),
    "MISO": IsoSpec(
        "MISO",
        "EST",
        _GET_LMP_MARKETS,
        (
            "ARKANSAS.HUB",
            "ILLINOIS.HUB",
            "INDIANA.HUB",
            "LOUISIANA.HUB",
            "MICHIGAN.HUB",
            "MINN.HUB",
            "MS.HUB",
            "TEXAS.HUB",
        ),
    ),
    "NYISO": IsoSpec(
        "NYISO",
        "US/Eastern",
        _GET_LMP_MARKETS,
        (
            "CAPITL",
            "CENTRL",
            "DUNWOD",
            "GENESE",
            "HUD VL",
            "LONGIL",
            "MHK VL",
            "MILLWD",
            "N.Y.C.",
            "NORTH",
            "WEST",
        ),
    ),
    "ISONE": IsoSpec(
        "ISONE",
        "US/Eastern",
        _GET_LMP_MARKETS,
        (
            ".H.INTERNAL_HUB",
            ".Z.CONNECTICUT",
            ".Z.MAINE",
            ".Z.NEMASSBOST",
            ".Z.NEWHAMPSHIRE",
            ".Z.RHODEISLAND",
            ".Z.SEMASS",
            ".Z.VERMONT",
            ".Z.WCMASS",
        ),
    ),
    "CAISO": IsoSpec(
        "CAISO",
        "US/Pacific",
        _GET_LMP_MARKETS,
        ("TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "TH_ZP26_GEN-APND"),
    ),
}


class ChoiceError(ValueError):
    """An ISO, market or location gridstatus (or this publisher) does not know."""


def choose(iso: str, market: str, location: str) -> tuple[IsoSpec, MarketSpec]:
    """The specs for ``iso``/``market``/``location``; ``ChoiceError`` names the known ones."""
    spec = ISOS.get(iso.upper())
    if spec is None:
        raise ChoiceError(f"--iso: unknown ISO {iso!r} (known: {', '.join(ISOS)})")
    market_spec = spec.markets.get(market.upper())
    if market_spec is None:
        known = ", ".join(spec.markets)
        raise ChoiceError(f"--market: {iso.upper()} has no market {market!r} (known: {known})")
    if location not in spec.locations:
        known = ", ".join(spec.locations)
        raise ChoiceError(
            f"--location: {iso.upper()} has no location {location!r} (known: {known})"
        )
    return spec, market_spec


@dataclass(frozen=True, slots=True)
class IntervalPrice:
    """One interval's price at one location, as gridstatus returned it."""

    start: EpochS
    usd_per_mwh: float


class _Column(Protocol):
    def tolist(self) -> list[Any]: ...


class Frame(Protocol):
    """The part of a pandas DataFrame read here: columns by name."""

    @property
    def columns(self) -> Any: ...

    def __getitem__(self, key: str) -> _Column: ...


def rows_at(frame: Frame, location: str) -> list[IntervalPrice]:
    """The frame's rows at ``location`` (by ``Interval Start``, ``Location``, ``LMP``).

    A start that is not a zone-aware time is skipped (a frame without zones is a library
    change, not a price); a value that is not a number becomes NaN, refused downstream.
    """
    missing = [c for c in ("Interval Start", "Location", "LMP") if c not in set(frame.columns)]
    if missing:
        raise KeyError(f"gridstatus frame without column(s) {', '.join(missing)}")
    out: list[IntervalPrice] = []
    starts = frame["Interval Start"].tolist()
    places = frame["Location"].tolist()
    values = frame["LMP"].tolist()
    for start, place, value in zip(starts, places, values, strict=True):
        if place != location or not isinstance(start, datetime) or start.tzinfo is None:
            continue
        try:
            price = float(value)
        except (TypeError, ValueError):
            price = math.nan
        out.append(IntervalPrice(start.timestamp(), price))
    return out


def newest_begun(rows: Sequence[IntervalPrice], now: EpochS) -> IntervalPrice | None:
    """The newest interval that has begun by ``now`` (a day-ahead file holds the future)."""
    begun = [r for r in rows if r.start <= now]
    return max(begun, key=lambda r: r.start) if begun else None


class GridstatusSource:
    """One ISO, market and location, fetched through gridstatus (synchronously)."""

    def __init__(
        self,
        iso: str,
        market: str,
        location: str,
        *,
        load: Callable[[str], Any] | None = None,
    ) -> None:
        self.iso_spec, self.market_spec = choose(iso, market, location)
        self.iso = iso.upper()
        self.market = market.upper()
        self.location = location
        self._load = load or _gridstatus_iso
        self._client: Any = None

    @property
    def label(self) -> str:
        """The readings' source: ``gridstatus:<ISO>:<location>:<market>:<basis>``."""
        place = self.location.replace(" ", "_")  # NYISO's "HUD VL": no spaces in a source
        return f"gridstatus:{self.iso}:{place}:{self.market}:{self.market_spec.basis}"

    def open(self) -> None:
        """Import gridstatus and make its ISO client (no request); ``ChoiceError`` if absent."""
        if self._client is None:
            self._client = self._load(self.iso_spec.gridstatus_class)

    def fetch(self, now: EpochS) -> list[IntervalPrice]:
        """Ask gridstatus once; every interval it returned at the location (blocking I/O)."""
        self.open()
        spec = self.market_spec
        if spec.latest:
            date: str = "latest"
        else:  # the ISO's own calendar day: a day-ahead file is per market day
            local = datetime.fromtimestamp(now, ZoneInfo(_zone(self.iso_spec.timezone)))
            date = local.strftime("%Y-%m-%d")
        method = getattr(self._client, spec.method)
        if spec.method == "get_lmp":
            frame = method(date=date, market=self.market, locations=[self.location])
        else:
            frame = method(date=date, location_type="ALL")
        return rows_at(frame, self.location)


def _zone(name: str) -> str:
    # gridstatus names MISO's zone "EST" (fixed UTC-5, as MISO's market clock is).
    return "Etc/GMT+5" if name == "EST" else name


def _gridstatus_iso(class_name: str) -> Any:
    """An instance of gridstatus's ISO class (the one place gridstatus is imported)."""
    try:
        import gridstatus  # noqa: PLC0415 - lazily: only the publisher's environment has it
    except ImportError as exc:
        raise ChoiceError(
            "gridstatus is not installed here: `make iso-env`, then run "
            ".venv-iso/bin/hashspark feed gridstatus ..."
        ) from exc
    return getattr(gridstatus, class_name)()
