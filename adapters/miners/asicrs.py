"""The asic-rs fleet driver (``driver.type = "asic-rs"``): the pyasic driver's port on asic-rs.

asic-rs (``pyasic-rs`` on PyPI) is the native successor of pyasic: a Rust library whose
protocol work runs outside the interpreter. This driver keeps everything the pyasic driver
promises (semaphore, hard deadline and transient retry on every call, confirmation from the
miner's own telemetry, the outcome union) by reusing its machinery, and changes only how a
miner is identified, read and commanded:

- discovery: ``MinerFactory().get_miner(ip)``; capabilities from ``supports_pause``,
  ``supports_resume`` and ``supports_set_power_limit``;
- reads: ``get_data`` with every field the confirmation does not need excluded (LuxOS's
  hashrate is its hashboards' sum: asic-rs 0.8.6 reads no total from it); the
  ``OperatingState`` is kept with the reading (it never confirms on its own: a liar's state
  says paused while it hashes, so hashrate and wattage still decide);
- curtail and resume: ``pause()`` / ``resume()``; power target: ``set_power_limit``.

Firmware curves: asic-rs exposes presets and power bounds, but this driver does not read
them yet; every miner's curve comes from the site's config (``read_firmware_curves`` says
None for each).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

from adapters.miners.capabilities import Capabilities, Firmware
from adapters.miners.config import AsicRsDriverConfig
from adapters.miners.driver import PyasicDriver, _Miner
from adapters.miners.registry import DRIVERS, Inventory
from adapters.miners.telemetry import Telemetry, num
from controller.curves.book import FirmwareCurve
from controller.domain import FleetSpec
from controller.runtime.ports import Clock

#: The MinerData fields a read needs, per firmware; get_data is told to skip every other one.
#: asic-rs 0.8.6 reads no total hashrate from LuxOS (the hashboards' sum stands in) and no
#: wattage from stock firmware.
READ_FIELDS: dict[str, frozenset[str]] = {
    "luxos": frozenset({"Hashrate", "Hashboards", "Wattage", "TuningTarget", "OperatingState"}),
    "stock": frozenset({"Hashrate", "Wattage", "OperatingState"}),
    "braiins": frozenset({"Hashrate", "Wattage", "TuningTarget", "OperatingState"}),
    "other": frozenset({"Hashrate", "Hashboards", "Wattage", "TuningTarget", "OperatingState"}),
}
#: The Braiins OS+ password used when the config names none: pyasic's default.
BRAIINS_DEFAULT_PASSWORD = "root"  # noqa: S105  (a factory default, not a secret)
#: Enough to confirm a curtail or a resume (hashrate, or power near sleep).
QUICK_FIELDS: dict[str, frozenset[str]] = {
    "luxos": frozenset({"Hashrate", "Hashboards", "Wattage"}),
    "stock": frozenset({"Hashrate"}),
    "braiins": frozenset({"Hashrate", "Wattage"}),
    "other": frozenset({"Hashrate", "Hashboards", "Wattage"}),
}


@functools.cache
def asic_rs() -> ModuleType:
    """The ``pyasic_rs`` module (the optional ``hashspark[asicrs]`` extra), imported on use."""
    import pyasic_rs  # noqa: PLC0415

    module: ModuleType = pyasic_rs
    return module


@functools.cache
def _excluded(keep: frozenset[str]) -> list[Any]:
    fields = asic_rs().asic_rs.DataField
    names = [n for n in dir(fields) if n[:1].isupper() and n not in keep]
    return [getattr(fields, n) for n in names]


def firmware_of(name: str) -> Firmware:
    """asic-rs's firmware name to ours."""
    text = name.lower()
    if "lux" in text:
        return "luxos"
    if "braiins" in text or "bos" in text:
        return "braiins"
    if "stock" in text:
        return "stock"
    return "other"


