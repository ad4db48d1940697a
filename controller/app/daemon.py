"""The daemon: one site loop per site, the durable ledger, and the metrics endpoint.

``hashspark run CONFIG`` wires it on the system clock. With ``--simulated`` every site runs
on its own simulated clock from where its ledger ends (or the scenario's start) to the
scenario's end: the same code path, faster than real time, and resumable after a crash.

Signals: SIGTERM and SIGINT let in-flight cycles finish, leave the miners as
``daemon.on_shutdown`` says, settle and flush the ledger, and exit 0. SIGHUP reloads the
config; a config that does not validate is refused and the daemon keeps the old one.
SIGUSR1 logs every asyncio task's stack (``task_stack``), to see into a stuck cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from adapters.control.apply import AuditLog, CommandHandler
from adapters.control.command_audit import CommandAuditLog
from adapters.control.commands import CommandIntake, CommandLimits
from adapters.feeds.mqtt import MqttLink
from adapters.feeds.payloads import ReadingKind
from adapters.feeds.recorded import (
    PRICE_COLUMN,
    RecordedFeedConfig,
    load_recording,
)
from adapters.feeds.site import SiteFeeds
from adapters.feeds.store import FeedStats
from adapters.ledger.sqlite import LEDGER_FILE, SqliteLedger
from adapters.metrics import BookedLedger, Metrics, PnlBook
from adapters.miners.driver import PyasicDriver
from adapters.sharding.planner import ShardedDriver
from controller.app.drivers import build_driver
from controller.app.replay.runner import LAST_PRICE_HOLDS_S
from controller.config import ConfigError, LoadedConfig, SiteConfig, load_config
from controller.decision.policy import Plan
from controller.domain import EpochS, FleetSpec, iso
from controller.runtime.clocks.simulated import SimulatedClock
from controller.runtime.clocks.system import SystemClock
from controller.runtime.notify import Notifier
from controller.runtime.override_book import OverrideBook
from controller.runtime.ports import Clock, MinerDriver
from controller.runtime.site_curves import SiteCurves
from controller.runtime.site_loop import SiteLoop
from controller.runtime.taskdump import dump_tasks
from controller.site_model import SiteModel
from controller.status import SiteStatus

#: Builds a site's miner driver; the composition root may swap it (tests inject faults).
DriverFactory = Callable[[SiteConfig, FleetSpec, Clock], MinerDriver]


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """How to run: clock, pacing, where state lives, what to serve."""

    simulated: bool = False
    speed: float | None = None  # simulated seconds per real second; None: as fast as possible
    state_dir: Path | None = None
    metrics_port: int | None = None
    stay: bool = False  # keep serving after a simulated run reaches its end
    dry_run: bool = False  # decide, log and export; command no miner


@dataclass(slots=True)
class _Site:
    config: SiteConfig
    loop: SiteLoop
    clock: Clock
    until: EpochS | None
    curves: SiteCurves


class Daemon:
    """Owns the ledger, the metrics server and the site loops."""

    def __init__(
        self,
        loaded: LoadedConfig,
        options: DaemonOptions,
        *,
        driver_factory: DriverFactory | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.loaded = loaded
        self.options = options
        self.run_id = uuid.uuid4().hex[:12]
        self.state_dir = options.state_dir or loaded.config.daemon.state_dir
        self.registry = CollectorRegistry()
        self.book = PnlBook()
        self.feed_stats = FeedStats()
        self.metrics = Metrics(self.registry, self.book, self.feed_stats)
        self.notifier = notifier or Notifier()
        self.ledger: SqliteLedger | None = None
        self.port: int | None = None
        self.sites: list[_Site] = []
        self.finished = False  # every simulated site reached its end
        self._driver_factory = driver_factory or build_driver
        self._log = structlog.get_logger("hashspark.daemon").bind(run_id=self.run_id)
        self._stop = asyncio.Event()
        self._stuck_logged = False
        self.site_feeds: list[SiteFeeds] = []

    def request_stop(self) -> None:
        """Let cycles in flight finish, leave the miners as configured, settle, exit."""
        self._stop.set()

    async def run(self) -> None:
        """Run until every simulated site reaches its end, or until asked to stop."""
        ledger = SqliteLedger.open(
            self.state_dir / LEDGER_FILE,
            run_id=self.run_id,
            config_version=self.loaded.version,
            synchronous=self.loaded.config.daemon.ledger_sync,
        )
        self.ledger = ledger
        try:
            self.book.seed(ledger.records())
            async with AsyncExitStack() as stack:
                self.sites = [self.build_site(site, ledger) for site in self.loaded.config.sites]
                for feeds in self.site_feeds:
                    await stack.enter_async_context(feeds.run())
                for s in self.sites:
                    if isinstance(s.loop.driver, ShardedDriver):  # the planner's broker link
                        await stack.enter_async_context(s.loop.driver)
                        self.metrics.shards[s.config.id] = s.loop.driver.shards
                for s in self.sites:
                    await self._adopt_capabilities(s)
                await self._serve_and_run()
        finally:
            ledger.close()

    async def _serve_and_run(self) -> None:
        runner = await self._serve()
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        try:
            self.notifier.ready(self._status_line())
            await self._run_loops()
            self.finished = not self._stop.is_set()
            if self.options.stay and not self._stop.is_set():
                self._log.info("replay_finished_serving", port=self.port)
                await self._stop.wait()
        finally:
            self.notifier.stopping()
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            await runner.cleanup()

    async def _run_loops(self) -> None:
        tasks = [
            asyncio.create_task(
                s.loop.run(until=s.until, on_cycle=_learn_curves(s), stop=self._stop),
                name=s.loop.site.site_id,
            )
            for s in self.sites
        ]
        # A loop that dies takes the daemon down, loudly; the others stop cleanly first.
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in done if t.exception() is not None]
        if failed:
            self._stop.set()
        if pending:
            await asyncio.wait(pending)
        if failed:
            failed[0].result()
        if self._stop.is_set():
            action = self.loaded.config.daemon.on_shutdown
            for s in self.sites:
                await s.loop.shutdown(action)

    def build_site(self, site: SiteConfig, ledger: SqliteLedger) -> _Site:
        model = _site_model(site)
        clock: Clock
        until: EpochS | None = None
        recorded = [
            f for f in (site.price_feed, site.hashprice_feed) if isinstance(f, RecordedFeedConfig)
        ]
        if self.options.simulated:
            if len(recorded) != 2:
                raise ConfigError(
                    [f"{self.loaded.path}: sites[{site.id}]: --simulated needs recorded feeds"]
                )
            clock, until = self._simulated_clock(site, ledger)
        else:
            clock = SystemClock()
        feeds = SiteFeeds(site.id, clock, self.feed_stats)
        record_dir = self.state_dir / "recordings" / site.id
        price = feeds.add(site.price_feed, ReadingKind.PRICE, record_dir=record_dir / "price")
        hashprice = feeds.add(
            site.hashprice_feed, ReadingKind.HASHPRICE, record_dir=record_dir / "hashprice"
        )
        book = OverrideBook()
        broker = site.broker
        link = feeds.mqtt_link(broker) if broker is not None else None
        if link is not None:
            handler = CommandHandler(
                site.id,
                CommandIntake(
                    site.id,
                    CommandLimits(
                        max_hold_s=site.commands.max_hold_s,
                        max_lead_s=site.commands.max_lead_s,
                        max_mw=model.fleet.nominal_mw,
                    ),
                ),
                book,
                AuditLog(self.state_dir / "audit" / f"{site.id}.jsonl"),
            )
            link.on_command(lambda raw: handler.receive(raw, clock.now()).to_bytes())
        driver = self._driver_factory(site, model.fleet, clock)
        loop = SiteLoop(
            model,
            clock=clock,
            price_feed=price,
            hashprice_feed=hashprice,
            driver=driver,
            ledger=BookedLedger(ledger, self.book),
            cycle_s=self.loaded.config.daemon.cycle_s,
            observer=self.metrics,
            overrides=book,
            audit=CommandAuditLog(
                self.state_dir / "audit" / f"{site.id}-commands.jsonl",
                driver.addresses if isinstance(driver, PyasicDriver | ShardedDriver) else None,
            ),
            dry_run=self.options.dry_run,
            status_sink=None if link is None else _publisher(link),
        )
        self.site_feeds.append(feeds)
        self.metrics.feed_health.update(feeds.health)
        curves = SiteCurves(
            site.id,
            site.curve_book(),
            driver if isinstance(driver, PyasicDriver) else None,
            on_change=lambda c: self.metrics.curves(site.id, c),
            samples_path=self.state_dir / "curves" / f"{site.id}.json",
        )
        return _Site(site, loop, clock, until, curves)

    async def _adopt_capabilities(self, site: _Site) -> None:
        """Discover real miners, read their curves, and plan each with the points it can reach.

        Each group's curve comes from its ``curve_source`` (controller/curves/book.py): firmware
        curves are read here, learned ones replace the config's between cycles.
        """
        driver = site.loop.driver
        if isinstance(driver, ShardedDriver):
            # The workers discover and report what each miner can do; firmware and learned
            # curves need the miners in this process, so a sharded site plans on the config's.
            found = await driver.discover()
            await site.curves.start(site.clock.now())  # the config's curves, logged and exported
            fleet = driver.restrict_to_capabilities()
            site.loop.adopt_fleet(fleet)
            self._log.info("miners_discovered", site=site.config.id, found=found, miners=fleet.size)
            return
        if not isinstance(driver, PyasicDriver):
            await site.curves.start(site.clock.now())  # the config's curves, logged and exported
            return
        found = await driver.discover()
        fleet = await site.curves.start(site.clock.now())
        site.loop.adopt_fleet(fleet)
        self._log.info("miners_discovered", site=site.config.id, found=found, miners=fleet.size)

    def _simulated_clock(self, site: SiteConfig, ledger: SqliteLedger) -> tuple[Clock, EpochS]:
        assert isinstance(site.price_feed, RecordedFeedConfig)
        times = load_recording(site.price_feed.path, PRICE_COLUMN).times
        scenario = self.loaded.config.scenario
        start = scenario.start.timestamp() if scenario and scenario.start else float(times[0])
        until = (
            scenario.end.timestamp()
            if scenario and scenario.end
            else float(times[-1]) + LAST_PRICE_HOLDS_S
        )
        resumed = ledger.last_end(site.id)
        if resumed is not None:
            start = max(start, resumed)
        self._log.info(
            "site_starting",
            site=site.id,
            at=iso(start),
            until=iso(until),
            resumed=resumed is not None,
        )
        return SimulatedClock(start, speed=self.options.speed), until

    # --- supervision -------------------------------------------------------------------

    def stuck_sites(self) -> list[str]:
        """Sites whose current cycle has run longer than ``daemon.cycle_timeout_s``."""
        limit = self.loaded.config.daemon.cycle_timeout_s
        return [s.loop.site.site_id for s in self.sites if s.loop.stuck_for() > limit]

    async def _watchdog(self) -> None:
        """Ping systemd's watchdog, but only while every site loop is making progress."""
        period = (self.notifier.watchdog_s or 30.0) / 2
        while True:
            stuck = self.stuck_sites()
            if stuck:
                if not self._stuck_logged:
                    self._log.error("site_loop_stuck", sites=stuck, watchdog="withheld")
                    self._stuck_logged = True
            else:
                if self._stuck_logged:
                    self._log.info("site_loops_progressing")
                    self._stuck_logged = False
                if self.notifier.watchdog_s is not None:
                    self.notifier.watchdog()
            self.notifier.status(self._status_line())
            await asyncio.sleep(period)

    def _status_line(self) -> str:
        parts = []
        for s in self.sites:
            st = s.loop.last_status
            if st is None:
                parts.append(f"{s.loop.site.site_id}: starting")
            else:
                load = f"{st.load_mw:.2f} of {st.nominal_mw:.2f} MW"
                parts.append(f"{st.site_id}: {st.decision_reason}, {load}")
        return "; ".join(parts) or "no sites"

    # --- reload ------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read and validate the config; adopt what can change live, keep the rest."""
        self.notifier.reloading()
        try:
            new = load_config(self.loaded.path)
        except ConfigError as exc:
            self._log.error("reload_refused", reason="config invalid", errors=exc.messages)
            self.notifier.ready(self._status_line())
            return False
        by_id = {s.id: s for s in new.config.sites}
        if set(by_id) != {s.config.id for s in self.sites}:
            self._log.error("reload_refused", reason="sites added or removed: restart the daemon")
            self.notifier.ready(self._status_line())
            return False
        for s in self.sites:
            fresh = by_id[s.config.id]
            if (fresh.miners, fresh.driver, fresh.price_feed, fresh.hashprice_feed) != (
                s.config.miners,
                s.config.driver,
                s.config.price_feed,
                s.config.hashprice_feed,
            ):
                self._log.error(
                    "reload_refused",
                    site=fresh.id,
                    reason="fleet, driver or feeds changed: restart the daemon",
                )
                self.notifier.ready(self._status_line())
                return False
        assert self.ledger is not None
        self.ledger.config_version = new.version
        for s in self.sites:
            s.config = by_id[s.config.id]
            # The fleet (its curves, restricted to capabilities) is the one in use, not the
            # config's: the driver numbers points by it.
            model = replace(_site_model(s.config), fleet=s.loop.site.fleet)
            s.loop.reconfigure(model, new.config.daemon.cycle_s)
            s.curves.reconfigure(s.config.curves)
        self.loaded = new
        self._log.info("reloaded", config_version=new.version)
        self.notifier.ready(self._status_line())
        return True

    # --- HTTP --------------------------------------------------------------------------

    async def _serve(self) -> web.AppRunner:
        cfg = self.loaded.config.daemon
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(self.registry))
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = cfg.metrics_port if self.options.metrics_port is None else self.options.metrics_port
        site = web.TCPSite(runner, cfg.metrics_host, port)
        await site.start()
        server = site._server  # aiohttp keeps the bound port only there
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        self._log.info("metrics_listening", host=cfg.metrics_host, port=self.port)
        return runner

    async def _healthz(self, _: web.Request) -> web.Response:
        sites = {
            s.loop.site.site_id: {
                "cycles": s.loop.cycles,
                "at": iso(s.loop.last_status.at) if s.loop.last_status else None,
                "decision": s.loop.last_status.decision_reason if s.loop.last_status else None,
                **(
                    {"shards": s.loop.driver.summary()["shards"]}
                    if isinstance(s.loop.driver, ShardedDriver)
                    else {}
                ),
            }
            for s in self.sites
        }
        stuck = self.stuck_sites()
        body = {"run_id": self.run_id, "finished": self.finished, "stuck": stuck, "sites": sites}
        return web.json_response(body, status=503 if stuck else 200)


