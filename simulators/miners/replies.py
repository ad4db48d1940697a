"""cgminer-shaped reply sections (summary, stats, pools, fans) built on the captured templates."""

from __future__ import annotations

from typing import Any

from simulators.miners.captures import template
from simulators.miners.miner import SimMiner
from simulators.miners.state import MinerReading

GH_PER_TH = 1000.0
POOL_URL = "stratum+tcp://pool.hashspark.invalid:3333"


def _gh(th: float) -> float:
    return round(th * GH_PER_TH, 2)


def summary_entry(reading: MinerReading) -> dict[str, Any]:
    """One SUMMARY entry shaped after the cgminer 4.11.1 capture."""
    entry: dict[str, Any] = template("cgminer_s19xp_summary.json")["SUMMARY"][0]
    entry.pop("Fee Percent", None)  # Vnish only
    entry["Elapsed"] = int(reading.uptime_s)
    entry["GHS 5s"] = f"{_gh(reading.reported_hashrate_th):.2f}"
    entry["GHS av"] = _gh(reading.hashrate_th)
    return entry


def sensor_string(*values: float) -> str:
    """bmminer's dash-joined sensor list, e.g. ``"45-42-45-42"``."""
    return "-".join(str(round(v)) for v in values)


def stats_entries(miner: SimMiner, reading: MinerReading, head: dict[str, Any]) -> list[Any]:
    """The two STATS entries (firmware head, then the device) after the captures."""
    dev: dict[str, Any] = template("cgminer_s19xp_stats.json")["STATS"][1]
    for vnish_only in ("miner_version", "build_version", "fan_mode", "fan_pwm"):
        dev.pop(vnish_only, None)
    model = miner.model
    ideal_th = model.hashrate_at_th(reading.power_target_w)
    dev["ID"] = "BTM_SOC0"
    dev["Elapsed"] = int(reading.uptime_s)
    dev["GHS 5s"] = f"{_gh(reading.reported_hashrate_th):.2f}"
    dev["GHS av"] = _gh(reading.hashrate_th)
    dev["miner_count"] = model.hashboards
    dev["total_acn"] = model.hashboards * model.chips_per_board
    dev["total_rateideal"] = _gh(ideal_th)
    dev["total_rate"] = _gh(reading.reported_hashrate_th)
    dev["rate_unit"] = "GH"
    dev["state"] = "mining" if reading.load > 0 else "idle"
    dev["fan_num"] = model.fans
    for i, rpm in enumerate(reading.fan_rpm, start=1):
        dev[f"fan{i}"] = rpm
    dev["temp_num"] = model.hashboards
    for b in range(model.hashboards):
        n = b + 1
        pcb, chip = reading.board_temp_c[b], reading.chip_temp_c[b]
        dev[f"temp{n}"] = round(pcb)
        dev[f"temp2_{n}"] = round(chip)
        dev[f"temp3_{n}"] = round(chip)
        dev[f"temp_pcb{n}"] = sensor_string(pcb - 3, pcb, pcb - 2, pcb + 1)
        dev[f"temp_chip{n}"] = sensor_string(chip - 3, chip, chip - 2, chip + 1)
        dev[f"chain_state{n}"] = dev["state"]
        dev[f"chain_acn{n}"] = model.chips_per_board
        dev[f"chain_rateideal{n}"] = _gh(ideal_th / model.hashboards)
        dev[f"chain_rate{n}"] = _gh(reading.board_hashrate_th[b])
        dev[f"chain_hw{n}"] = 0
        dev[f"chain_consumption{n}"] = round(reading.power_w / model.hashboards)
    return [head, dev]


def pools_section(miner: SimMiner, reading: MinerReading) -> list[dict[str, Any]]:
    """One alive pool, shaped after the captured POOLS entry."""
    pool: dict[str, Any] = template("cgminer_s19xp_pools.json")["POOLS"][0]
    pool["URL"] = POOL_URL
    pool["User"] = f"hashspark.{miner.hostname}"
    pool["Stratum URL"] = "pool.hashspark.invalid"
    pool["Stratum Active"] = reading.load > 0
    return [pool]
