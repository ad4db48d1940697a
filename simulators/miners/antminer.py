"""Stock Antminer (S19j Pro, S21): the bmminer/cgminer API on 4028 (web UI: antminer_web).

Stock firmware has no power limit and reports no wattage.
"""

from __future__ import annotations

from typing import Any

from simulators.miners import replies
from simulators.miners.cgminer import Reply, invalid_command, status
from simulators.miners.miner import SimMiner

COMPILE_TIME = "Thu May  5 10:56:53 CST 2022"
_FIRMWARE = {  # model name -> (API program, its version, miner_version)
    "Antminer S19j Pro": ("BMMiner", "1.0.0", "uart_trans.1.3"),
    "Antminer S21": ("CGMiner", "4.11.1", "uart_trans.1.3"),
}


def firmware_program(miner: SimMiner) -> tuple[str, str, str]:
    """(API program, its version, miner_version) the model's stock firmware reports."""
    return _FIRMWARE.get(miner.model.name, ("CGMiner", "4.11.1", "uart_trans.1.3"))


class AntminerApi:
    """Answers bmminer/cgminer commands on 4028 for one stock Antminer."""

    null_terminated = True

    def __init__(self, miner: SimMiner) -> None:
        self.miner = miner
        program, version, _ = firmware_program(miner)
        self.program = program
        self.version = version
        self.description = f"{program.lower()} {version}"

    def _ok(self, when: int, code: int, msg: str, **sections: Any) -> Reply:
        return {"STATUS": status(self, when, code, msg), **sections, "id": 1}

    def _head(self) -> dict[str, Any]:
        _, _, miner_version = firmware_program(self.miner)
        return {
            self.program: self.version,
            "API": "3.1",
            "Miner": miner_version,
            "CompileTime": COMPILE_TIME,
            "Type": self.miner.model.name,
        }

    def answer(self, command: str, parameter: str | None, when: int) -> Reply:
        """The reply to one command."""
        miner = self.miner
        if command == "version":
            return self._ok(when, 22, f"{self.program} versions", VERSION=[self._head()])
        if command == "summary":
            return self._ok(when, 11, "Summary", SUMMARY=[replies.summary_entry(miner.read())])
        if command == "stats":
            head = {k: v for k, v in self._head().items() if k != "API"}
            entries = replies.stats_entries(miner, miner.read(), head)
            return self._ok(when, 70, f"{self.program} stats", STATS=entries)
        if command == "pools":
            pools = replies.pools_section(miner, miner.read())
            return self._ok(when, 7, f"{len(pools)} Pool(s)", POOLS=pools)
        if command == "devdetails":
            details = [
                {"DEVDETAILS": b, "Name": "BTM_SOC", "ID": b, "Driver": "bitmain", "Model": ""}
                for b in range(miner.model.hashboards)
            ]
            return self._ok(when, 69, "Device Details", DEVDETAILS=details)
        return invalid_command(self, when)
