"""The daemon: one site loop per site, the durable ledger, and the metrics endpoint.

Over 300 lines: wiring, reload and health of the object that owns the sites' lifecycles.

``hashspark run CONFIG`` wires it on the system clock. With ``--simulated`` every site runs
on its own simulated clock from where its ledger ends (or the scenario's start) to the
scenario's end: the same code path, faster than real time, and resumable after a crash.

Signals: SIGTERM and SIGINT let in-flight cycles finish, leave the miners as
``daemon.on_shutdown`` says, settle and flush the ledger, and exit 0. SIGHUP reloads the
config: every change that can apply live does (policy, fail-safe, commands' bounds, log
level, cycle period...); what is read only at start keeps its old value and is named
(``reload_partial``); a config that does not validate is refused and the daemon keeps the
old one.
SIGUSR1 logs every asyncio task's stack (``task_stack``), to see into a stuck cycle.

Across a restart the daemon keeps, in its state directory, each feed's last reading
(``readings/``) and each site's active commands (``commands/``).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from adapters.control.apply import AuditLog, CommandHandler
from adapters.control.auth import CommandAuth
from adapters.control.command_audit import CommandAuditLog
from adapters.control.commands import CommandIntake, CommandLimits
from adapters.control.persist import COMMANDS_DIR, ActiveCommands
from adapters.feeds.memory import READINGS_DIR
from adapters.feeds.mqtt import MqttLink
from adapters.feeds.payloads import ReadingKind
from adapters.feeds.recorded import RecordedFeedConfig, load_recording
from adapters.feeds.site import SiteFeeds
from adapters.feeds.store import FeedStats
from adapters.ledger.sqlite import LEDGER_FILE, SqliteLedger
from adapters.metrics import BookedLedger, Metrics, PnlBook
from controller.app.assemble import assemble, site_model
from controller.app.bitcoin_feeds import bitcoin_configs, bitcoin_feeds
from controller.app.currencies import price_column
from controller.app.currency_feeds import SiteCurrency, site_currency, site_currency_feeds
from controller.app.drivers import build_driver
from controller.app.replay.runner import LAST_PRICE_HOLDS_S
from controller.config import (
    ConfigError,
    HashsparkConfig,
    LoadedConfig,
    SiteConfig,
    load_config,
)
from controller.decision.policy import Plan
from controller.domain import EpochS, FleetSpec, iso
from controller.runtime import logs
from controller.runtime.clocks.simulated import SimulatedClock
from controller.runtime.clocks.system import SystemClock
from controller.runtime.http import bind_problem, serve
from controller.runtime.notify import Notifier
from controller.runtime.override_book import OverrideBook
from controller.runtime.ports import Addressed, Clock, Discovers, MinerDriver, ReportsShards
from controller.runtime.retry import reap
from controller.runtime.site_curves import CurveDriver, SiteCurves
from controller.runtime.site_loop import SiteLoop
from controller.runtime.storage import StorageHealth
from controller.runtime.supervisor import Supervised, Supervisor
from controller.runtime.taskdump import dump_tasks
from controller.status import SiteStatus, decision_document, status_document

#: Daemon settings read only at start: a reload names a change and keeps the old value.
#: (Rebinding the metrics endpoint live could fail on the new address and leave the site
#: unobserved; a restart fails loudly at start instead, where systemd sees it.)
DAEMON_RESTART_NEEDED = ("state_dir", "metrics_host", "metrics_port", "ledger_sync")
#: A site's settings read only at start: its fleet and driver (discovered, connected), its
#: feeds and broker (links built), its sharding (workers), its prices' currency and rate
#: (the converting feed is built with them).
SITE_RESTART_NEEDED = (
    "miners",
    "driver",
    "price_feed",
    "hashprice_feed",
    "day_ahead_feed",
    "mqtt",
    "sharding",
    "currency",
    "price_currency",
    "exchange_rate",
)

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
    intake: CommandIntake | None  # None: the site takes no commands (no broker)


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
        self.storage = StorageHealth()  # every write to the state directory reports here
        self.metrics = Metrics(self.registry, self.book, self.feed_stats, self.storage)
        self.notifier = notifier or Notifier()
        self.ledger: SqliteLedger | None = None
        self.port: int | None = None
        self.sites: list[_Site] = []
        self.finished = False  # every simulated site reached its end
        self._driver_factory = driver_factory or build_driver
        self._log = structlog.get_logger("hashspark.daemon").bind(run_id=self.run_id)
        self.supervisor = Supervisor(
            self.notifier,
            cycle_timeout_s=lambda: self.loaded.config.daemon.cycle_timeout_s,
            log=self._log,
        )
        self._stop = self.supervisor.stop
        self.site_feeds: list[SiteFeeds] = []
        self.currencies: dict[str, SiteCurrency] = {}  # what each site's figures are in

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
            started_at=SystemClock().now(),  # the run's wall time, simulated or not
        )
        self.ledger = ledger
        try:
            self.book.seed(ledger.records())
            async with AsyncExitStack() as stack:
                self.sites = [self.build_site(site, ledger) for site in self.loaded.config.sites]
                for feeds in self.site_feeds:
                    await stack.enter_async_context(feeds.run())
                for s in self.sites:
                    driver = s.loop.driver
                    if isinstance(driver, AbstractAsyncContextManager):  # e.g. a broker link
                        await stack.enter_async_context(driver)
                    if isinstance(driver, ReportsShards):
                        self.metrics.shards[s.config.id] = driver.shards
                for s in self.sites:
                    await self._adopt_capabilities(s)
                await self._serve_and_run()
        finally:
            ledger.close()

    async def _serve_and_run(self) -> None:
        cfg = self.loaded.config.daemon
        port = cfg.metrics_port if self.options.metrics_port is None else self.options.metrics_port
        try:
            runner, self.port = await serve(self.registry, self.health, cfg.metrics_host, port)
        except OSError as exc:  # in use, unresolvable, not this host's: one line, exit 2
            problem = bind_problem(exc, cfg.metrics_host, port)
            raise ConfigError([f"{self.loaded.path}: {problem}"]) from None
        self.supervisor.loops = [Supervised(s.loop, s.until, _learn_curves(s)) for s in self.sites]
        watchdog = asyncio.create_task(self.supervisor.watchdog(), name="watchdog")
        try:
            self.notifier.ready(self.supervisor.status_line())
            await self.supervisor.run_loops(lambda: self.loaded.config.daemon.on_shutdown)
            self.finished = not self._stop.is_set()
            if self.options.stay and not self._stop.is_set():
                self._log.info("replay_finished_serving", port=self.port)
                await self._stop.wait()
        finally:
            self.notifier.stopping()
            await reap(watchdog)
            await runner.cleanup()

    def build_site(self, site: SiteConfig, ledger: SqliteLedger) -> _Site:
        model = site_model(site)
        clock: Clock
        until: EpochS | None = None
        feeds_of_site = (site.price_feed, site.hashprice_feed, *bitcoin_configs(site))
        if self.options.simulated:
            if not all(isinstance(f, RecordedFeedConfig) for f in feeds_of_site if f is not None):
                raise ConfigError(
                    [f"{self.loaded.path}: sites[{site.id}]: --simulated needs recorded feeds"]
                )
            clock, until = self._simulated_clock(site, ledger)
        else:
            clock = SystemClock()
        feeds = SiteFeeds(
            site.id, clock, self.feed_stats, storage=self.storage, price_currency=site.prices_in
        )
        record_dir = self.state_dir / "recordings" / site.id
        remember_dir = self.state_dir / READINGS_DIR / site.id
        # A price remembered in one currency is never restored into a feed of another.
        ccy = "" if site.prices_in == "USD" else f".{site.prices_in.lower()}"
        price = feeds.add(
            site.price_feed,
            ReadingKind.PRICE,
            record_dir=record_dir / "price",
            remember=remember_dir / f"price{ccy}.json",
            max_age_s=site.failsafe.price_max_age_s,
        )
        btc_usd, difficulty, fees, hashprice = bitcoin_feeds(
            site, feeds, record_dir=record_dir, remember_dir=remember_dir
        )
        day_ahead = (
            None
            if site.day_ahead_feed is None
            else feeds.add(
                site.day_ahead_feed,
                ReadingKind.PRICE,
                record_dir=record_dir / "day_ahead",
                remember=remember_dir / f"day_ahead{ccy}.json",
                max_age_s=site.failsafe.price_max_age_s,
            )
        )
        price, hashprice, day_ahead = site_currency_feeds(
            self.loaded.path, site, price, hashprice, day_ahead, stats=self.feed_stats
        )
        self.currencies[site.id] = self.metrics.currencies[site.id] = site_currency(site, price)
        book = OverrideBook()
        broker = site.broker
        link = feeds.mqtt_link(broker) if broker is not None else None
        intake: CommandIntake | None = None
        if link is not None:
            # Active commands survive a restart: kept on disk on every change (before the
            # ack), put back now unless they ended meanwhile.
            active = ActiveCommands(
                self.state_dir / COMMANDS_DIR / f"{site.id}.json", site.id, self.storage
            )
            restored = active.restore(book, clock.now())
            book.on_change = active.save
            if not site.commands.issuers:
                self._log.warning(
                    "commands_unauthenticated",
                    site=site.id,
                    note="any client the broker admits may command the site: sign commands "
                    "with [sites.commands.issuers] (docs/configuration.md)",
                )
            intake = CommandIntake(
                site.id,
                _limits(site, model.fleet.nominal_mw),
                auth=CommandAuth.from_config(site.commands),
            )
            intake.remember([o.id for o in restored])
            handler = CommandHandler(
                site.id,
                intake,
                book,
                AuditLog(self.state_dir / "audit" / f"{site.id}.jsonl", self.storage),
                stats=self.metrics.operator_commands,
            )
            link.on_command(
                lambda raw: handler.handle(raw, clock.now()),
                refused=lambda code: handler.refuse(code, clock.now()),
                idle=lambda: handler.idle(clock.now()),
            )
        driver = self._driver_factory(site, model.fleet, clock)
        loop = assemble(
            model,
            clock=clock,
            price_feed=price,
            hashprice_feed=hashprice,
            day_ahead_feed=day_ahead,
            btc_usd_feed=btc_usd,
            difficulty_feed=difficulty,
            fees_feed=fees,  # shown in the status and metrics; it settles nothing itself
            driver=driver,
            ledger=BookedLedger(ledger, self.book),
            cycle_s=self.loaded.config.daemon.cycle_s,
            observer=self.metrics,
            overrides=book,
            audit=CommandAuditLog(
                self.state_dir / "audit" / f"{site.id}-commands.jsonl",
                driver.addresses if isinstance(driver, Addressed) else None,
                self.storage,
            ),
            dry_run=self.options.dry_run,
            status_sink=None if link is None else _publisher(link, driver),
            storage=self.storage,
            max_unwritten=self.loaded.config.daemon.ledger_max_unwritten,
        )
        self.metrics.backlogs[site.id] = loop
        # Time since the ledger's last interval for the site is booked as down (what accrues
        # regardless of the daemon) up to the first interval this run settles.
        loop.resume_from(ledger.last_end(site.id))
        self.site_feeds.append(feeds)
        self.metrics.feed_health.update(feeds.health)
        curves = SiteCurves(
            site.id,
            site.curve_book(),
            driver if isinstance(driver, CurveDriver) else None,
            on_change=lambda c: self.metrics.curves(site.id, c),
            samples_path=self.state_dir / "curves" / f"{site.id}.json",
            storage=self.storage,
        )
        return _Site(site, loop, clock, until, curves, intake)

    async def _adopt_capabilities(self, site: _Site) -> None:
        """Discover real miners, read their curves, and plan each with the points it can reach.

        Each group's curve comes from its ``curve_source`` (controller/curves/book.py): firmware
        curves are read here, learned ones replace the config's between cycles.
        """
        driver = site.loop.driver
        if isinstance(driver, CurveDriver):
            # Miners driven from this process: discover them, then plan on each group's
            # curve from its source (firmware curves are read now, learned ones later).
            found = await driver.discover()
            fleet = await site.curves.start(site.clock.now())
        elif isinstance(driver, Discovers):
            # The workers of a sharded site discover and report what each miner can do;
            # firmware and learned curves need the miners in this process, so such a site
            # plans on the config's curves.
            found = await driver.discover()
            await site.curves.start(site.clock.now())  # the config's curves, logged and exported
            fleet = driver.restrict_to_capabilities()
        else:
            await site.curves.start(site.clock.now())  # the config's curves, logged and exported
            return
        site.loop.adopt_fleet(fleet)
        self._log.info("miners_discovered", site=site.config.id, found=found, miners=fleet.size)

    def _simulated_clock(self, site: SiteConfig, ledger: SqliteLedger) -> tuple[Clock, EpochS]:
        assert isinstance(site.price_feed, RecordedFeedConfig)
        times = load_recording(site.price_feed.path, price_column(site.prices_in)).times
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

    def stuck_sites(self) -> list[str]:
        """Sites whose current cycle has run longer than ``daemon.cycle_timeout_s``."""
        return self.supervisor.stuck_sites()

    # --- reload ------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read and validate the config; apply every change that can apply live.

        What is read only at start (``RESTART_NEEDED``: the ledger, the metrics endpoint, a
        site's fleet, driver, feeds and broker) keeps its old value until a restart, and the
        reload names it (``reload_partial``); otherwise it logs ``reloaded``. A config that
        does not validate, or adds or removes sites, is refused whole (``reload_refused``).
        """
        self.notifier.reloading()
        try:
            new = load_config(self.loaded.path)
        except ConfigError as exc:
            self._log.error("reload_refused", reason="config invalid", errors=exc.messages)
            self.notifier.ready(self.supervisor.status_line())
            return False
        except Exception as exc:  # e.g. RecursionError from TOML nested too deep: a reload
            # must never leave the daemon "reloading" with a traceback on stderr
            self._log.error(
                "reload_refused",
                reason="config unreadable",
                errors=[f"{self.loaded.path}: {type(exc).__name__} while reading the config"],
            )
            self.notifier.ready(self.supervisor.status_line())
            return False
        by_id = {s.id: s for s in new.config.sites}
        if set(by_id) != {s.config.id for s in self.sites}:
            self._log.error("reload_refused", reason="sites added or removed: restart the daemon")
            self.notifier.ready(self.supervisor.status_line())
            return False
        config, pending = self._in_force(new.config, by_id)
        assert self.ledger is not None
        logs.set_level(config.daemon.log_level)
        for s in self.sites:
            s.config = next(c for c in config.sites if c.id == s.config.id)
            # The fleet (its curves, restricted to capabilities) is the one in use, not the
            # config's: the driver numbers points by it.
            model = replace(site_model(s.config), fleet=s.loop.site.fleet)
            s.loop.reconfigure(model, config.daemon.cycle_s)
            s.loop.max_unwritten = config.daemon.ledger_max_unwritten
            s.curves.reconfigure(s.config.curves)
            if s.intake is not None:
                s.intake.limits = _limits(s.config, model.fleet.nominal_mw)
                s.intake.auth = CommandAuth.from_config(s.config.commands)
        # After the sites: an interval split on the old terms is written under the old version
        # (one a cycle in flight splits as it ends is written under the new one).
        self.ledger.config_version = new.version
        self.loaded = replace(new, config=config)
        if pending:
            self._log.warning(
                "reload_partial",
                config_version=new.version,
                restart_needed=pending,
                note="these keep their old values until the daemon restarts",
            )
        else:
            self._log.info("reloaded", config_version=new.version)
        self.notifier.ready(self.supervisor.status_line())
        return True

    def _in_force(
        self, new: HashsparkConfig, by_id: dict[str, SiteConfig]
    ) -> tuple[HashsparkConfig, list[str]]:
        """``new`` with the old values of what needs a restart, and the names of those."""
        old = self.loaded.config
        overridden = {
            "state_dir": self.options.state_dir is not None,  # --state-dir wins anyway
            "metrics_port": self.options.metrics_port is not None,  # --metrics-port wins
        }
        pending: list[str] = []
        kept_daemon: dict[str, object] = {}
        for key in DAEMON_RESTART_NEEDED:
            before, after = getattr(old.daemon, key), getattr(new.daemon, key)
            kept_daemon[key] = before
            if before != after and not overridden.get(key, False):
                pending.append(f"daemon.{key}")
        scenario = new.scenario
        if self.options.simulated and new.scenario != old.scenario:
            scenario = old.scenario  # the simulated clocks were set from it at start
            pending.append("scenario")
        sites: list[SiteConfig] = []
        for s in self.sites:
            fresh = by_id[s.config.id]
            kept = {
                key: getattr(s.config, key)
                for key in SITE_RESTART_NEEDED
                if getattr(fresh, key) != getattr(s.config, key)
            }
            pending += [f"sites[{fresh.id}].{key}" for key in kept]
            sites.append(fresh.model_copy(update=kept) if kept else fresh)
        config = new.model_copy(
            update={
                "daemon": new.daemon.model_copy(update=kept_daemon),
                "scenario": scenario,
                "sites": tuple(sites),
            }
        )
        return config, pending

    # --- HTTP --------------------------------------------------------------------------

    def health(self) -> tuple[dict[str, object], int]:
        """``/healthz``: each site's cycles and decision, and why (the reason, the inputs,
        the commands not yet over, each group's counts and economics); 503 while stuck."""
        sites = {
            s.loop.site.site_id: {
                "cycles": s.loop.cycles,
                "at": iso(s.loop.last_status.at) if s.loop.last_status else None,
                "decision": s.loop.last_status.decision_reason if s.loop.last_status else None,
                **(decision_document(s.loop.last_status) if s.loop.last_status else {}),
                "currency": self.currencies[s.config.id].document(),
                **(
                    {k: v for k, v in s.loop.driver.summary().items() if k in _SHARDED_HEALTH}
                    if isinstance(s.loop.driver, ReportsShards)
                    else {}
                ),
            }
            for s in self.sites
        }
        stuck = self.stuck_sites()
        body = {"run_id": self.run_id, "finished": self.finished, "stuck": stuck, "sites": sites}
        return body, 503 if stuck else 200


def _limits(site: SiteConfig, nominal_mw: float) -> CommandLimits:
    """The bounds on the site's commands (a demand response above its nominal MW is a typo)."""
    return CommandLimits(
        max_hold_s=site.commands.max_hold_s,
        max_lead_s=site.commands.max_lead_s,
        max_mw=nominal_mw,
    )


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


#: What ``/healthz`` shows of a sharded site: its shards, and the planner lease (who leads).
_SHARDED_HEALTH = ("shards", "planner")


def _publisher(link: MqttLink, driver: object) -> Callable[[SiteStatus], Awaitable[None]]:
    """Publish each cycle's status, retained, on the site's status topic; a standby planner
    of a sharded site (not holding the lease) publishes none."""

    async def publish(status: SiteStatus) -> None:
        if isinstance(driver, ReportsShards) and not driver.leading():
            return
        await link.publish_status(status_document(status))

    return publish


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
