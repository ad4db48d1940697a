"""Replay a scenario: recorded feeds against the fleet, on the fast path or the site loop.

Over 300 lines: loading a scenario's recordings and running either engine share the window
and feed checks; split them when the next feature lands here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from adapters.feeds.derived import derive_recording
from adapters.feeds.recorded import RecordedFeed, RecordedFeedConfig, load_recording
from adapters.ledger.memory import MemoryLedger
from adapters.miners.simulated import InProcessFleet
from controller.accounting.report import build_report, grid_compliance, per_instrument
from controller.app.assemble import assemble, scenario_events
from controller.app.bitcoin_feeds import KINDS as BITCOIN_KINDS
from controller.app.currencies import HASHPRICE_CURRENCY, load_hashprice, load_prices, load_rate
from controller.app.replay.report import FeedInfo, OptimiserGain, ReplayReport
from controller.config import LoadedConfig, SiteConfig
from controller.config.bitcoin_inputs import BITCOIN_FEEDS
from controller.currency import USD, CurrencyError, ExchangeRate, convert
from controller.decision.optimiser import onoff_fleet
from controller.decision.policy import Plan
from controller.domain import EpochS, FleetSpec, Recording, iso
from controller.fast_replay import NotStatelessError, fast_replay
from controller.records import IntervalTable
from controller.runtime.clocks.simulated import SimulatedClock
from controller.site_model import SiteModel

Engine = Literal["auto", "fast", "loop"]

#: How long the last price holds when the scenario gives no end (ECONOMICS.md convention).
LAST_PRICE_HOLDS_S = 900.0


class ReplayError(Exception):
    """A scenario that cannot be replayed as asked, with the reason."""


@dataclass(frozen=True, slots=True)
class ReplayInputs:
    """Everything a replay runs on, loaded and validated."""

    loaded: LoadedConfig
    site: SiteConfig
    model: SiteModel
    price: Recording
    hashprice: Recording
    start: EpochS
    end: EpochS
    cycle_s: float
    day_ahead: Recording | None = None  #: what day-ahead-settled options read, if any
    #: What Bitcoin instruments settle on (``[sites.bitcoin]``), where the site has them.
    btc_usd: Recording | None = None
    difficulty: Recording | None = None
    currency: str = USD  #: what every figure is in (the recordings are converted into it)
    exchange_rate: ExchangeRate | None = None  #: the rate used, if any conversion was made


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """A finished replay: the interval table, the report, and how it ran."""

    table: IntervalTable
    typed_report: ReplayReport
    engine: Literal["fast", "loop", "live"]
    wall_s: float

    @property
    def report(self) -> dict[str, Any]:
        """The report as JSON data (``typed_report.as_dict()``), as ``--report-json`` has it."""
        return self.typed_report.as_dict()


def prepare(
    loaded: LoadedConfig,
    *,
    site_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    window: str | None = None,
) -> ReplayInputs:
    """Pick the site, load its recordings and settle the time window.

    ``window`` names one of the scenario's ``[[scenario.windows]]``; it excludes ``start``
    and ``end``.
    """
    cfg = loaded.config
    if window is not None:
        start, end = _named_window(loaded, window, start, end)
    if site_id is None:
        if len(cfg.sites) != 1:
            ids = ", ".join(s.id for s in cfg.sites)
            raise ReplayError(
                f"{loaded.path}: {len(cfg.sites)} sites ({ids}); choose one with --site"
            )
        site = cfg.sites[0]
    else:
        matches = [s for s in cfg.sites if s.id == site_id]
        if not matches:
            raise ReplayError(f"{loaded.path}: no site {site_id!r}")
        site = matches[0]
    price, hashprice, day_ahead, bitcoin = _recordings(loaded, site)
    scenario = cfg.scenario
    t_start = _pick(start, scenario.start if scenario else None, float(price.times[0]))
    t_end = _pick(
        end, scenario.end if scenario else None, float(price.times[-1]) + LAST_PRICE_HOLDS_S
    )
    if t_end <= t_start:
        raise ReplayError(f"empty window: from {iso(t_start)} is not before to {iso(t_end)}")
    for rec in (price, hashprice, day_ahead, bitcoin.btc_usd, bitcoin.difficulty):
        if rec is not None and t_start < rec.times[0]:
            raise ReplayError(
                f"{rec.path}: window starts {iso(t_start)}, before its first observation "
                f"{iso(float(rec.times[0]))}"
            )
    price, hashprice, day_ahead, rate = _in_site_currency(
        loaded, site, (price, hashprice, day_ahead), t_start, t_end
    )
    model = SiteModel(
        site_id=site.id,
        fleet=site.fleet(),
        params=site.policy_params(),
        supply=site.supply_contract(),
        hedges=site.hedge_book(),
        pacing=site.pacing_params(),
        grid=site.grid_book(),
    )
    return ReplayInputs(
        loaded,
        site,
        model,
        price,
        hashprice,
        t_start,
        t_end,
        cfg.daemon.cycle_s,
        day_ahead,
        bitcoin.btc_usd,
        bitcoin.difficulty,
        currency=site.currency,
        exchange_rate=rate,
    )


def _in_site_currency(
    loaded: LoadedConfig,
    site: SiteConfig,
    recs: tuple[Recording, Recording, Recording | None],
    start: EpochS,
    end: EpochS,
) -> tuple[Recording, Recording, Recording | None, ExchangeRate | None]:
    """Price, hashprice and day-ahead prices over the window in the site's currency."""
    price, hashprice, day_ahead = (_trim(r, start, end) if r else None for r in recs)
    assert price is not None
    assert hashprice is not None
    rate = load_rate(site)
    try:
        price = convert(price, site.prices_in, site.currency, rate, "mwh")
        hashprice = convert(hashprice, HASHPRICE_CURRENCY, site.currency, rate, "ph_day")
        if day_ahead is not None:
            day_ahead = convert(day_ahead, site.prices_in, site.currency, rate, "mwh")
    except CurrencyError as exc:
        raise ReplayError(f"{loaded.path}: sites[{site.id}].exchange_rate: {exc}") from None
    if day_ahead is None and site.market == "day_ahead":
        day_ahead = price  # a day-ahead-only site: its options settle on the prices it buys at
    return price, hashprice, day_ahead, rate


