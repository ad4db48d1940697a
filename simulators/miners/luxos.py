"""LuxOS: the LUXminer JSON API on 4028 (sessions, curtail, profiles, ATM).

Status codes and messages for ``version`` (22), ``groups`` (324), ``atm`` (339) and a
second ``logon`` (402 "Another session is active") follow the recorded replies in
LuxorLabs/luxos-tooling's tests; the other fields follow what pyasic 0.79.0 parses.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from simulators.miners import replies
from simulators.miners.cgminer import Reply, error, invalid_command, status
from simulators.miners.miner import Acted, Pretended, Refused, SimMiner

VERSION = "2024.11.12.203810-8d24e5b"
API_VERSION = "3.7"
_PROFILE_STEPS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1)
_NOMINAL_MHZ = 525


@dataclass(frozen=True, slots=True)
class Profile:
    """One LuxOS power profile: a frequency step with its power and hashrate."""

    name: str
    watts: int
    hashrate_th: float
    frequency_mhz: int
    voltage: float

    def to_json(self) -> dict[str, Any]:
        """The PROFILES entry."""
        return {
            "Profile Name": self.name,
            "Frequency": self.frequency_mhz,
            "Hashrate": round(self.hashrate_th, 2),
            "IsDynamic": False,
            "IsTuned": False,
            "Step": self.name,
            "Voltage": self.voltage,
            "Watts": self.watts,
        }


def profiles_for(miner: SimMiner) -> tuple[Profile, ...]:
    """The profile ladder of a model; the nameplate step is called "default"."""
    model = miner.model
    out = []
    for step in _PROFILE_STEPS:
        watts = round(model.clamp_power_w(model.nameplate_power_w * step))
        th = model.hashrate_at_th(watts)
        mhz = round(_NOMINAL_MHZ * th / model.nameplate_hashrate_th)
        name = "default" if step == 1.0 else f"{mhz}MHz"
        out.append(Profile(name, watts, th, mhz, round(11.0 + 3.0 * th / 200, 2)))
    return tuple(out)


class LuxosApi:
    """Answers LuxOS commands for one miner."""

    description = f"LUXminer {VERSION}"
    null_terminated = True

    def __init__(self, miner: SimMiner) -> None:
        self.miner = miner
        self.profiles = {p.name: p for p in profiles_for(miner)}
        self.profile = "default"
        self.session_id = ""
        self.atm_enabled = True
        self.red_led = "off"
        miner.state.set_power_target(miner.clock.now(), self.profiles["default"].watts)

    # -- helpers ------------------------------------------------------------------------

    def _ok(self, when: int, code: int, msg: str, **sections: Any) -> Reply:
        return {"STATUS": status(self, when, code, msg), **sections, "id": 1}

    def _privileged(self, parameter: str | None, when: int) -> list[str] | Reply:
        """The arguments after a valid session id, or the error reply."""
        args = [] if parameter is None else [a.strip() for a in parameter.split(",")]
        if not self.session_id or not args or args[0] != self.session_id:
            return error(self, when, 45, "Invalid session id")
        return args[1:]

    def _act(self, result: Acted | Pretended | Refused, when: int, ok: Reply) -> Reply:
        if isinstance(result, Refused):
            return error(self, when, 45, f"Command refused: {result.reason}")
        return ok

    # -- commands -----------------------------------------------------------------------

    def answer(self, command: str, parameter: str | None, when: int) -> Reply:
        """The reply to one LuxOS command."""
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            return invalid_command(self, when)
        reply: Reply = handler(parameter, when)
        return reply

    def _cmd_version(self, _p: str | None, when: int) -> Reply:
        return self._ok(
            when,
            22,
            "LUXminer versions",
            VERSION=[
                {
                    "API": API_VERSION,
                    "CompileTime": "Tue Nov 12 20:38:10 UTC 2024",
                    "LUXminer": VERSION,
                    "Miner": VERSION,
                    "Type": self.miner.model.name,
                }
            ],
        )

    def _cmd_config(self, _p: str | None, when: int) -> Reply:
        miner = self.miner
        return self._ok(
            when,
            33,
            "CGMiner config",
            CONFIG=[
                {
                    "ASC Count": miner.model.hashboards,
                    "Hostname": miner.hostname,
                    "IsAtmEnabled": self.atm_enabled,
                    "MACAddr": miner.mac.lower(),
                    "Model": miner.model.name,
                    "Pool Count": 1,
                    "Profile": self.profile,
                    "RedLed": self.red_led,
                    "SerialNumber": miner.serial,
                    "SystemStatus": "Ready",
                }
            ],
        )

    def _cmd_summary(self, _p: str | None, when: int) -> Reply:
        entry = replies.summary_entry(self.miner.read())
        return self._ok(when, 11, "Summary", SUMMARY=[entry])

    def _cmd_stats(self, _p: str | None, when: int) -> Reply:
        head = {"LUXminer": VERSION, "Miner": VERSION, "Type": self.miner.model.name}
        entries = replies.stats_entries(self.miner, self.miner.read(), head)
        return self._ok(when, 70, "CGMiner stats", STATS=entries)

    def _cmd_pools(self, _p: str | None, when: int) -> Reply:
        pools = replies.pools_section(self.miner, self.miner.read())
        for pool in pools:
            pool["GROUP"] = 0
        return self._ok(when, 7, f"{len(pools)} Pool(s)", POOLS=pools)

    def _cmd_groups(self, _p: str | None, when: int) -> Reply:
        groups = [{"GROUP": 0, "Name": "default", "Quota": 1.0}]
        return self._ok(when, 324, "List groups", GROUPS=groups)

    def _cmd_fans(self, _p: str | None, when: int) -> Reply:
        reading = self.miner.read()
        speed = round(100 * reading.fan_rpm[0] / self.miner.model.fan_max_rpm)
        fans = [
            {"FAN": i, "ID": i, "RPM": rpm, "Speed": speed} for i, rpm in enumerate(reading.fan_rpm)
        ]
        fanctrl = [{"MinFans": self.miner.model.fans, "PowerOffSpeed": 100}]
        return self._ok(when, 202, f"{len(fans)} Fan(s)", FANS=fans, FANCTRL=fanctrl)

    def _cmd_power(self, _p: str | None, when: int) -> Reply:
        watts = self.miner.reported_watts_json()
        return self._ok(when, 335, "Power", POWER=[{"PSU": True, "Watts": watts}])

    def _cmd_profiles(self, _p: str | None, when: int) -> Reply:
        entries = [p.to_json() for p in self.profiles.values()]
        return self._ok(when, 327, "Profiles", PROFILES=entries)

    def _cmd_tempctrl(self, _p: str | None, when: int) -> Reply:
        ctrl = [{"Dangerous": 110, "Hot": 95, "Mode": "Auto", "Target": 75}]
        return self._ok(when, 325, "Temperature control", TEMPCTRL=ctrl)

    def _cmd_temps(self, _p: str | None, when: int) -> Reply:
        reading = self.miner.read()
        temps = [
            {"ID": b, "Board": round(reading.board_temp_c[b]), "Chip": round(chip)}
            for b, chip in enumerate(reading.chip_temp_c)
        ]
        return self._ok(when, 201, f"{len(temps)} Temp(s)", TEMPS=temps)

    def _cmd_devdetails(self, _p: str | None, when: int) -> Reply:
        details = [
            {"DEVDETAILS": b, "Name": "ASC", "ID": b, "Driver": "luxminer", "Model": "BM1362"}
            for b in range(self.miner.model.hashboards)
        ]
        return self._ok(when, 69, "Device Details", DEVDETAILS=details)

    def _cmd_session(self, _p: str | None, when: int) -> Reply:
        return self._ok(when, 306, "Session", SESSION=[{"SessionID": self.session_id}])

    def _cmd_logon(self, _p: str | None, when: int) -> Reply:
        if self.session_id:
            return error(self, when, 402, "Another session is active")
        self.session_id = secrets.token_hex(4)
        return self._ok(when, 307, "Session created", SESSION=[{"SessionID": self.session_id}])

    def _cmd_logoff(self, parameter: str | None, when: int) -> Reply:
        args = self._privileged(parameter, when)
        if isinstance(args, dict):
            return args
        self.session_id = ""
        return self._ok(when, 309, "Session terminated")

    def _cmd_curtail(self, parameter: str | None, when: int) -> Reply:
        args = self._privileged(parameter, when)
        if isinstance(args, dict):
            return args
        state = self.miner.state
        if args == ["sleep"]:
            result = self.miner.command(state.sleep)
        elif args == ["wakeup"]:
            result = self.miner.command(state.wake)
        else:
            return error(self, when, 45, "Invalid curtail mode; expected sleep or wakeup")
        return self._act(result, when, self._ok(when, 341, "Curtail operation accepted"))

    def _cmd_profileset(self, parameter: str | None, when: int) -> Reply:
        args = self._privileged(parameter, when)
        if isinstance(args, dict):
            return args
        if len(args) != 1 or args[0] not in self.profiles:
            return error(self, when, 45, f"Invalid profile: {','.join(args)}")
        profile = self.profiles[args[0]]

        def apply(now: float) -> None:
            self.profile = profile.name
            self.miner.state.set_power_target(now, profile.watts)

        result = self.miner.command(apply)
        ok = self._ok(
            when, 330, "Profile changed", PROFILE=[{"Profile": profile.name, "Result": "success"}]
        )
        return self._act(result, when, ok)

    def _cmd_atm(self, _p: str | None, when: int) -> Reply:
        atm = {
            "Enabled": self.atm_enabled,
            "MaxProfile": "default",
            "MinProfile": "",
            "PostRampMinutes": 15,
            "StartupMinutes": 15,
            "TempWindow": 7.0,
        }
        return self._ok(when, 339, "ATM configuration values", ATM=[atm])

    def _cmd_atmset(self, parameter: str | None, when: int) -> Reply:
        args = self._privileged(parameter, when)
        if isinstance(args, dict):
            return args
        for arg in args:
            key, _, value = arg.partition("=")
            if key == "enabled" and value in ("true", "false"):
                self.atm_enabled = value == "true"
            elif key not in ("startup_minutes", "post_ramp_minutes", "temp_window"):
                return error(self, when, 45, f"Invalid ATM parameter: {arg}")
        return self._ok(when, 340, "Advanced Thermal Management configuration updated")

    def _cmd_ledset(self, parameter: str | None, when: int) -> Reply:
        args = self._privileged(parameter, when)
        if isinstance(args, dict):
            return args
        if len(args) == 2 and args[0] == "red" and args[1] in ("blink", "off", "on"):
            self.red_led = args[1]
            return self._ok(when, 336, "LED set")
        return error(self, when, 45, "Invalid LED parameters")
