"""A miner's own telemetry, what operating point it shows, and whether it confirms a command.

Pure functions over one reading; the driver feeds them what pyasic read back. LuxOS keeps
``is_mining`` True while curtailed and every firmware may answer a command with True when
nothing happened, so only hashrate and wattage decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from controller.domain import OFF, FleetSpec

#: The pyasic data items a read asks for, per firmware: only what decides off, running and
#: the power target, each costing as few protocol exchanges as pyasic allows.
READ_ITEMS: dict[str, tuple[str, ...]] = {
    # One 4028 multicommand (stats, power, config, profiles); 0.79.0's LuxOS hashrate is
    # always None, so it comes from the hashboards.
    "luxos": ("hashboards", "wattage", "wattage_limit"),
    # 4028 summary only: stock firmware has no wattage, and is_mining/hashboards cost
    # digest-authenticated web calls.
    "stock": ("hashrate",),
    # 4028 summary plus two gRPC calls (miner stats, performance mode).
    "braiins": ("hashrate", "wattage", "wattage_limit"),
    "other": ("hashrate", "hashboards", "wattage", "wattage_limit", "is_mining"),
}

#: Enough to confirm a curtail or a resume (hashrate, or power near sleep): on Braiins OS+
#: this skips both gRPC calls, the costliest exchanges pyasic makes.
QUICK_ITEMS: dict[str, tuple[str, ...]] = {
    "luxos": ("hashboards", "wattage"),
    "stock": ("hashrate",),
    "braiins": ("hashrate",),
    "other": ("hashrate", "hashboards", "wattage"),
}


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One read of a miner: what it says it hashes and draws, and its power target."""

    hashrate_th: float | None
    power_w: float | None
    power_limit_w: float | None
    is_mining: bool | None
    uptime_s: float | None = None
    state: str | None = None  # the firmware's operating state, where the library reads one

    @property
    def empty(self) -> bool:
        """Nothing measurable came back (pyasic fills a refused connection with Nones)."""
        return self.hashrate_th is None and self.power_w is None

    def describe(self) -> str:
        """Short text for outcome reasons."""
        h = "?" if self.hashrate_th is None else f"{self.hashrate_th:.1f}"
        w = "?" if self.power_w is None else f"{self.power_w:.0f}"
        state = "" if self.state is None else f", state {self.state}"
        return f"hashrate {h} TH/s, power {w} W{state}"


def num(value: Any) -> float | None:
    """A library's field as a float, or None when it is absent or not a number."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def telemetry_of(data: Any) -> Telemetry:
    """pyasic ``MinerData`` to a ``Telemetry``; unparsable fields become None."""

    mining = data.is_mining
    return Telemetry(
        hashrate_th=num(data.hashrate),
        power_w=num(data.wattage),
        power_limit_w=num(data.wattage_limit),
        is_mining=mining if isinstance(mining, bool) else None,
        uptime_s=num(getattr(data, "uptime", None)),
    )


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Fractions of a miner's nameplate that tell off, climbing and "near target"."""

    off_hashrate_fraction: float = 0.02
    sleep_power_fraction: float = 0.05
    resume_hashrate_fraction: float = 0.03
    power_tolerance_fraction: float = 0.10


@dataclass(frozen=True, slots=True)
class Curve:
    """One miner's row of the fleet: power and hashrate per point, and which are valid."""

    power_w: tuple[float, ...]
    hashrate_th: tuple[float, ...]
    valid: tuple[bool, ...]
    top: int

    @classmethod
    def of(cls, fleet: FleetSpec, miner: int) -> Curve:
        """Miner ``miner``'s curve."""
        return cls(
            power_w=tuple(float(x) for x in fleet.power_w[miner]),
            hashrate_th=tuple(float(x) for x in fleet.hashrate_th[miner]),
            valid=tuple(bool(x) for x in fleet.valid[miner]),
            top=int(fleet.top_point[miner]),
        )

    @property
    def nominal_power_w(self) -> float:
        """Power at the top point."""
        return self.power_w[self.top]

    @property
    def nominal_hashrate_th(self) -> float:
        """Hashrate at the top point."""
        return self.hashrate_th[self.top]

    def nearest_point(self, power_w: float) -> int:
        """The valid running point whose power is nearest ``power_w``."""
        on = [j for j in range(1, len(self.valid)) if self.valid[j]]
        return min(on, key=lambda j: abs(self.power_w[j] - power_w))


#: No miner draws or hashes this many times its nameplate: a read beyond it is a fault.
IMPLAUSIBLE_FACTOR = 10.0


