"""The live-path replay: the daemon's own site loop against simulated ASICs, through pyasic.

Over 300 lines: fleet start, discovery, the loop and the ramp meter are one run.

``hashspark replay SCENARIO --live-path`` starts a simulated fleet on loopback addresses
(real LuxOS, stock Antminer or Braiins OS+ protocols), commands it through the production
``PyasicDriver``, publishes the recorded feeds (the Bitcoin ones too, for its Bitcoin
instruments) through a live feed adapter (MQTT through the site's broker when it has one,
else the in-process adapter) and runs ``SiteLoop`` on a ``ReplayClock``: actuation,
telemetry confirmation, ramp limits and faults are real. The ledger books what the driver
observed, as the daemon does; what the miners' resume ramps held back is read from the
simulator and reported beside it (``live_path.ramp_losses``).
"""

from __future__ import annotations

import asyncio
import bisect
import errno
import resource
import socket
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any

from adapters.feeds.store import FeedStats
from adapters.ledger.memory import MemoryLedger
from adapters.miners.config import PyasicDriverConfig
from adapters.miners.driver import PyasicDriver
from controller.accounting.report import totals
from controller.app.assemble import assemble, scenario_events
from controller.app.replay.decisions import CycleView
from controller.app.replay.live_feeds import LiveFeeds
from controller.app.replay.report import LivePath, RampLosses
from controller.app.replay.runner import ReplayError, ReplayInputs, ReplayResult, replay_report
from controller.decision.policy import Plan
from controller.decision.reconcile import DispatchReport
from controller.domain import EpochS
from controller.records import IntervalRecord, IntervalTable
from controller.runtime.clocks.replay import LoopClock, ReplayClock
from controller.status import SiteStatus
from simulators.miners.fleet import NEEDS_ROOT, Fleet, MinerSpec, consecutive_ips
from simulators.miners.fleet_file import FaultConfig
from simulators.miners.host import PortPermissionError
from simulators.miners.meter import Meter, snapshot
from simulators.miners.miner import Family
from simulators.miners.models import MODELS
from simulators.miners.state import DEFAULT_RAMP_S

DEFAULT_SPEED = 10.0  #: a 90 s resume ramp takes 9 wall seconds; a 3 s stop 0.3 s
DEFAULT_IP_START = "127.50.0.1"
FAMILY_CHOICES = ("luxos", "antminer", "braiins", "mixed", "auto")
#: ``mixed``: the three families round robin. ``auto`` resolves to ``mixed`` where stock
#: Antminers can listen on port 80, else to the families that need no privileged port.
MIXED = (Family.LUXOS, Family.ANTMINER, Family.BRAIINS)
#: The fleet starts and is discovered this long (simulated) before the window opens.
PREPARE_S = 3600.0
#: Discovery passes before a miner that never answered stops the replay.
DISCOVERY_ROUNDS = 3
#: Boot settle before the first command: a miner that booted within two simulated seconds
#: and refuses a command reads as rebooted.
BOOT_SETTLE_S = 5.0

#: Progress callback: simulated time and the net P&L settled so far.
Progress = Callable[[EpochS, float], None]
#: Called after every cycle with its plan and the meter's reading (what ``GET /meter`` serves).
MeterProbe = Callable[[Plan, dict[str, Any]], None]
#: Called after every cycle with its plan, its status and each miner's family.
DecisionProbe = Callable[[CycleView], None]


def live_driver_config() -> PyasicDriverConfig:
    """The driver settings a live-path replay uses when the site has no pyasic section.

    The simulated fleet shares the CPU with the driver, so deadlines are generous and
    fewer calls are in flight than on a real site: each call's deadline starts once it
    holds the semaphore, and 200 calls sharing a busy core all time out together.
    """
    return PyasicDriverConfig.model_validate(
        {
            "type": "pyasic",
            "concurrency": 50,
            "call_timeout_s": 20.0,
            "discovery_timeout_s": 30.0,
            "confirm_timeout_s": 30.0,
            "confirm_poll_s": 0.1,
            "retry_attempts": 2,
            "retry_base_s": 0.05,
            "retry_cap_s": 0.5,
            "resume_batch_size": 200,
        }
    )


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """How to run the live path."""

    speed: float = DEFAULT_SPEED  # simulated s per wall s while the clock runs
    family: str = "luxos"  # luxos | antminer | braiins | mixed (round robin) | auto, or a+b
    ip_start: str = DEFAULT_IP_START
    resume_ramp_s: float = DEFAULT_RAMP_S  # the simulated miners' resume ramp
    meter_port: int = 0  # 0: any free port
    driver: PyasicDriverConfig | None = None  # None: the site's pyasic section, else defaults
    faults: tuple[FaultConfig, ...] = ()  # applied once the fleet listens, before discovery