def _trim(rec: Recording, start: EpochS, end: EpochS) -> Recording:
    """The observations that matter in ``[start, end)``: the one holding at ``start`` on."""
    first = max(int(np.searchsorted(rec.times, start, side="right")) - 1, 0)
    last = int(np.searchsorted(rec.times, end, side="left"))
    if first == 0 and last == len(rec):
        return rec
    return replace(rec, times=rec.times[first:last], values=rec.values[first:last])


def _recorded(loaded: LoadedConfig, site: SiteConfig, key: str, feed: object) -> Path:
    if not isinstance(feed, RecordedFeedConfig):
        raise ReplayError(
            f"{loaded.path}: sites[{site.id}].{key} is {getattr(feed, 'type', None)!r}: "
            "a replay needs recorded feeds"
        )
    return feed.path


def _recordings(
    loaded: LoadedConfig, site: SiteConfig
) -> tuple[Recording, Recording, Recording | None, BitcoinRecordings]:
    """The site's recordings: price, hashprice (recorded or derived), day-ahead, Bitcoin."""
    price = load_prices(site, "price_feed", _recorded(loaded, site, "price_feed", site.price_feed))
    day_ahead = None
    if site.day_ahead_feed is not None:
        path = _recorded(loaded, site, "day_ahead_feed", site.day_ahead_feed)
        day_ahead = load_prices(site, "day_ahead_feed", path)
    bitcoin = load_bitcoin(loaded, site)
    if site.hashprice_feed is None:  # bitcoin.hashprice = "derived": the config checked
        assert site.bitcoin is not None
        assert bitcoin.btc_usd is not None
        assert bitcoin.difficulty is not None
        assert bitcoin.fees is not None
        hashprice = derive_recording(
            bitcoin.btc_usd, bitcoin.difficulty, bitcoin.fees, site.bitcoin.subsidy_btc
        )
    else:
        hashprice = load_hashprice(_recorded(loaded, site, "hashprice_feed", site.hashprice_feed))
    return price, hashprice, day_ahead, bitcoin