def implausible(t: Telemetry, curve: Curve) -> str | None:
    """Why the read cannot be a real miner's, or None if it could be.

    Negative, NaN or infinite watts, hashrate, power target or uptime, or watts or hashrate
    beyond ten times the nameplate, are a firmware (or proxy) fault, not a state: a miner
    reporting -5 W is not asleep, and must not be taken, or booked, as curtailed.
    """
    limits = (
        ("power", t.power_w, "W", IMPLAUSIBLE_FACTOR * curve.nominal_power_w),
        ("hashrate", t.hashrate_th, "TH/s", IMPLAUSIBLE_FACTOR * curve.nominal_hashrate_th),
        ("power target", t.power_limit_w, "W", math.inf),
        ("uptime", t.uptime_s, "s", math.inf),
    )
    for name, value, unit, most in limits:
        if value is None:
            continue
        if not math.isfinite(value):
            return f"{name} {value!r} is not finite"
        if value < 0.0:
            return f"{name} {value:g} {unit} is negative"
        if value > most:
            return f"{name} {value:g} {unit} is over {IMPLAUSIBLE_FACTOR:g}x the nameplate"
    return None


def rebooted_within(t: Telemetry, elapsed_s: float, margin_s: float = 2.0) -> bool:
    """The miner's uptime says it (re)started during the last ``elapsed_s`` seconds.

    A command that failed while the miner was rebooting reads back fine moments later;
    that is an unreachable miner, not a refusal.
    """
    return t.uptime_s is not None and t.uptime_s <= elapsed_s + margin_s


def is_off(t: Telemetry, curve: Curve, th: Thresholds) -> bool:
    """Hashrate near zero or power near sleep."""
    if t.hashrate_th is not None and t.hashrate_th <= th.off_hashrate_fraction * (
        curve.nominal_hashrate_th
    ):
        return True
    return t.power_w is not None and t.power_w <= th.sleep_power_fraction * curve.nominal_power_w


def point_of(t: Telemetry, curve: Curve, th: Thresholds, *, can_throttle: bool) -> int:
    """The operating point the telemetry shows.

    Off when asleep; otherwise the point nearest the power target (where a throttling miner
    is heading, even mid-ramp) or the wattage; the top point when it reports neither
    (stock Antminer firmware reports no wattage and cannot throttle).
    """
    if is_off(t, curve, th):
        return OFF
    if can_throttle and t.power_limit_w is not None:
        return curve.nearest_point(t.power_limit_w)
    if t.power_w is not None and can_throttle:
        return curve.nearest_point(t.power_w)
    return curve.top


#: A running miner within 3 % of its power target has settled: its read is a curve sample.
STEADY_FRACTION = 0.03


def curve_sample(t: Telemetry, curve: Curve, th: Thresholds) -> tuple[float, float] | None:
    """(power_w, hashrate_th) for learning the curve, if the read shows a settled miner.

    A miner asleep or still ramping (power away from its power target) is no sample; nor is
    firmware without wattage (stock). The power is the target the miner holds when it
    reports one (its draw is within 3 % of it): a learned point must be a target the driver
    can command again, and LuxOS picks the highest profile at or below a target, so a draw a
    little under a profile's watts would select the profile below.
    """
    if t.power_w is None or t.hashrate_th is None or is_off(t, curve, th):
        return None
    limit = t.power_limit_w
    if limit is None:
        return t.power_w, t.hashrate_th
    if abs(t.power_w - limit) > STEADY_FRACTION * limit:
        return None
    return limit, t.hashrate_th


def near(value_w: float | None, target_w: float, th: Thresholds) -> bool:
    """``value_w`` within the tolerance of ``target_w``."""
    return value_w is not None and abs(value_w - target_w) <= th.power_tolerance_fraction * target_w


def under_new_cap(t: Telemetry, curve: Curve, th: Thresholds, cap_w: float) -> bool:
    """A lower power target has taken: the firmware reports it, or the draw is under it."""
    if t.empty:
        return False
    if near(t.power_limit_w, cap_w, th):
        return True
    return (
        t.power_w is not None
        and not is_off(t, curve, th)
        and t.power_w <= cap_w * (1.0 + th.power_tolerance_fraction)
    )


def confirms(
    t: Telemetry,
    curve: Curve,
    th: Thresholds,
    *,
    target: int,
    resumed: bool,
    power_target_w: float | None,
    lowering: bool = False,
) -> bool:
    """Whether a read shows the commanded state, as physics allows it to.

    Off: hashrate near zero or power near sleep. Resume: hashrate climbing past a fraction
    of the target point's (and the new power target in place when one was set). A lower
    power target: the new cap in place, or the draw at or under it (a miner still ramping
    up is under its new cap already: that is no failure). A higher one on a running miner:
    wattage near the target.
    """
    if target == OFF:
        return is_off(t, curve, th)
    if lowering and power_target_w is not None and under_new_cap(t, curve, th, power_target_w):
        return True
    if t.empty or is_off(t, curve, th):
        return False
    if resumed:
        climbing = (t.hashrate_th or 0.0) >= th.resume_hashrate_fraction * curve.hashrate_th[target]
        return climbing and (
            power_target_w is None
            or near(t.power_limit_w, power_target_w, th)
            or near(t.power_w, power_target_w, th)
        )
    return power_target_w is None or near(t.power_w, power_target_w, th)
