"""The pyasic fleet driver: bounded, deadline-guarded, telemetry-confirmed miner control.

Over 300 lines: discovery, commands and confirmation share each miner's connection state.

Every pyasic call runs under the driver's semaphore and a hard deadline (4028 reads have
no connect timeout, and a call that ignores its cancellation is left behind, not
awaited); transient failures (refused or reset connections, unavailable gRPC) are retried
with capped full-jitter backoff; a command counts as applied only when the miner's own
telemetry shows the new state before the confirmation deadline.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import structlog

from adapters.miners.capabilities import (
    Capabilities,
    allowed_mask,
    allowed_row,
    capabilities_of,
    restrict_fleet,
)
from adapters.miners.config import MinerDriverConfig, PyasicDriverConfig
from adapters.miners.firmware_curves import read_curve
from adapters.miners.pyasic_lib import miner_protocol, pyasic
from adapters.miners.registry import DRIVERS, Inventory
from adapters.miners.telemetry import (
    QUICK_ITEMS,
    READ_ITEMS,
    Curve,
    Telemetry,
    Thresholds,
    confirms,
    curve_sample,
    implausible,
    point_of,
    rebooted_within,
    telemetry_of,
)
from controller.curves.book import FirmwareCurve
from controller.decision.reconcile import (
    Applied,
    CommandBatch,
    DispatchReport,
    Outcome,
    Rejected,
    Unreachable,
    Unverified,
)
from controller.domain import OFF, BoolArray, FleetSpec, FloatArray, IntArray, ObservedFleet
from controller.runtime.ports import Clock
from controller.runtime.retry import RetryPolicy, hard_deadline, retry_transient

T = TypeVar("T")

LOGGED_IPS = 10  #: addresses named in one log line; the count says how many more

_log = structlog.get_logger("hashspark.miners")

#: gRPC statuses worth another try; anything else from the miner is its answer.
_TRANSIENT_GRPC = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})
_PERMANENT_HINTS = ("unauthor", "unauthentic", "401", "denied", "password", "invalid")


def is_transient(exc: BaseException) -> bool:
    """Connection trouble is transient; timeouts (the deadline is spent) and answers are not."""
    if isinstance(exc, TimeoutError):
        return False
    if isinstance(exc, OSError):
        return True
    name = type(exc).__name__
    if name == "GRPCError":
        status = getattr(getattr(exc, "status", None), "name", "")
        return status in _TRANSIENT_GRPC
    if name == "APIError":
        text = str(exc).lower()
        return not any(hint in text for hint in _PERMANENT_HINTS)
    return False


@dataclass(slots=True)
class _Miner:
    index: int
    ip: str
    curve: Curve
    firmware: str | None  # what discovery must find, if the config says
    handle: Any = None
    caps: Capabilities | None = None
    point: int = OFF  # last observed; a miner never seen counts as off
    reachable: bool = True
    reason: str = ""
    telemetry: Telemetry | None = None


class _FailedError(Exception):
    """A call ended in an outcome (internal control flow)."""

    def __init__(self, outcome: Unreachable | Rejected) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class PyasicDriver:
    """A ``MinerDriver`` over real (or simulated) miners reached through pyasic."""

    def __init__(
        self,
        fleet: FleetSpec,
        addresses: Sequence[str],
        config: MinerDriverConfig,
        clock: Clock,
        *,
        firmware: Sequence[str | None] | None = None,
        seed: int | None = None,
    ) -> None:
        if len(addresses) != fleet.size:
            raise ValueError(f"{len(addresses)} addresses for a fleet of {fleet.size} miners")
        expected = list(firmware) if firmware is not None else [None] * fleet.size
        self.fleet = fleet
        self._cfg = config
        self._clock = clock
        self._sem = asyncio.Semaphore(config.concurrency)
        self._rng = random.Random(seed)  # noqa: S311 (jitter, not secrets)
        self._retry = RetryPolicy(config.retry_attempts, config.retry_base_s, config.retry_cap_s)
        self._th = Thresholds(
            off_hashrate_fraction=config.off_hashrate_fraction,
            sleep_power_fraction=config.sleep_power_fraction,
            resume_hashrate_fraction=config.resume_hashrate_fraction,
            power_tolerance_fraction=config.power_tolerance_fraction,
        )
        self._miners = [
            _Miner(i, ip, Curve.of(fleet, i), expected[i]) for i, ip in enumerate(addresses)
        ]
        self._lost: list[_Miner] = []
        self._recovered: list[_Miner] = []

    # --- capabilities ---------------------------------------------------------------------

    async def discover(self, concurrency: int | None = None) -> int:
        """Identify every miner (pyasic ``get_miner``); returns how many answered.

        ``concurrency`` lowers the number of discoveries in flight below the driver's:
        pyasic's own probe timeouts give up all at once on a starved host.
        """
        gate = asyncio.Semaphore(concurrency or len(self._miners) or 1)

        async def one(m: _Miner) -> Unreachable | Rejected | None:
            async with gate:
                return await self._ensure(m)

        outcomes = await asyncio.gather(*(one(m) for m in self._miners))
        found = sum(o is None for o in outcomes)
        _log.info("fleet_discovered", miners=len(self._miners), found=found)
        return found

    @property
    def capabilities(self) -> tuple[Capabilities | None, ...]:
        """Each miner's capabilities (None until it has been discovered)."""
        return tuple(m.caps for m in self._miners)

    def allowed_points(self) -> BoolArray:
        """(N, K+1) mask of the points each miner can be commanded to, given its firmware."""
        return allowed_mask(self.fleet, self.capabilities)

    def restricted_fleet(self) -> FleetSpec:
        """The fleet with the points miners cannot reach removed (see ``restrict_fleet``)."""
        return restrict_fleet(self.fleet, self.allowed_points())

    def restrict_to_capabilities(self) -> FleetSpec:
        """Adopt ``restricted_fleet()`` (point indices change) and return it for the site.

        Call after ``discover()``, and build the site's model from the returned fleet so the
        plan and the driver number points alike.
        """
        fleet = self.restricted_fleet()
        self.adopt_fleet(fleet)
        return fleet

    def adopt_fleet(self, fleet: FleetSpec) -> None:
        """Use new curves for the same miners (last observed points map to the nearest)."""
        if fleet.size != len(self._miners):
            raise ValueError(f"a fleet of {fleet.size} for {len(self._miners)} miners")
        for m in self._miners:
            curve = Curve.of(fleet, m.index)
            m.point = OFF if m.point == OFF else curve.nearest_point(m.curve.power_w[m.point])
            m.curve = curve
        self.fleet = fleet

    # --- curves ---------------------------------------------------------------------------

    async def read_firmware_curves(self) -> tuple[FirmwareCurve | None, ...]:
        """Each miner's curve as its firmware states it (LuxOS profiles, BOS+ tuner profiles).

        None for a miner not discovered, on firmware that states no curve, or whose reply
        did not come; failures are logged once per sweep, by reason.
        """
        failures: Counter[str] = Counter()

        async def one(m: _Miner) -> FirmwareCurve | None:
            if m.handle is None or m.caps is None:
                return None

            async def call(what: str, make: Callable[[], Awaitable[Any]]) -> Any:
                return await self._call(what, make, self._cfg.call_timeout_s)

            try:
                return await read_curve(m.handle, m.caps.firmware, call)
            except _FailedError as failed:
                failures[failed.outcome.reason] += 1
                return None

        curves = await asyncio.gather(*(one(m) for m in self._miners))
        _log.info(
            "firmware_curves_read",
            miners=len(self._miners),
            stated=sum(c is not None for c in curves),
            failed=sum(failures.values()),
            reasons=dict(failures.most_common(3)),
        )
        return tuple(curves)

    def steady_samples(self) -> tuple[IntArray, FloatArray, FloatArray]:
        """(miner, power_w, hashrate_th) of reachable miners running steadily at their target.

        From the last reads, by ``telemetry.curve_sample``.
        """
        index: list[int] = []
        power: list[float] = []
        hashrate: list[float] = []
        for m in self._miners:
            if not m.reachable or m.point == OFF or m.telemetry is None:
                continue
            sample = curve_sample(m.telemetry, m.curve, self._th)
            if sample is not None:
                index.append(m.index)
                power.append(sample[0])
                hashrate.append(sample[1])
        return (
            np.array(index, dtype=np.int64),
            np.array(power, dtype=np.float64),
            np.array(hashrate, dtype=np.float64),
        )

    @property
    def firmware_found(self) -> tuple[str | None, ...]:
        """Each miner's firmware as discovery found it (None until discovered)."""
        return tuple(m.caps.firmware if m.caps else None for m in self._miners)

    @property
    def resume_batch_size(self) -> int:
        """Miners resumed per chunk (the site loop's actuator paces resumes by it)."""
        return self._cfg.resume_batch_size

    @property
    def addresses(self) -> tuple[str, ...]:
        """Each miner's address, in fleet order."""
        return tuple(m.ip for m in self._miners)

    @property
    def telemetry(self) -> tuple[Telemetry | None, ...]:
        """Each miner's last telemetry read (None if never read)."""
        return tuple(m.telemetry for m in self._miners)

    # --- MinerDriver ----------------------------------------------------------------------

    async def observe(self) -> ObservedFleet:
        """Read every miner; unreachable ones keep their last known point."""
        await asyncio.gather(*(self._sense(m) for m in self._miners))
        self._log_changes()
        return self.current()

    def current(self) -> ObservedFleet:
        """What the last reads and confirmations showed, without reading again."""
        return ObservedFleet(
            point=np.array([m.point for m in self._miners], dtype=np.int64),
            reachable=np.array([m.reachable for m in self._miners], dtype=bool),
            observed_at=self._clock.now(),
        )

    async def apply(self, batch: CommandBatch) -> DispatchReport:
        """Curtail and throttle down at once; resume and throttle up in batches; confirm each."""
        power = self.fleet.power_w
        down: list[tuple[int, int]] = []
        up: list[tuple[int, int]] = []
        for i, p in zip(batch.miner.tolist(), batch.point.tolist(), strict=True):
            now = self._miners[i].point
            (down if p == OFF or power[i, p] < power[i, now] else up).append((i, p))
        results: dict[int, tuple[Outcome, float | None]] = {}

        async def run(i: int, p: int) -> None:
            results[i] = await self._command(self._miners[i], p)

        await asyncio.gather(*(run(i, p) for i, p in down))
        size = self._cfg.resume_batch_size
        for start in range(0, len(up), size):
            await asyncio.gather(*(run(i, p) for i, p in up[start : start + size]))

        return DispatchReport.of(batch, results)

    # --- one miner ------------------------------------------------------------------------

    async def _call(self, what: str, make: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        """One pyasic call under the semaphore and a deadline, retried if transient."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s * self._retry.attempts + self._retry.cap_s

        async def once() -> T:
            async with self._sem:
                return await hard_deadline(make(), timeout_s)

        try:
            return await retry_transient(
                once, policy=self._retry, transient=is_transient, deadline=deadline, rng=self._rng
            )
        except TimeoutError:
            raise _FailedError(Unreachable(f"{what}: no answer within {timeout_s:g} s")) from None
        except Exception as exc:
            if is_transient(exc):
                raise _FailedError(Unreachable(f"{what}: {_text(exc)}")) from None
            raise _FailedError(Rejected(f"{what}: {_text(exc)}")) from None

    async def _ensure(self, m: _Miner) -> Unreachable | Rejected | None:
        """Discover the miner if not yet known; None when it is ready to talk to."""
        if m.handle is not None:
            return None
        try:
            found = await self._identify(m.ip)
        except _FailedError as failed:
            return failed.outcome
        if found is None:
            return Unreachable(f"no miner answered at {m.ip}")
        handle, caps = found
        if m.firmware is not None and caps.firmware != m.firmware:
            return Rejected(f"expected {m.firmware} firmware, found {caps.firmware} ({caps.model})")
        self._set_credentials(handle, caps)
        m.handle, m.caps = handle, caps
        return None

    async def _identify(self, ip: str) -> tuple[Any, Capabilities] | None:
        """The library's handle for the miner at ``ip`` and its capabilities (None: nobody)."""
        lib = pyasic()
        handle = await self._call(
            "discovery", lambda: lib.get_miner(ip), self._cfg.discovery_timeout_s
        )
        if handle is None:
            return None
        return handle, capabilities_of(handle, miner_protocol())

    def _set_credentials(self, handle: Any, caps: Capabilities) -> None:
        secret = None
        match caps.firmware:
            case "stock":
                secret = self._cfg.antminer_web_password
            case "braiins":
                secret = self._cfg.braiins_password
            case "luxos" | "other":
                secret = None
        if secret is not None and getattr(handle, "web", None) is not None:
            handle.web.pwd = secret.get_secret_value()

    async def _read(
        self, m: _Miner, *, quick: bool = False, uptime: bool = False
    ) -> Telemetry | Unreachable:
        """The miner's telemetry (``quick``: only what confirms off or on), or why there is none."""
        try:
            t = await self._fetch(m, quick=quick, uptime=uptime)
        except _FailedError as failed:
            return Unreachable(failed.outcome.reason)
        if t.empty:
            return Unreachable("read: no telemetry (connection refused or empty replies)")
        problem = implausible(t, m.curve)
        if problem is not None:  # a fault, not a state: never taken (or booked) as asleep
            return Unreachable(f"read: implausible telemetry: {problem}")
        return t

    async def _fetch(self, m: _Miner, *, quick: bool, uptime: bool) -> Telemetry:
        """One read through the library (``_call`` raises ``_FailedError`` on failure)."""
        handle = m.handle
        assert m.caps is not None
        items = list((QUICK_ITEMS if quick else READ_ITEMS)[m.caps.firmware])
        if uptime:
            items.append("uptime")
        data = await self._call(
            "read", lambda: handle.get_data(include=items), self._cfg.call_timeout_s
        )
        return telemetry_of(data)

    async def _sense(self, m: _Miner) -> None:
        match await self._ensure(m):
            case Unreachable(reason) | Rejected(reason):
                self._mark(m, reachable=False, reason=reason)
                return
            case None:
                pass
        match await self._read(m):
            case Telemetry() as t:
                assert m.caps is not None
                m.point = point_of(t, m.curve, self._th, can_throttle=m.caps.can_throttle)
                m.telemetry = t
                self._mark(m, reachable=True, reason="")
            case Unreachable(reason):
                self._mark(m, reachable=False, reason=reason)

    def _mark(self, m: _Miner, *, reachable: bool, reason: str) -> None:
        """Note a miner going unreachable or coming back (logged once per sweep)."""
        if reachable != m.reachable:
            (self._recovered if reachable else self._lost).append(m)
        m.reachable, m.reason = reachable, reason

    def _log_changes(self) -> None:
        """One line per kind of change in a sweep: a site losing 500 miners is one event."""
        self._lost.sort(key=lambda m: m.index)
        self._recovered.sort(key=lambda m: m.index)
        if self._lost:
            reasons = Counter(m.reason for m in self._lost)
            _log.warning(
                "miners_unreachable",
                count=len(self._lost),
                ips=[m.ip for m in self._lost[:LOGGED_IPS]],
                reasons=dict(reasons.most_common(3)),
            )
        if self._recovered:
            _log.info(
                "miners_recovered",
                count=len(self._recovered),
                ips=[m.ip for m in self._recovered[:LOGGED_IPS]],
            )
        self._lost, self._recovered = [], []

    async def _command(self, m: _Miner, target: int) -> tuple[Outcome, float | None]:
        """Command one miner to ``target`` and confirm it from its telemetry."""
        match await self._ensure(m):
            case Unreachable() | Rejected() as outcome:
                return outcome, None
            case None:
                pass
        caps = m.caps
        assert caps is not None
        if not allowed_row(m.curve.valid, m.curve.top, caps)[target]:
            what = "stop" if target == OFF else f"throttle to {m.curve.power_w[target]:.0f} W"
            return Rejected(f"{caps.firmware} {caps.model} cannot {what}"), None
        loop = asyncio.get_running_loop()
        started = loop.time()
        resumed = False
        power_target_w: float | None = None
        lowering = target != OFF and m.curve.power_w[target] < m.curve.power_w[m.point]
        try:
            if target == OFF:
                await self._act(m, "stop_mining", sleep=True)
            else:
                if m.point == OFF:
                    await self._act(m, "resume_mining", sleep=False)
                    resumed = True
                if caps.can_throttle:
                    power_target_w = m.curve.power_w[target]
                    await self._limit(m, power_target_w)
        except _FailedError as failed:
            return failed.outcome, None
        what = "stop" if target == OFF else ("resume" if resumed else "power limit")
        return await self._confirm(
            m,
            target,
            what,
            started=started,
            resumed=resumed,
            power_target_w=power_target_w,
            lowering=lowering and not resumed,
        )

    async def _act(self, m: _Miner, what: str, *, sleep: bool) -> None:
        """Stop or resume; a refusal is told apart from a dead miner by reading it back."""
        handle = m.handle
        assert m.caps is not None
        since = self._clock.now()
        if m.caps.firmware == "stock":
            # pyasic ignores the CGI's reply and says True; we read the reply ourselves.
            reply = await self._checked(m, what, lambda: _stock_mode(handle, sleep=sleep))
            if isinstance(reply, dict) and reply.get("stats") == "error":
                raise _FailedError(Rejected(f"{what}: {reply.get('code')} {reply.get('msg')}"))
            if isinstance(reply, dict) and reply.get("stats") == "success":
                return
            ok = False
        else:
            method = handle.stop_mining if sleep else handle.resume_mining
            ok = bool(await self._checked(m, what, method))
        if not ok:
            await self._refused(m, what, "the firmware refused", since)

    async def _limit(self, m: _Miner, power_w: float) -> None:
        handle = m.handle
        watts = round(power_w)
        what = f"set_power_limit {watts} W"
        since = self._clock.now()
        ok = await self._checked(m, what, lambda: handle.set_power_limit(watts))
        if not ok:
            await self._refused(m, what, "the firmware refused", since)

    async def _checked(self, m: _Miner, what: str, make: Callable[[], Awaitable[T]]) -> T:
        """A command call whose unexpected errors are checked against a read-back.

        pyasic turns a dead connection into all sorts of errors (empty replies parsed as
        configs, wrapped gRPC failures); only a miner that still answers reads has refused.
        """
        since = self._clock.now()
        try:
            return await self._call(what, make, self._cfg.call_timeout_s)
        except _FailedError as failed:
            match failed.outcome:
                case Rejected(reason):
                    await self._refused(m, what, reason.removeprefix(f"{what}: "), since)
            raise

    async def _refused(self, m: _Miner, what: str, detail: str, since: float) -> None:
        """The command failed: Rejected if the miner answers reads and did not just reboot.

        ``since`` is the clock's time when the command was sent; pyasic hides a refused
        connection behind the same False as a refusal, so a miner rebooting through the
        command would otherwise read as having refused it.
        """
        match await self._read(m, quick=True, uptime=True):
            case Unreachable(reason):
                raise _FailedError(Unreachable(f"{what} failed and {reason}"))
            case Telemetry() as t if rebooted_within(t, self._clock.now() - since):
                raise _FailedError(
                    Unreachable(f"{what} failed: the miner rebooted (uptime {t.uptime_s:.0f} s)")
                )
            case Telemetry():
                raise _FailedError(Rejected(f"{what}: {detail}"))

    async def _confirm(
        self,
        m: _Miner,
        target: int,
        what: str,
        *,
        started: float,
        resumed: bool,
        power_target_w: float | None,
        lowering: bool = False,
    ) -> tuple[Outcome, float | None]:
        """Read back until the telemetry shows ``target`` or the deadline passes."""
        loop = asyncio.get_running_loop()
        deadline = started + self._cfg.confirm_timeout_s
        last: Telemetry | None = None
        error = "no read finished"
        quick = power_target_w is None
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    match await self._read(m, quick=quick):
                        case Telemetry() as t:
                            last = m.telemetry = t
                            if confirms(
                                t,
                                m.curve,
                                self._th,
                                target=target,
                                resumed=resumed,
                                power_target_w=power_target_w,
                                lowering=lowering,
                            ):
                                m.point = target
                                return Applied(), loop.time() - started
                        case Unreachable(reason):
                            error = reason
                    await asyncio.sleep(self._cfg.confirm_poll_s)
        except TimeoutError:
            pass
        limit = f"{self._cfg.confirm_timeout_s:g} s"
        if last is None:
            return Unreachable(f"{what} sent, then no telemetry for {limit}: {error}"), None
        return Unverified(
            f"{what} accepted, but after {limit} the miner shows {last.describe()}"
        ), None


async def _stock_mode(handle: Any, *, sleep: bool) -> Any:
    """Stock Antminer sleep/normal through the web CGI, returning the CGI's own reply.

    The CGI takes the whole config. A curtail reuses the one read last time (pyasic keeps
    it on the handle): a spike must not wait for a read first. A resume reads it afresh,
    so a config changed on the miner since is not written back over.
    """
    config_mod = pyasic().config
    cached = getattr(handle, "config", None)
    cfg = cached if sleep and cached is not None else await handle.get_config()
    mode = config_mod.MiningModeConfig
    cfg.mining_mode = mode.sleep() if sleep else mode.normal()
    return await handle.web.set_miner_conf(cfg.as_am_modern())


def _text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _build(
    config: PyasicDriverConfig, fleet: FleetSpec, clock: Clock, inventory: Inventory
) -> PyasicDriver:
    return PyasicDriver(
        fleet, list(inventory.addresses), config, clock, firmware=list(inventory.firmware)
    )


DRIVERS.register("pyasic", PyasicDriverConfig, _build)