@dataclass(frozen=True, slots=True)
class BitcoinRecordings:
    """The recordings of a site's ``[sites.bitcoin]`` feeds (None: not configured)."""

    btc_usd: Recording | None = None
    difficulty: Recording | None = None
    fees: Recording | None = None


def load_bitcoin(loaded: LoadedConfig, site: SiteConfig) -> BitcoinRecordings:
    """Load the site's Bitcoin recordings, each in its column (``usd_per_btc``, ...)."""
    if site.bitcoin is None:
        return BitcoinRecordings()
    out: list[Recording | None] = []
    for key, kind in zip(BITCOIN_FEEDS, BITCOIN_KINDS, strict=True):
        feed = getattr(site.bitcoin, key)
        if feed is None:
            out.append(None)
            continue
        out.append(load_recording(_recorded(loaded, site, f"bitcoin.{key}", feed), kind.value))
    return BitcoinRecordings(*out)


def _named_window(
    loaded: LoadedConfig, name: str, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    if start is not None or end is not None:
        raise ReplayError("--window and --from/--to exclude each other: give one or the other")
    scenario = loaded.config.scenario
    found = scenario.window(name) if scenario else None
    if found is None:
        known = ", ".join(w.name for w in scenario.windows) if scenario else ""
        raise ReplayError(
            f"{loaded.path}: no window {name!r} in scenario.windows"
            + (f" (known: {known})" if known else " (it defines none)")
        )
    return found.start, found.end


def _pick(override: datetime | None, configured: datetime | None, default: float) -> EpochS:
    if override is not None:
        return override.timestamp()
    if configured is not None:
        return configured.timestamp()
    return default


def run_fast(inputs: ReplayInputs, fleet: FleetSpec | None = None) -> IntervalTable:
    """The whole window at once (stateless policies only); ``fleet`` replaces the site's."""
    scenario = inputs.loaded.config.scenario
    if scenario is not None and scenario.events:
        raise NotStatelessError("grid events are replayed on the site loop")
    m = inputs.model
    return fast_replay(
        fleet=m.fleet if fleet is None else fleet,
        params=m.params,
        supply=m.supply,
        hedges=m.hedges,
        price=inputs.price,
        hashprice=inputs.hashprice,
        start=inputs.start,
        end=inputs.end,
        day_ahead=inputs.day_ahead,
        grid=m.grid,
        btc_usd=inputs.btc_usd,
        difficulty=inputs.difficulty,
    )


async def run_loop(
    inputs: ReplayInputs, progress: Callable[[EpochS], None] | None = None
) -> IntervalTable:
    """The daemon's own site loop on a simulated clock, with the in-process fleet."""
    clock = SimulatedClock(inputs.start)
    ledger = MemoryLedger()
    driver = InProcessFleet(
        inputs.model.fleet, clock, running=inputs.site.driver.initial_state == "running"
    )
    loop = assemble(
        inputs.model,
        clock=clock,
        price_feed=RecordedFeed(inputs.price),
        hashprice_feed=RecordedFeed(inputs.hashprice),
        day_ahead_feed=None if inputs.day_ahead is None else RecordedFeed(inputs.day_ahead),
        btc_usd_feed=None if inputs.btc_usd is None else RecordedFeed(inputs.btc_usd),
        difficulty_feed=None if inputs.difficulty is None else RecordedFeed(inputs.difficulty),
        driver=driver,
        ledger=ledger,
        cycle_s=inputs.cycle_s,
        events=scenario_events(inputs.loaded.config),
    )

    def on_cycle(plan: Plan) -> None:
        if progress is not None:
            progress(plan.now)

    await loop.run(until=inputs.end, on_cycle=on_cycle)
    if not ledger.records:
        raise ReplayError("the window settled no interval")
    return IntervalTable.from_records(ledger.records, len(inputs.model.fleet.model_names))


def replay(
    inputs: ReplayInputs, engine: Engine = "auto", progress: Callable[[EpochS], None] | None = None
) -> ReplayResult:
    """Run the replay and build its report."""
    began = time.perf_counter()
    used: Literal["fast", "loop"]
    if engine == "loop":
        table, used = asyncio.run(run_loop(inputs, progress)), "loop"
    else:
        try:
            table, used = run_fast(inputs), "fast"
        except NotStatelessError as exc:
            if engine == "fast":
                raise ReplayError(f"the fast path cannot run this scenario: {exc}") from None
            table, used = asyncio.run(run_loop(inputs, progress)), "loop"
    wall_s = time.perf_counter() - began
    report = replay_report(inputs, table, used)
    if used == "fast" and int(inputs.model.fleet.valid.sum(axis=1).max()) > 2:
        report = replace(report, optimiser=_onoff_baseline(inputs, report.totals.net_usd))
    return ReplayResult(table=table, typed_report=report, engine=used, wall_s=wall_s)


def replay_report(inputs: ReplayInputs, table: IntervalTable, engine: str) -> ReplayReport:
    """The report of a finished replay (every engine's has this shape)."""
    forward, share = inputs.model.forwards_in_term(inputs.start, inputs.end)
    core = build_report(
        table,
        inputs.model.fleet,
        pool_fee=inputs.model.params.pool_fee,
        ppa_price_usd_per_mwh=inputs.model.ppa_price_usd_per_mwh,
        forward_usd_per_ph_day=forward,
        hedged_share=share,
    )
    scenario = inputs.loaded.config.scenario
    events = None
    if scenario is not None and scenario.events:
        events = grid_compliance(table, tuple(e.override() for e in scenario.events))
    return ReplayReport(
        scenario=scenario.name if scenario else inputs.loaded.path.stem,
        config_file=str(inputs.loaded.path),
        config_version=inputs.loaded.version,
        site=inputs.site.id,
        engine=engine,
        price_feed=FeedInfo(inputs.price.source, len(inputs.price)),
        hashprice_feed=FeedInfo(inputs.hashprice.source, len(inputs.hashprice)),
        window=core.window,
        totals=core.totals,
        summary=core.summary,
        per_day=core.per_day,
        per_model=core.per_model,
        grid_events=events,
        per_instrument=per_instrument(table) or None,
        currency=inputs.currency,
        exchange_rate=None if inputs.exchange_rate is None else inputs.exchange_rate.source,
    )


def with_fleet_size(inputs: ReplayInputs, miners: int) -> ReplayInputs:
    """The same replay with the site's fleet scaled to ``miners`` (groups keep their shares).

    Supply and hedges stay as the scenario has them. Counts are split by largest remainder,
    so every group keeps at least one miner only if ``miners`` allows.
    """
    site = inputs.site
    if miners < 1:
        raise ReplayError(f"--miners must be at least 1, not {miners}")
    if any(g.addresses is not None for g in site.miners):
        raise ReplayError(f"{inputs.loaded.path}: --miners cannot rescale groups with addresses")
    total = sum(g.count for g in site.miners)
    exact = [g.count * miners / total for g in site.miners]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: miners - sum(counts)]:
        counts[i] += 1
    groups = tuple(
        g.model_copy(update={"count": n}) for g, n in zip(site.miners, counts, strict=True) if n
    )
    scaled = site.model_copy(update={"miners": groups})
    model = SiteModel(
        site_id=scaled.id,
        fleet=scaled.fleet(),
        params=inputs.model.params,
        supply=inputs.model.supply,
        hedges=inputs.model.hedges,
        pacing=inputs.model.pacing,
        grid=inputs.model.grid,
    )
    return replace(inputs, site=scaled, model=model)


def _onoff_baseline(inputs: ReplayInputs, net_usd: float) -> OptimiserGain:
    """The same replay with every miner only on or off: what the power targets gained."""
    baseline = run_fast(inputs, fleet=onoff_fleet(inputs.model.fleet))
    onoff_net = float(baseline.settlement.net_usd.sum())
    return OptimiserGain(onoff_net_usd=onoff_net, optimiser_gain_usd=net_usd - onoff_net)