def _learn_curves(site: _Site) -> Callable[[Plan], Awaitable[None]]:
    """After each cycle: re-read firmware curves when due, file the telemetry as samples,
    and re-plan if a curve changed."""

    async def after(plan: Plan) -> None:
        if site.curves.firmware_due(plan.now, site.config.curves.firmware_refresh_s):
            await site.curves.reread_firmware(plan.now)
        fleet = site.curves.after_cycle(plan.now)
        if fleet is not None:
            site.loop.adopt_fleet(fleet)

    return after


def _publisher(link: MqttLink) -> Callable[[SiteStatus], Awaitable[None]]:
    """Publish each cycle's status, retained, on the site's status topic."""

    async def publish(status: SiteStatus) -> None:
        await link.publish_status(status_document(status))

    return publish


def status_document(status: SiteStatus) -> dict[str, object]:
    """The retained status topic's JSON: state, mode, last decision, feed ages."""
    return {
        "state": "running",
        "mode": status.decision_reason,
        "at": iso(status.at),
        "failsafe": status.failsafe_reason,
        "load_mw": round(status.load_mw, 6),
        "nominal_mw": round(status.nominal_mw, 6),
        "price_usd_per_mwh": None if status.price is None else status.price.value,
        "hashprice_usd_per_ph_day": None if status.hashprice is None else status.hashprice.value,
        "opportunity_cost_usd_per_mwh": status.opportunity_cost_usd_per_mwh,
        "feed_ages_s": {
            feed: None if (age := status.feed_age_s(feed)) is None else round(age, 3)
            for feed in ("price", "hashprice")
        },
        "miners": {
            m.model: {
                "running": m.running,
                "throttled": m.throttled,
                "curtailed": m.curtailed,
                "unreachable": m.unreachable,
            }
            for m in status.models
        },
    }


def _site_model(site: SiteConfig) -> SiteModel:
    return SiteModel(
        site.id, site.fleet(), site.policy_params(), site.supply_contract(), site.hedge_book()
    )


async def run_daemon(loaded: LoadedConfig, options: DaemonOptions) -> None:
    """Run the daemon: SIGTERM and SIGINT stop it gracefully, SIGHUP reloads the config."""
    daemon = Daemon(loaded, options)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    try:
        await daemon.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
