"""Braiins OS+: the BOSminer JSON API on 4028 (version, devdetails, summary, devs, ...)."""

from __future__ import annotations

from typing import Any

from simulators.miners import replies
from simulators.miners.cgminer import Reply, invalid_command, status
from simulators.miners.miner import SimMiner
from simulators.miners.state import MinerReading

BOSMINER_VERSION = "1.2.0-11012d53"


class BraiinsApi:
    """Answers BOSminer commands on 4028."""

    description = f"BOSminer+ {BOSMINER_VERSION}"
    null_terminated = True

    def __init__(self, miner: SimMiner) -> None:
        self.miner = miner

    def _ok(self, when: int, code: int, msg: str, **sections: Any) -> Reply:
        return {"STATUS": status(self, when, code, msg), **sections, "id": 1}

    def answer(self, command: str, parameter: str | None, when: int) -> Reply:
        """The reply to one BOSminer command."""
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            return invalid_command(self, when)
        reply: Reply = handler(self.miner.read(), when)
        return reply

    def _cmd_version(self, _reading: MinerReading, when: int) -> Reply:
        version = [{"BOSminer+": BOSMINER_VERSION, "API": "3.7"}]
        return self._ok(when, 22, "BOSminer+ versions", VERSION=version)

    def _cmd_devdetails(self, _reading: MinerReading, when: int) -> Reply:
        model = self.miner.model
        details = [
            {
                "DEVDETAILS": b,
                "Name": "",
                "ID": b,
                "Driver": "bitmain",
                "Kernel": "",
                "Model": f"Bitmain {model.name}",
                "Device Path": "",
                "Chips": model.chips_per_board,
                "Frequency": 525.0,
                "Voltage": 13.6,
            }
            for b in range(model.hashboards)
        ]
        return self._ok(when, 69, "Device Details", DEVDETAILS=details)

    def _cmd_summary(self, reading: MinerReading, when: int) -> Reply:
        mhs = round(reading.reported_hashrate_th * 1e6, 2)
        summary = {
            "Elapsed": int(reading.uptime_s),
            "MHS av": round(reading.hashrate_th * 1e6, 2),
            "MHS 5s": mhs,
            "MHS 1m": mhs,
            "MHS 5m": mhs,
            "MHS 15m": mhs,
            "Accepted": 0,
            "Rejected": 0,
            "Hardware Errors": 0,
        }
        return self._ok(when, 11, "Summary", SUMMARY=[summary])

    def _cmd_devs(self, reading: MinerReading, when: int) -> Reply:
        devs = [
            {"ASC": b, "Name": "BC5", "ID": b, "Enabled": "Y", "Status": "Alive"}
            | {"MHS 5s": round(th * 1e6, 2), "MHS 1m": round(th * 1e6, 2)}
            for b, th in enumerate(reading.board_hashrate_th)
        ]
        return self._ok(when, 9, f"{len(devs)} ASC(s)", DEVS=devs)

    def _cmd_pools(self, reading: MinerReading, when: int) -> Reply:
        pools = replies.pools_section(self.miner, reading)
        return self._ok(when, 7, f"{len(pools)} Pool(s)", POOLS=pools)

    def _cmd_fans(self, reading: MinerReading, when: int) -> Reply:
        fans = [
            {"FAN": i, "ID": i, "RPM": rpm, "Speed": 100} for i, rpm in enumerate(reading.fan_rpm)
        ]
        return self._ok(when, 202, f"{len(fans)} Fan(s)", FANS=fans)

    def _cmd_temps(self, reading: MinerReading, when: int) -> Reply:
        temps = [
            {"TEMPS": b, "ID": b, "Board": reading.board_temp_c[b], "Chip": chip}
            for b, chip in enumerate(reading.chip_temp_c)
        ]
        return self._ok(when, 201, f"{len(temps)} Temp(s)", TEMPS=temps)

    def _cmd_tunerstatus(self, reading: MinerReading, when: int) -> Reply:
        chains = [
            {"HashchainIndex": 6 + b, "Status": "Stable", "PowerLimitWatt": 0}
            for b in range(self.miner.model.hashboards)
        ]
        tuner = {
            "PowerLimit": round(reading.power_target_w),
            "ApproximateMinerPowerConsumption": self.miner.reported_watts_json(),
            "TunerChainStatus": chains,
        }
        return self._ok(when, 1, "Tuner Status", TUNERSTATUS=[tuner])
