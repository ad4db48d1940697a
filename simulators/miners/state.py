"""One miner's physical state on an injected clock: mode, power target, ramps, fans, temps.

Every method takes ``now`` (epoch seconds) instead of reading a clock, so the same model
runs in real time, scaled time and jumping test time. Transitions are computed lazily from
the time of the last command, so a clock that jumps an hour lands on the right state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from simulators.miners.models import MinerModel

DEFAULT_RAMP_S = 90.0  #: resume: hashrate climbs from 0 to target over this long
DEFAULT_STOP_S = 3.0  #: stop: hashboards wind down within seconds
AMBIENT_C = 25.0
NOISE_PERIOD_S = 5.0  #: reported hashrate is a 5 s average: its noise changes every 5 s
NOISE_FRACTION = 0.01


class Mode(StrEnum):
    """What the operator asked for: hash, or sleep (boards off, control board on)."""

    NORMAL = "normal"
    SLEEP = "sleep"


@dataclass(frozen=True, slots=True)
class MinerReading:
    """The miner's true operating point at one instant (what a site meter would see)."""

    mode: Mode
    power_w: float
    hashrate_th: float  # true hashrate, no noise
    reported_hashrate_th: float  # what the firmware's 5 s average shows (with noise)
    power_target_w: float
    load: float  # 0..1, the fraction of the target's hashrate being produced
    board_hashrate_th: tuple[float, ...]
    board_temp_c: tuple[float, ...]
    chip_temp_c: tuple[float, ...]
    fan_rpm: tuple[int, ...]
    uptime_s: float
    booting: bool


