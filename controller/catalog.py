"""Manufacturer nameplates (ECONOMICS.md), used when a config names a model without a curve."""

from __future__ import annotations

#: model name -> (hashrate TH/s, wall power W)
NAMEPLATES: dict[str, tuple[float, float]] = {
    "Antminer S19j Pro": (104.0, 3068.0),
    "Antminer S19 XP": (140.0, 3010.0),
    "Antminer S21": (200.0, 3500.0),
    "Antminer S21 Pro": (234.0, 3510.0),
    "Antminer S21 XP": (270.0, 3645.0),
    "Whatsminer M30S++": (112.0, 3472.0),
    "Whatsminer M50S": (126.0, 3276.0),
    "Whatsminer M60": (172.0, 3422.0),
}


#: Wall power of a sleeping miner (boards off, control board and fans on), by model: the
#: figures the simulated ASICs draw (``simulators/miners/models.py``). Other models fall back
#: to ``DEFAULT_SLEEP_FRACTION`` of their top point; a site should set the measured figure
#: (``sleep_power_w`` on the group).
SLEEP_POWER_W: dict[str, float] = {
    "Antminer S19j Pro": 22.0,
    "Antminer S21": 25.0,
}
DEFAULT_SLEEP_FRACTION = 0.01