@dataclass(slots=True)
class _Counts:
    """Cycles and command outcomes, as the daemon's metrics would count them."""

    cycles: int = 0
    commanded: int = 0
    applied: int = 0
    failed: dict[str, int] = field(default_factory=dict)

    def cycle_finished(
        self, site_id: str, duration_s: float, decision_reason: str, report: DispatchReport | None
    ) -> None:
        del site_id, duration_s, decision_reason
        self.cycles += 1
        if report is not None:
            self.commanded += len(report.dispatched)
            for outcome, n in report.counts().items():
                if outcome == "applied":
                    self.applied += n
                else:
                    self.failed[outcome] = self.failed.get(outcome, 0) + n

    def ledger_write_failed(self, site_id: str) -> None:
        del site_id

    def status(self, status: SiteStatus) -> None:
        del status


def sim_model_keys(model_names: tuple[str, ...]) -> list[str]:
    """The simulator's model for each fleet model, matched by name ("Antminer S21")."""
    by_name = {m.name.lower().replace(" ", ""): key for key, m in MODELS.items()}
    keys = []
    for name in model_names:
        key = by_name.get(name.lower().replace(" ", "")) or (name if name in MODELS else None)
        if key is None:
            known = ", ".join(m.name for m in MODELS.values())
            raise ReplayError(f"the live path cannot simulate {name!r}: it simulates {known}")
        keys.append(key)
    return keys


def privileged_port_allowed(ip: str, port: int = 80) -> bool:
    """Whether this process may listen on a port below 1024 (root, CAP_NET_BIND_SERVICE or a
    low ``net.ipv4.ip_unprivileged_port_start``): tried, not guessed from the user id."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError as exc:  # in use or else: not a permission; starting the fleet says so
            return exc.errno not in (errno.EACCES, errno.EPERM)
    return True


def resolve_family(options: LiveOptions) -> tuple[LiveOptions, str | None]:
    """``auto`` made concrete: ``mixed``, or without port 80 the families that need no
    privileged port (``luxos+braiins``), with a note saying why. Others are unchanged."""
    if options.family != "auto":
        return options, None
    if privileged_port_allowed(options.ip_start):
        return replace(options, family="mixed"), None
    ran = "+".join(f.value for f in MIXED if f not in NEEDS_ROOT)
    left = ", ".join(f.value for f in MIXED if f in NEEDS_ROOT)
    return replace(options, family=ran), (
        f"family auto: {ran}; {left} left out (port 80 needs root or CAP_NET_BIND_SERVICE)"
    )


def families_of(family: str) -> tuple[Family, ...]:
    """The families a ``family`` option simulates, round robin: one, ``mixed``, or ``a+b``."""
    if family == "mixed":
        return MIXED
    try:
        chosen = tuple(Family(name) for name in family.split("+"))
    except ValueError:
        known = ", ".join(FAMILY_CHOICES)
        raise ReplayError(
            f"unknown family {family!r}; known: {known}, or families joined by +"
        ) from None
    if len(set(chosen)) != len(chosen):
        raise ReplayError(f"family {family!r} names a family twice")
    return chosen


def miner_specs(inputs: ReplayInputs, options: LiveOptions) -> list[MinerSpec]:
    """One simulated miner per fleet row, on consecutive loopback addresses."""
    options, _ = resolve_family(options)
    families = families_of(options.family)
    fleet = inputs.model.fleet
    keys = sim_model_keys(fleet.model_names)
    try:
        ips = consecutive_ips(options.ip_start, fleet.size)
    except ValueError as exc:
        raise ReplayError(f"--ip-start {options.ip_start}: {exc}") from None
    specs = []
    for i, ip in enumerate(ips):
        family = families[i % len(families)]
        specs.append(MinerSpec(ip, family, keys[int(fleet.model_index[i])]))
    return specs


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@dataclass(slots=True)
class _RampMeter:
    """What the simulated miners' ramps held back, sampled after every cycle."""

    fleet: Fleet
    last: tuple[float, float] = (0.0, 0.0)
    samples: list[tuple[EpochS, float, float]] = field(default_factory=list)

    def total(self, now: EpochS) -> tuple[float, float]:
        th_s = w_s = 0.0
        for miner in self.fleet.miners:
            a, b = miner.state.ramp_deficit(now)
            th_s += a
            w_s += b
        return th_s, w_s

    def sample(self, cycle_at: EpochS, now: EpochS) -> None:
        """Attribute what accrued since the last sample to the cycle at ``cycle_at``."""
        th_s, w_s = self.total(now)
        d_th, d_w = th_s - self.last[0], w_s - self.last[1]
        if d_th > 0 or d_w > 0:
            self.samples.append((cycle_at, d_th, d_w))
        self.last = (th_s, w_s)

    def ramp_ups(self) -> int:
        return sum(m.state.ramp_ups for m in self.fleet.miners)


