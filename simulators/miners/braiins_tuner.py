"""The Braiins OS+ tuner of a simulated miner: its saved power-target profiles and state."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

from pyasic.web.braiins_os.proto.braiins.bos.v1 import (
    GetTunerStateResponse,
    GigaHashrate,
    Power,
    PowerTargetModeState,
    PowerTargetProfile,
    TunerState,
)

from simulators.miners.miner import SimMiner
from simulators.miners.state import Mode

#: Simulated seconds of steady mining at a new power target before the tuner saves it.
TUNING_S = 120.0
#: Targets (fractions of nameplate) a miner in service has tuned before the simulation.
TUNED_FRACTIONS = (0.6, 0.8, 1.0)
#: Chips differ: a miner's measured hashrate is within this fraction of the model's.
_SPREAD = 0.015


def _gh(th: float) -> GigaHashrate:
    return GigaHashrate(gigahash_per_second=th * 1000.0)


class Tuner:
    """The BOS+ tuner's saved profiles: one per power target it has tuned, with what it measured.

    A miner starts with profiles at ``TUNED_FRACTIONS`` of nameplate (tuned before the
    simulation); a new target becomes a profile after ``TUNING_S`` of mining at it.
    Measured hashrates carry a fixed per-miner offset, as chips differ between units.
    """

    def __init__(self, miner: SimMiner, fractions: tuple[float, ...] = TUNED_FRACTIONS) -> None:
        self.miner = miner
        self.offset = _SPREAD * ((zlib.crc32(miner.serial.encode()) % 2001) / 1000.0 - 1.0)
        now = miner.clock.now()
        model = miner.model
        self.profiles: dict[int, float] = {
            round(model.clamp_power_w(model.nameplate_power_w * f)): now - 86_400.0
            for f in fractions
        }
        self.target: tuple[int, float] = (round(miner.read().power_target_w), now)

    def set_target(self, watt: int, now: float) -> None:
        """A new target: tuning starts over."""
        if watt != self.target[0]:
            self.target = (watt, now)

    def _settle(self) -> None:
        watt, since = self.target
        now = self.miner.clock.now()
        reading = self.miner.read()
        mining = reading.mode is Mode.NORMAL and not reading.booting
        if watt not in self.profiles and mining and now - since >= TUNING_S:
            self.profiles[watt] = since + TUNING_S

    def profile(self, watt: int) -> PowerTargetProfile:
        """The saved profile of one target."""
        measured = self.miner.model.hashrate_at_th(watt) * (1 + self.offset)
        return PowerTargetProfile(
            created=datetime.fromtimestamp(self.profiles[watt], tz=UTC),
            target=Power(watt=watt),
            measured_hashrate=_gh(measured),
            estimated_power_consumption=Power(watt=watt),
        )

    def saved(self) -> list[PowerTargetProfile]:
        """Every saved profile, by target."""
        self._settle()
        return [self.profile(w) for w in sorted(self.profiles)]

    def state(self) -> GetTunerStateResponse:
        """Stable at a tuned target, tuning otherwise."""
        self._settle()
        watt = self.target[0]
        tuned = watt in self.profiles
        mode = PowerTargetModeState(current_target=Power(watt=watt))
        if tuned:
            mode.profile = self.profile(watt)
        return GetTunerStateResponse(
            overall_tuner_state=TunerState.STABLE if tuned else TunerState.TUNING,
            power_target_mode_state=mode,
        )
