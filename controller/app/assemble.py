"""The one place a site loop is built: the daemon, the replays, the worker's planner site,
the benchmarks and the test kits all call ``assemble``.

Live, replay and tests differ only in what is passed in: the clock, the feeds, the driver
and the ledger. Scenario events (grid programs) go into the loop's override book here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from controller.config import HashsparkConfig, SiteConfig
from controller.decision.overrides import Override
from controller.runtime.override_book import OverrideBook
from controller.runtime.ports import (
    Clock,
    CommandAudit,
    Ledger,
    LoopObserver,
    MinerDriver,
    PacesResumes,
    ReadingFeed,
)
from controller.runtime.site_loop import DEFAULT_MAX_UNWRITTEN, SiteLoop
from controller.runtime.storage import StorageHealth
from controller.site_model import SiteModel
from controller.status import SiteStatus


def site_model(site: SiteConfig) -> SiteModel:
    """A site's config as the core's model: fleet, policy, supply and hedges."""
    return SiteModel(
        site.id,
        site.fleet(),
        site.policy_params(),
        site.supply_contract(),
        site.hedge_book(),
        sleep_w=site.sleep_power_w(),
        pacing=site.pacing_params(),
        grid=site.grid_book(),
    )


def scenario_events(config: HashsparkConfig) -> tuple[Override, ...]:
    """The grid programs a scenario replays, as overrides."""
    scenario = config.scenario
    return tuple(e.override() for e in scenario.events) if scenario else ()


def assemble(
    model: SiteModel,
    *,
    clock: Clock,
    price_feed: ReadingFeed,
    hashprice_feed: ReadingFeed,
    driver: MinerDriver,
    day_ahead_feed: ReadingFeed | None = None,
    btc_usd_feed: ReadingFeed | None = None,
    difficulty_feed: ReadingFeed | None = None,
    fees_feed: ReadingFeed | None = None,
    ledger: Ledger,
    cycle_s: float,
    events: Iterable[Override] = (),
    overrides: OverrideBook | None = None,
    observer: LoopObserver | None = None,
    status_sink: Callable[[SiteStatus], Awaitable[None]] | None = None,
    audit: CommandAudit | None = None,
    dry_run: bool = False,
    storage: StorageHealth | None = None,
    max_unwritten: int = DEFAULT_MAX_UNWRITTEN,
) -> SiteLoop:
    """A site loop over ``model`` with these inputs, driver and books.

    ``events`` (a scenario's grid programs) are added to ``overrides`` (a fresh book if
    none is given: the daemon passes the one its command handler writes to).
    """
    book = overrides if overrides is not None else OverrideBook()
    for event in events:
        book.add(event)
    return SiteLoop(
        model,
        clock=clock,
        price_feed=price_feed,
        hashprice_feed=hashprice_feed,
        day_ahead_feed=day_ahead_feed,
        btc_usd_feed=btc_usd_feed,
        difficulty_feed=difficulty_feed,
        fees_feed=fees_feed,
        driver=driver,
        ledger=ledger,
        cycle_s=cycle_s,
        observer=observer,
        overrides=book,
        status_sink=status_sink,
        audit=audit,
        dry_run=dry_run,
        resume_chunk=driver.resume_batch_size if isinstance(driver, PacesResumes) else None,
        storage=storage,
        max_unwritten=max_unwritten,
    )
