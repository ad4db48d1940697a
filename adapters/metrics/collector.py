"""The Prometheus collector: snapshots and P&L read at scrape time, events counted as pushed.

Over 300 lines: one collector is one scrape; each family it yields is a few lines, and
splitting them by topic would spread one scrape's consistency over modules.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.control.rejections import CommandStats
from adapters.feeds.derived import DIFFICULTY_UNIT
from adapters.feeds.health import FeedHealth, FeedState
from adapters.feeds.store import FeedStats
from adapters.metrics.book import PnlBook
from adapters.metrics.table import METRICS, SPEC
from controller.curves.book import GroupCurve
from controller.decision.reconcile import DispatchReport
from controller.runtime.ports import ShardView
from controller.runtime.redact import scrub
from controller.runtime.storage import STORAGE_KINDS, StorageHealth
from controller.status import SiteStatus


class Backlog(Protocol):
    """A site loop's settled intervals not in the ledger yet (``SiteLoop``)."""

    @property
    def unwritten(self) -> int:
        """Held in memory until the ledger takes them."""
        ...

    @property
    def dropped(self) -> int:
        """Dropped because the memory bound was full."""
        ...


class CurrencyView(Protocol):
    """What a site's figures are in, and its prices' conversion (``SiteCurrency``)."""

    @property
    def currency(self) -> str:
        """The currency of its money metrics and ledger."""
        ...

    @property
    def price_currency(self) -> str:
        """What its price feed quotes."""
        ...

    @property
    def rate_pair(self) -> str | None:
        """``EUR/USD``; None without a conversion."""
        ...

    @property
    def rate_source(self) -> str:
        """Where the rate comes from (a recording's name, or a constant's assumption)."""
        ...

    @property
    def applied_rate(self) -> float | None:
        """The pair's rate applied to the newest price."""
        ...