def _noise(seed: int, now: float) -> float:
    """A deterministic value in [-1, 1] for this miner and this 5 s window."""
    window = int(now // NOISE_PERIOD_S)
    digest = hashlib.blake2b(f"{seed}:{window}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") / 0xFFFFFFFF * 2 - 1


class MinerState:
    """The mutable state of one simulated miner; all physics derive from it and ``now``."""

    def __init__(
        self,
        model: MinerModel,
        *,
        now: float,
        seed: int = 0,
        power_target_w: float | None = None,
        mode: Mode = Mode.NORMAL,
        ramp_s: float = DEFAULT_RAMP_S,
        stop_s: float = DEFAULT_STOP_S,
    ) -> None:
        self.model = model
        self.seed = seed
        self.ramp_s = ramp_s
        self.stop_s = stop_s
        self.power_target_w = model.clamp_power_w(power_target_w or model.nameplate_power_w)
        self.mode = mode
        self.booted_at = now
        self._boot_until = now
        # The load (0..1) at the last change, and when; it moves from there toward the mode.
        self._load = 1.0 if mode is Mode.NORMAL else 0.0
        self._load_at = now
        self.drift_after_s: float | None = None  # set by the "drift" fault
        self._slept_at: float | None = now if mode is Mode.SLEEP else None
        # Hashing and power a ramp-up held back, against a miner that resumed at once
        # (integrated per settled segment; see ``ramp_deficit``).
        self._deficit_th_s = 0.0
        self._deficit_w_s = 0.0
        self.ramp_ups = 0  #: resumes (and drift wake-ups) that started a ramp from below full

    # -- commands ---------------------------------------------------------------------

    def sleep(self, now: float) -> None:
        """Stop hashing; the boards wind down within ``stop_s``."""
        self._settle(now)
        if self.mode is Mode.SLEEP:
            return
        self.mode = Mode.SLEEP
        self._slept_at = now

    def wake(self, now: float) -> None:
        """Resume hashing; hashrate climbs over ``ramp_s``."""
        self._settle(now)
        if self.mode is Mode.SLEEP or self._load < 1.0:
            self.ramp_ups += 1
        self.mode = Mode.NORMAL
        self._slept_at = None

    def set_power_target(self, now: float, power_w: float) -> float:
        """Set the power target (clamped to the model's range); returns the one applied."""
        self._settle(now)
        self.power_target_w = self.model.clamp_power_w(power_w)
        return self.power_target_w

    def reboot(self, now: float, duration_s: float) -> None:
        """Power-cycle: nothing hashes for ``duration_s``, then the miner ramps up again."""
        self._settle(now)
        self.mode = Mode.NORMAL
        self._slept_at = None
        self._load = 0.0
        self.ramp_ups += 1
        self._load_at = now + duration_s
        self._boot_until = now + duration_s
        self.booted_at = now + duration_s

    def booting(self, now: float) -> bool:
        """True while a reboot is in progress (the miner does not answer)."""
        return now < self._boot_until

    # -- physics ----------------------------------------------------------------------

    def _apply_drift(self, now: float) -> None:
        if self.mode is Mode.SLEEP and self.drift_after_s is not None and self._slept_at:
            woke_at = self._slept_at + self.drift_after_s
            if now >= woke_at:
                self._load = self._load_now(woke_at)
                self._load_at = max(self._load_at, woke_at)
                self.mode = Mode.NORMAL
                self._slept_at = None
                self.ramp_ups += 1

    def _load_now(self, now: float) -> float:
        elapsed = max(now - self._load_at, 0.0)
        if self.mode is Mode.NORMAL:
            if self.ramp_s <= 0:
                return 1.0
            return min(1.0, self._load + elapsed / self.ramp_s)
        if self.stop_s <= 0:
            return 0.0
        return max(0.0, self._load - elapsed / self.stop_s)

    def _segment_deficit(self, now: float) -> tuple[float, float]:
        """(TH*s, W*s) the current ramp has held back between ``_load_at`` and ``now``."""
        if self.mode is not Mode.NORMAL or self.ramp_s <= 0 or now <= self._load_at:
            return 0.0, 0.0
        short = 1.0 - self._load  # how far below full the segment starts
        if short <= 0:
            return 0.0, 0.0
        span = min(now - self._load_at, short * self.ramp_s)  # until full, or now
        load_s = short * span - span * span / (2 * self.ramp_s)  # integral of (1 - load)
        target_th = self.model.hashrate_at_th(self.power_target_w)
        return target_th * load_s, (self.power_target_w - self.model.sleep_power_w) * load_s

    def ramp_deficit(self, now: float) -> tuple[float, float]:
        """Hashing (TH*s) and power (W*s) not delivered during ramp-ups, up to ``now``.

        Against a miner that reached its target the moment it resumed: the integral of
        ``(1 - load)`` times the target's hashrate (and its power above sleep) while ramping.
        """
        self._apply_drift(now)
        th_s, w_s = self._segment_deficit(now)
        return self._deficit_th_s + th_s, self._deficit_w_s + w_s

    def _settle(self, now: float) -> None:
        """Fold the elapsed transition into ``_load`` so a new command starts from here."""
        self._apply_drift(now)
        if now > self._load_at:
            th_s, w_s = self._segment_deficit(now)
            self._deficit_th_s += th_s
            self._deficit_w_s += w_s
            self._load = self._load_now(now)
            self._load_at = now

    def read(self, now: float) -> MinerReading:
        """The operating point at ``now``."""
        self._apply_drift(now)
        model = self.model
        load = self._load_now(now)
        booting = self.booting(now)
        target_th = model.hashrate_at_th(self.power_target_w)
        hashrate_th = target_th * load
        idle_w = model.sleep_power_w * (3.0 if booting else 1.0)
        power_w = idle_w + (self.power_target_w - idle_w) * load
        reported_th = hashrate_th * (1 + NOISE_FRACTION * _noise(self.seed, now))
        heat = power_w / model.nameplate_power_w
        board_temp = AMBIENT_C + 35.0 * heat
        chip_temp = board_temp + 15.0 * heat
        fan = model.fan_idle_rpm + (model.fan_max_rpm - model.fan_idle_rpm) * min(heat, 1.0)
        boards = model.hashboards
        return MinerReading(
            mode=self.mode,
            power_w=power_w,
            hashrate_th=hashrate_th,
            reported_hashrate_th=reported_th,
            power_target_w=self.power_target_w,
            load=load,
            board_hashrate_th=tuple(reported_th / boards for _ in range(boards)),
            board_temp_c=tuple(board_temp + i for i in range(boards)),
            chip_temp_c=tuple(chip_temp + i for i in range(boards)),
            fan_rpm=tuple(int(fan) + 30 * i for i in range(model.fans)),
            uptime_s=max(now - self.booted_at, 0.0),
            booting=booting,
        )
