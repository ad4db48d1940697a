"""A simulated miner: identity, physical state and faults, shared by every protocol server."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from controller.runtime.ports import Clock
from simulators.miners.faults import Fault, FaultKind
from simulators.miners.models import MinerModel
from simulators.miners.state import MinerReading, MinerState


class Family(StrEnum):
    """Firmware families the simulator speaks."""

    LUXOS = "luxos"
    ANTMINER = "antminer"
    BRAIINS = "braiins"


@dataclass(frozen=True, slots=True)
class Acted:
    """The command was carried out."""


@dataclass(frozen=True, slots=True)
class Pretended:
    """The command was acknowledged but not carried out (the "liar" fault)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The command was refused (the "reject" fault); the firmware replies with an error."""

    reason: str


CommandResult = Acted | Pretended | Refused


#: Commands each miner remembers with their time (``/meter?log=1`` shows them).
COMMAND_LOG_LEN = 256


class SimMiner:
    """One miner: its address, firmware family, physics and current faults."""

    def __init__(
        self, ip: str, family: Family, model: MinerModel, clock: Clock, *, seed: int = 0
    ) -> None:
        self.ip = ip
        self.family = family
        self.model = model
        self.clock = clock
        self.state = MinerState(model, now=clock.now(), seed=seed)
        self.faults: dict[FaultKind, Fault] = {}
        # State-changing requests received, whatever came of them: the meter's command
        # count, from which tests tell a controller that re-commands everything (a storm)
        # from one that commands only what differs.
        self.commands = 0
        # The same requests with their (simulated) time and kind, newest last and bounded:
        # tests read from it when each miner was told to sleep, wake or change its target.
        self.command_log: deque[tuple[float, str]] = deque(maxlen=COMMAND_LOG_LEN)
        octets = [int(x) for x in ip.split(".")]
        self.mac = "02:48:53:{:02X}:{:02X}:{:02X}".format(*octets[1:])
        self.serial = f"HS{octets[1]:03d}{octets[2]:03d}{octets[3]:03d}"
        self.hostname = f"sim-{family.value}-{octets[2]}-{octets[3]}"

    def read(self) -> MinerReading:
        """The true operating point now."""
        return self.state.read(self.clock.now())

    def reported_power_w(self) -> float:
        """The wattage the firmware reports: the truth, unless a fault makes it lie."""
        bogus = self.faults.get(FaultKind.BOGUS_POWER)
        return self.read().power_w if bogus is None else bogus.reported_w

    def reported_watts_json(self) -> int | float:
        """The reported wattage as a JSON API puts it: whole watts, or NaN and infinities as
        they are (Python's JSON writes them as ``NaN``, ``Infinity``; pyasic reads them)."""
        watts = self.reported_power_w()
        return round(watts) if math.isfinite(watts) else watts

    def reported_watts_uint(self) -> int:
        """The reported wattage as an unsigned protocol field (Braiins OS+ gRPC) carries it:
        a fault's negative or NaN wattage cannot be written there, so the truth is."""
        watts = self.reported_power_w()
        if not math.isfinite(watts) or not 0 <= watts < 2**63:
            watts = self.read().power_w
        return round(watts)

    def command(self, action: Callable[[float], object]) -> CommandResult:
        """Run a state-changing ``action(now)`` unless a fault says otherwise; count it."""
        self.commands += 1
        kind = (
            "sleep"
            if action == self.state.sleep
            else "wake"
            if action == self.state.wake
            else "power_target"
        )
        self.command_log.append((self.clock.now(), kind))
        if FaultKind.REJECT in self.faults:
            return Refused("command rejected")
        if FaultKind.LIAR in self.faults:
            return Pretended()
        action(self.clock.now())
        return Acted()

    async def gate(self) -> None:
        """Hold a reply as the faults say: forever when silent, ``latency_s`` when slow."""
        if FaultKind.SILENT in self.faults:
            await asyncio.Event().wait()
        slow = self.faults.get(FaultKind.SLOW)
        if slow is not None:
            await asyncio.sleep(slow.latency_s)

    def apply_fault(self, fault: Fault) -> None:
        """Give this miner a fault (replacing one of the same kind)."""
        now = self.clock.now()
        if fault.kind is FaultKind.REBOOT:
            self.state.reboot(now, fault.reboot_s)
            return  # a reboot is an event, not a lasting condition
        self.faults[fault.kind] = fault
        if fault.kind is FaultKind.DRIFT:
            self.state.drift_after_s = fault.drift_after_s

    def clear_faults(self) -> None:
        """Remove every lasting fault."""
        self.faults.clear()
        self.state.drift_after_s = None