def capabilities_of_rs(miner: Any) -> Capabilities:
    """An asic-rs miner's capabilities, from its own ``supports_*`` answers."""
    return Capabilities(
        firmware=firmware_of(str(miner.firmware)),
        model=str(miner.model),
        can_stop=bool(miner.supports_pause) and bool(miner.supports_resume),
        can_throttle=bool(miner.supports_set_power_limit),
        power_modes=bool(miner.supports_presets),
    )


def telemetry_of_rs(data: Any) -> Telemetry:
    """asic-rs ``MinerData`` to a ``Telemetry``; absent or unparsable fields become None."""

    unit = asic_rs().asic_rs.HashRateUnit.TeraHash

    def th(rate: Any) -> float | None:
        return None if rate is None else num(rate.as_unit(unit).value)

    hashrate_th = th(data.hashrate)
    if hashrate_th is None:  # LuxOS: the boards' hashrates, where they all answered
        boards = [th(b.hashrate) for b in data.hashboards or ()]
        if boards and all(b is not None for b in boards):
            hashrate_th = math.fsum(b for b in boards if b is not None)
    target = data.tuning_target
    uptime = data.uptime
    mining = data.is_mining
    state = data.operating_state
    return Telemetry(
        hashrate_th=hashrate_th,
        power_w=num(data.wattage),
        power_limit_w=num(target.watts) if target is not None else None,
        is_mining=mining if isinstance(mining, bool) else None,
        uptime_s=uptime.total_seconds() if uptime is not None else None,
        state=None if state is None else str(state),
    )


class AsicRsDriver(PyasicDriver):
    """A ``MinerDriver`` over real (or simulated) miners reached through asic-rs."""

    async def _identify(self, ip: str) -> tuple[Any, Capabilities] | None:
        lib = asic_rs()
        seconds = max(1, math.ceil(self._cfg.discovery_timeout_s))
        factory = lib.MinerFactory().with_identification_timeout_secs(seconds)
        handle = await self._call(
            "discovery", lambda: factory.get_miner(ip), self._cfg.discovery_timeout_s
        )
        if handle is None:
            return None
        return handle, capabilities_of_rs(handle)

    def _set_credentials(self, handle: Any, caps: Capabilities) -> None:
        password = None
        match caps.firmware:
            case "stock":
                secret = self._cfg.antminer_web_password
                password = None if secret is None else secret.get_secret_value()
            case "braiins":
                # Without a configured password, pyasic's default (root/root), not asic-rs's
                # (an empty password before BOS 25.07): one config reaches the same miners
                # through either driver.
                secret = self._cfg.braiins_password
                password = BRAIINS_DEFAULT_PASSWORD if secret is None else secret.get_secret_value()
            case "luxos" | "other":
                password = None
        if password is not None:
            handle.set_auth("root", password)

    async def _fetch(self, m: _Miner, *, quick: bool, uptime: bool) -> Telemetry:
        handle = m.handle
        assert m.caps is not None
        keep = (QUICK_FIELDS if quick else READ_FIELDS)[m.caps.firmware]
        if uptime:
            keep = keep | {"Uptime"}
        exclude = _excluded(keep)
        data = await self._call(
            "read", lambda: handle.get_data(exclude=exclude), self._cfg.call_timeout_s
        )
        return telemetry_of_rs(data)

    async def _act(self, m: _Miner, what: str, *, sleep: bool) -> None:
        handle = m.handle
        since = self._clock.now()
        method: Callable[[], Any] = handle.pause if sleep else handle.resume
        ok = await self._checked(m, what, method)
        if not ok:
            await self._refused(m, what, "the firmware refused", since)

    async def read_firmware_curves(self) -> tuple[FirmwareCurve | None, ...]:
        """None for every miner: this driver does not read presets or power bounds yet."""
        return tuple(None for _ in self.addresses)


def _build(
    config: AsicRsDriverConfig, fleet: FleetSpec, clock: Clock, inventory: Inventory
) -> AsicRsDriver:
    return AsicRsDriver(
        fleet, list(inventory.addresses), config, clock, firmware=list(inventory.firmware)
    )


DRIVERS.register("asic-rs", AsicRsDriverConfig, _build)
