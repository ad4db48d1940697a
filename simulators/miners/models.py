"""The model table: nameplate figures and the power-to-hashrate curve of each simulated model."""

from __future__ import annotations

from dataclasses import dataclass

#: Exponent of chip power over hashrate: power ~ hashrate**alpha as voltage follows clock.
_ALPHA = 2.0


@dataclass(frozen=True, slots=True)
class MinerModel:
    """One ASIC model: what the nameplate says and how efficiency moves with the power target.

    Power at a target splits into a fixed overhead (fans, control board, PSU loss) and chip
    power; chip power grows with hashrate squared. So J/TH improves as the target falls,
    down to the floor where overhead equals chip power (``2 * overhead_w``).
    """

    name: str  # as the firmware reports it, e.g. "Antminer S19j Pro"
    nameplate_hashrate_th: float
    nameplate_power_w: float
    overhead_w: float
    min_power_target_w: float
    max_power_target_w: float
    sleep_power_w: float
    hashboards: int
    chips_per_board: int
    fans: int
    fan_max_rpm: int
    fan_idle_rpm: int

    def clamp_power_w(self, power_w: float) -> float:
        """The power target the firmware would accept for a requested one."""
        return min(max(power_w, self.min_power_target_w), self.max_power_target_w)

    def hashrate_at_th(self, power_target_w: float) -> float:
        """Steady-state hashrate (TH/s) at a power target."""
        chip_w = max(self.clamp_power_w(power_target_w) - self.overhead_w, 0.0)
        nameplate_chip_w = self.nameplate_power_w - self.overhead_w
        return float(self.nameplate_hashrate_th * (chip_w / nameplate_chip_w) ** (1 / _ALPHA))

    def efficiency_j_per_th(self, power_target_w: float) -> float:
        """Steady-state efficiency (J/TH) at a power target."""
        return self.clamp_power_w(power_target_w) / self.hashrate_at_th(power_target_w)

    @property
    def efficiency_floor_power_w(self) -> float:
        """The power at which J/TH is lowest: below it, overhead dominates."""
        return self.clamp_power_w(2 * self.overhead_w)


S19J_PRO = MinerModel(
    name="Antminer S19j Pro",
    nameplate_hashrate_th=104.0,
    nameplate_power_w=3068.0,
    overhead_w=460.0,
    min_power_target_w=920.0,
    max_power_target_w=3500.0,
    sleep_power_w=22.0,
    hashboards=3,
    chips_per_board=126,
    fans=4,
    fan_max_rpm=6000,
    fan_idle_rpm=1200,
)

S21 = MinerModel(
    name="Antminer S21",
    nameplate_hashrate_th=200.0,
    nameplate_power_w=3500.0,
    overhead_w=525.0,
    min_power_target_w=1050.0,
    max_power_target_w=4000.0,
    sleep_power_w=25.0,
    hashboards=3,
    chips_per_board=108,
    fans=4,
    fan_max_rpm=6600,
    fan_idle_rpm=1300,
)

#: Models by short key (used in fleet files and on the command line).
MODELS: dict[str, MinerModel] = {"S19jPro": S19J_PRO, "S21": S21}


def model_by_key(key: str) -> MinerModel:
    """Look a model up by key; unknown keys fail with the list of known ones."""
    try:
        return MODELS[key]
    except KeyError:
        raise ValueError(f"unknown model {key!r}; known: {', '.join(sorted(MODELS))}") from None