def ramp_losses(
    samples: list[tuple[EpochS, float, float]],
    records: list[IntervalRecord],
    pool_fee: float,
    ramp_ups: int,
) -> RampLosses:
    """Value what ramps held back at the prices of the interval each ramp began in.

    Mining revenue not earned is the net hashprice times the hashing lost; the power not
    drawn is worth the interval's opportunity cost (spot: the cost avoided; a PPA: the
    resale), so ``net_usd`` is what the ramps cost against miners that resume at once.
    """
    starts = [r.start for r in records]
    ph_h = mwh = revenue = power_value = 0.0
    for at, th_s, w_s in samples:
        k = max(bisect.bisect_right(starts, at) - 1, 0)
        rec = records[k]
        hpn = rec.hashprice_usd_per_ph_day * (1 - pool_fee)
        value_per_mwh = (
            rec.opportunity_cost_usd_per_mwh
            if rec.opportunity_cost_usd_per_mwh is not None
            else rec.price_usd_per_mwh
        )
        ph_h += th_s / 1e3 / 3600
        mwh += w_s / 3.6e9
        revenue += hpn * th_s / 1e3 / 86_400
        power_value += value_per_mwh * w_s / 3.6e9
    return RampLosses(
        ramp_ups=ramp_ups,
        ph_hours_not_hashed=ph_h,
        mwh_not_drawn=mwh,
        mining_revenue_usd=revenue,
        power_value_usd=power_value,
        net_usd=power_value - revenue,
    )


async def _start_fleet(
    stack: AsyncExitStack,
    specs: list[MinerSpec],
    clock: ReplayClock,
    inputs: ReplayInputs,
    options: LiveOptions,
) -> tuple[Fleet, Meter]:
    """Listen on every simulated miner and the meter; stopped when ``stack`` closes."""
    fleet = Fleet(specs, clock)
    now = clock.now()
    for miner in fleet.miners:
        miner.state.ramp_s = options.resume_ramp_s
        if getattr(inputs.site.driver, "initial_state", "running") == "curtailed":
            miner.state.sleep(now)
        miner.state.booted_at = now - BOOT_SETTLE_S  # up and settled at the start
    try:
        await fleet.start()
    except PortPermissionError as exc:
        raise ReplayError(f"--family {options.family}: {exc}; or --family auto") from None
    stack.push_async_callback(fleet.stop)
    for fc in options.faults:
        try:
            chosen = fleet.select(fc.miners, fc.fraction, fc.seed)
        except ValueError as exc:
            raise ReplayError(f"fault {fc.kind.value}: {exc}") from None
        await fleet.apply_fault(chosen, fc.fault())
    meter = await stack.enter_async_context(Meter(fleet, port=options.meter_port))
    return fleet, meter