class Metrics(Collector):
    """The registry's view of the daemon: snapshots and P&L from here, events pushed in."""

    def __init__(
        self,
        registry: CollectorRegistry,
        book: PnlBook,
        feeds: FeedStats | None = None,
        storage: StorageHealth | None = None,
    ) -> None:
        self.book = book
        self.feeds = feeds or FeedStats()
        self.storage = storage or StorageHealth()
        self.backlogs: dict[str, Backlog] = {}  # each site's intervals not in the ledger yet
        self.feed_health: dict[str, FeedHealth] = {}
        self.operator_commands = CommandStats()  # operator and grid commands received
        self.shards: dict[str, Sequence[ShardView]] = {}  # sharded sites' shards, by site
        self.currencies: dict[str, CurrencyView] = {}  # what each site's figures are in
        self._status: dict[str, SiteStatus] = {}
        self._curves: dict[str, tuple[GroupCurve, ...]] = {}
        self._commands = Counter(
            "hashspark_commands",
            SPEC["hashspark_commands"].help,
            ("site", "outcome"),
            registry=registry,
        )
        self._decisions = Counter(
            "hashspark_decisions",
            SPEC["hashspark_decisions"].help,
            ("site", "reason"),
            registry=registry,
        )
        self._ledger_errors = Counter(
            "hashspark_ledger_write_errors",
            SPEC["hashspark_ledger_write_errors"].help,
            ("site",),
            registry=registry,
        )
        self._cycle = Histogram(
            "hashspark_cycle_duration_seconds",
            SPEC["hashspark_cycle_duration_seconds"].help,
            ("site",),
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self._confirm = Histogram(
            "hashspark_command_confirmation_seconds",
            SPEC["hashspark_command_confirmation_seconds"].help,
            ("site",),
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
        )
        registry.register(self)

    # --- LoopObserver ------------------------------------------------------------------

    def status(self, status: SiteStatus) -> None:
        """Keep the site's latest status for the next scrape."""
        self._status[status.site_id] = status

    def cycle_finished(
        self, site_id: str, duration_s: float, decision_reason: str, report: DispatchReport | None
    ) -> None:
        """Count the decision, time the cycle, count command outcomes."""
        self._cycle.labels(site_id).observe(duration_s)
        self._decisions.labels(site_id, decision_reason).inc()
        if report is None:
            return
        for outcome, n in report.counts().items():
            self._commands.labels(site_id, outcome).inc(n)
        for latency in report.confirmation_s:
            self._confirm.labels(site_id).observe(latency)

    def curves(self, site_id: str, curves: tuple[GroupCurve, ...]) -> None:
        """The curves a site's groups plan with now (at start and whenever one changes)."""
        self._curves[site_id] = curves

    def ledger_write_failed(self, site_id: str) -> None:
        """Count a refused ledger write."""
        self._ledger_errors.labels(site_id).inc()

    # --- Collector ---------------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """Nothing up front: the families depend on the sites and instruments present."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Families computed from the P&L book and the latest statuses."""
        yield from self._pnl()
        yield from self._gauges()
        yield from self._curve_gauges()
        yield from self._feeds()
        yield from self._shard_events()
        yield from self._storage()
        yield from self._deferred()
        yield from self._currencies()

    def _currencies(self) -> Iterator[Metric]:
        spec = SPEC["hashspark_site_currency_info"]
        info = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
        spec = SPEC["hashspark_exchange_rate"]
        rate = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
        for site, c in sorted(self.currencies.items()):
            info.add_metric([site, c.currency, c.price_currency, c.rate_source], 1.0)
            if c.rate_pair is not None and c.applied_rate is not None:
                rate.add_metric([site, c.rate_pair], c.applied_rate)
        yield from (info, rate)

    def _storage(self) -> Iterator[Metric]:
        spec = SPEC["hashspark_storage_failures"]
        failures = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
        spec = SPEC["hashspark_storage_ok"]
        ok = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
        for what in STORAGE_KINDS:
            failures.add_metric([what], self.storage.failures[what])
            ok.add_metric([what], 1.0 if self.storage.ok[what] else 0.0)
        spec = SPEC["hashspark_ledger_unwritten_intervals"]
        unwritten = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
        spec = SPEC["hashspark_ledger_intervals_dropped"]
        dropped = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
        for site, backlog in sorted(self.backlogs.items()):
            unwritten.add_metric([site], backlog.unwritten)
            dropped.add_metric([site], backlog.dropped)
        yield from (failures, ok, unwritten, dropped)

    def _deferred(self) -> Iterator[Metric]:
        spec = SPEC["hashspark_miner_commands_deferred"]
        deferred = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
        for site, s in sorted(self._status.items()):
            for reason, n in s.pacing.deferred:
                deferred.add_metric([site, reason], n)
        yield deferred

    def _shard_events(self) -> Iterator[Metric]:
        spec = SPEC["hashspark_shard_unmanaged_events"]
        events = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
        for site, shards in sorted(self.shards.items()):
            for shard in shards:
                events.add_metric([site, str(shard.number)], shard.unmanaged_events)
        yield events

    def _feeds(self) -> Iterator[Metric]:
        def counter(name: str) -> CounterMetricFamily:
            return CounterMetricFamily(name, SPEC[name].help, labels=SPEC[name].labels)

        accepted = counter("hashspark_feed_readings_accepted")
        for feed, n in sorted(self.feeds.accepted.items()):
            accepted.add_metric([scrub(feed)], n)
        rejected = counter("hashspark_feed_readings_rejected")
        for (feed, reason), n in sorted(self.feeds.rejected.items()):
            rejected.add_metric([scrub(feed), str(reason)], n)
        outages = counter("hashspark_feed_outages")
        spec = SPEC["hashspark_feed_up"]
        up = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
        for feed, health in sorted(self.feed_health.items()):
            up.add_metric([scrub(feed)], 1.0 if health.state is FeedState.UP else 0.0)
            outages.add_metric([scrub(feed)], health.outages)
        yield from (accepted, rejected, up, outages)
        received = counter("hashspark_operator_commands")
        for (site, status, code), n in sorted(self.operator_commands.counts.items()):
            received.add_metric([site, status, code], n)
        yield received

    def _curve_gauges(self) -> Iterator[Metric]:
        g = {
            spec.name: GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
            for spec in METRICS
            if spec.name.startswith("hashspark_curve_")
        }
        for site, curves in sorted(self._curves.items()):
            for c in curves:
                group = str(c.group)
                g["hashspark_curve_info"].add_metric(
                    [site, group, c.model, c.firmware, c.source.value], 1.0
                )
                g["hashspark_curve_learning_samples"].add_metric([site, group], c.learned_samples)
                for j, (hashrate_th, power_w) in enumerate(c.points, start=1):
                    g["hashspark_curve_point_power_watts"].add_metric(
                        [site, group, str(j)], power_w
                    )
                    g["hashspark_curve_point_hashrate_terahashes"].add_metric(
                        [site, group, str(j)], hashrate_th
                    )
        yield from g.values()

    def _pnl(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily] = {}

        def family(name: str) -> CounterMetricFamily:
            if name not in families:
                spec = SPEC[name]
                families[name] = CounterMetricFamily(name, spec.help, labels=spec.labels)
            return families[name]

        for (name, site, direction), value in sorted(self.book.money.items()):
            family(name).add_metric([site, direction], value)
        for (name, site, inst, direction), value in sorted(self.book.instrument.items()):
            family(name).add_metric([site, inst, direction], value)
        for (name, site), value in sorted(self.book.energy.items()):
            family(name).add_metric([site], value)
        yield from families.values()

    def _gauges(self) -> Iterator[Metric]:
        g = {
            spec.name: GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
            for spec in METRICS
            if spec.kind == "gauge"
            and spec.name not in _OWN_GAUGES
            and not spec.name.startswith("hashspark_curve_")
        }
        for site, s in sorted(self._status.items()):
            if s.price is not None:
                g["hashspark_spot_price_usd_per_mwh"].add_metric([site], s.price.value)
            if s.hashprice is not None:
                g["hashspark_hashprice_usd_per_ph_day"].add_metric([site], s.hashprice.value)
            if s.opportunity_cost_usd_per_mwh is not None:
                g["hashspark_opportunity_cost_usd_per_mwh"].add_metric(
                    [site], s.opportunity_cost_usd_per_mwh
                )
            if s.spread_usd_per_mwh is not None:
                g["hashspark_spread_usd_per_mwh"].add_metric([site], s.spread_usd_per_mwh)
            if s.hedged_share is not None:
                g["hashspark_hedged_share"].add_metric([site], s.hedged_share)
            if s.margin_floor_usd_per_mwh is not None:
                g["hashspark_margin_floor_usd_per_mwh"].add_metric(
                    [site], s.margin_floor_usd_per_mwh
                )
            g["hashspark_load_mw"].add_metric([site], s.load_mw)
            if s.draw_mw is not None:
                g["hashspark_draw_mw"].add_metric([site], s.draw_mw)
            g["hashspark_curtailed_mw"].add_metric([site], s.curtailed_mw)
            g["hashspark_nominal_mw"].add_metric([site], s.nominal_mw)
            g["hashspark_ramp_limited_miners"].add_metric([site], s.ramp_limited)
            g["hashspark_paced_miners"].add_metric([site], s.pacing.paced)
            g["hashspark_miners_in_backoff"].add_metric([site], s.pacing.in_backoff)
            g["hashspark_last_cycle_timestamp_seconds"].add_metric([site], s.at)
            _model_gauges(g, site, s)
            _grid_and_failsafe_gauges(g, site, s)
        for site, shards in sorted(self.shards.items()):
            for shard in shards:
                g["hashspark_shard_managed"].add_metric(
                    [site, str(shard.number)], 1.0 if shard.managed else 0.0
                )
            unmanaged = sum(shard.miners for shard in shards if not shard.managed)
            g["hashspark_shard_unmanaged_miners"].add_metric([site], unmanaged)
        yield from g.values()


#: Gauges with a collector of their own.
_OWN_GAUGES = frozenset(
    {
        "hashspark_feed_up",
        "hashspark_storage_ok",
        "hashspark_ledger_unwritten_intervals",
        "hashspark_site_currency_info",
        "hashspark_exchange_rate",
    }
)


def _model_gauges(g: dict[str, GaugeMetricFamily], site: str, s: SiteStatus) -> None:
    """Per-model prices and states, and the feed ages."""
    for m in s.models:
        if m.energy_hashprice_usd_per_mwh is not None:
            g["hashspark_energy_hashprice_usd_per_mwh"].add_metric(
                [site, m.model], m.energy_hashprice_usd_per_mwh
            )
        if m.breakeven_usd_per_mwh is not None:
            g["hashspark_breakeven_usd_per_mwh"].add_metric(
                [site, m.model], m.breakeven_usd_per_mwh
            )
        for state in ("running", "throttled", "curtailed", "unreachable"):
            g["hashspark_miners"].add_metric([site, m.model, state], getattr(m, state))
    for group in s.groups:  # dispatch uses every point: so does the breakeven
        for p in group.points:
            if p.breakeven_usd_per_mwh is not None:
                g["hashspark_point_breakeven_usd_per_mwh"].add_metric(
                    [site, group.name, f"{p.power_w:g}"], p.breakeven_usd_per_mwh
                )
    for feed in ("price", "hashprice", *(name for name, _ in s.bitcoin)):
        age = s.feed_age_s(feed)
        if age is not None:
            g["hashspark_feed_age_seconds"].add_metric([site, feed], age)
    for name, reading in s.bitcoin:
        metric, scale = _BITCOIN_GAUGES[name]
        g[metric].add_metric([site], reading.value * scale)


#: Each Bitcoin input's gauge and its scale (the difficulty is read in units of 1e12).
_BITCOIN_GAUGES = {
    "btc_usd": ("hashspark_btc_price_usd_per_btc", 1.0),
    "difficulty": ("hashspark_bitcoin_difficulty", DIFFICULTY_UNIT),
    "fees": ("hashspark_bitcoin_fees_btc_per_block", 1.0),
}


def _grid_and_failsafe_gauges(g: dict[str, GaugeMetricFamily], site: str, s: SiteStatus) -> None:
    """Active grid programs with their compliance, and the fail-safe state."""
    for gp in s.grid:
        if gp.target_mw is not None:
            g["hashspark_grid_target_mw"].add_metric([site, gp.program], gp.target_mw)
        if gp.compliant is not None:
            value = 1.0 if gp.compliant else 0.0
            g["hashspark_grid_compliant"].add_metric([site, gp.program], value)
    active = s.decision_reason.removeprefix("failsafe_") if s.failsafe_reason else None
    for action in ("hold", "curtail", "run"):
        g["hashspark_failsafe_active"].add_metric([site, action], 1.0 if action == active else 0.0)