async def run_live(
    inputs: ReplayInputs,
    options: LiveOptions,
    progress: Progress | None = None,
    meter_probe: MeterProbe | None = None,
    decisions: DecisionProbe | None = None,
) -> tuple[IntervalTable, LivePath]:
    """Run the live path over the replay window; the interval table and the run's figures."""
    began = time.perf_counter()
    options, _ = resolve_family(options)
    specs = miner_specs(inputs, options)
    families = tuple(s.family.value for s in specs)
    _raise_fd_limit(len(specs) * 6 + 512)
    clock = ReplayClock(inputs.start - PREPARE_S, options.speed)
    ledger = MemoryLedger()
    counts = _Counts()
    driver_cfg = options.driver or (
        inputs.site.driver if isinstance(inputs.site.driver, PyasicDriverConfig) else None
    )
    async with AsyncExitStack() as stack:
        fleet, meter = await _start_fleet(stack, specs, clock, inputs, options)
        driver = PyasicDriver(
            inputs.model.fleet,
            [s.ip for s in specs],
            driver_cfg or live_driver_config(),
            clock,
            seed=0,
        )
        found = await driver.discover()
        for _ in range(DISCOVERY_ROUNDS - 1):  # a busy machine can time some probes out
            if found == len(specs):
                break
            await asyncio.sleep(2.0)
            found = await driver.discover()  # only the miners not found yet are probed
        if found < len(specs):
            raise ReplayError(f"only {found} of {len(specs)} simulated miners were discovered")
        model = replace(inputs.model, fleet=driver.restrict_to_capabilities())

        feeds = LiveFeeds(inputs, clock, FeedStats())
        await stack.enter_async_context(feeds.run())
        loop = assemble(
            model,
            clock=LoopClock(clock),
            price_feed=feeds.price,
            hashprice_feed=feeds.hashprice,
            btc_usd_feed=feeds.btc_usd,
            difficulty_feed=feeds.difficulty,
            driver=driver,
            ledger=ledger,
            cycle_s=inputs.cycle_s,
            observer=counts,
            events=scenario_events(inputs.loaded.config),
        )
        ramps = _RampMeter(fleet)
        net = [0.0, 0]  # net so far, records summed

        def on_cycle(plan: Plan) -> None:
            ramps.sample(plan.now, clock.now())
            if meter_probe is not None:
                meter_probe(plan, snapshot(fleet))
            if decisions is not None and loop.last_status is not None:
                decisions(CycleView(loop.site.fleet, families, plan, loop.last_status))
            if progress is not None:
                records = ledger.records
                net[0] += sum(r.component("net_usd") for r in records[int(net[1]) :])
                net[1] = len(records)
                progress(plan.now, net[0])

        late_start_s = max(clock.now() - inputs.start, 0.0)
        clock.advance_to(inputs.start)
        await clock.run_due()  # the readings in force at the start
        await loop.run(until=inputs.end, on_cycle=on_cycle)
        ramps.sample(inputs.end, clock.now())
        meter_url = meter.url
        truth_ramp_ups = ramps.ramp_ups()
    if not ledger.records:
        raise ReplayError("the window settled no interval")
    wall_s = time.perf_counter() - began
    table = IntervalTable.from_records(ledger.records, len(inputs.model.fleet.model_names))
    losses = ramp_losses(
        ramps.samples, ledger.records, inputs.model.params.pool_fee, truth_ramp_ups
    )
    stats = LivePath(
        miners=len(specs),
        family=options.family,
        addresses=f"{specs[0].ip}..{specs[-1].ip}",
        feeds=feeds.transport,
        readings_published=feeds.published,
        readings_not_delivered=feeds.lost,
        speed=options.speed,
        resume_ramp_s=options.resume_ramp_s,
        faults=tuple(fc.model_dump(mode="json", exclude_defaults=True) for fc in options.faults),
        wall_s=wall_s,
        sim_s_per_wall_s=(inputs.end - inputs.start) / wall_s if wall_s > 0 else None,
        cycles=counts.cycles,
        commands={"sent": counts.commanded, "applied": counts.applied, **counts.failed},
        late_start_s=late_start_s,
        late_readings=clock.late_events,
        max_reading_lateness_s=clock.max_lateness_s,
        meter=meter_url,
        ramp_losses=losses,
        net_usd_after_ramp_losses=totals(table).net_usd + losses.net_usd,
    )
    return table, stats


async def replay_live(
    inputs: ReplayInputs,
    options: LiveOptions,
    progress: Progress | None = None,
    meter_probe: MeterProbe | None = None,
    decisions: DecisionProbe | None = None,
) -> ReplayResult:
    """Run the live path and build the report (the fast path's shape plus ``live_path``)."""
    began = time.perf_counter()
    table, stats = await run_live(inputs, options, progress, meter_probe, decisions)
    report = replace(replay_report(inputs, table, "live"), live_path=stats)
    return ReplayResult(
        table=table, typed_report=report, engine="live", wall_s=time.perf_counter() - began
    )
