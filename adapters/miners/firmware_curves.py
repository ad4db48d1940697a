"""Efficiency curves as the firmware states them, read through pyasic 0.79.0.

- **LuxOS**: the ``profiles`` command on 4028 (``handle.rpc.profiles()``): every power
  profile with its ``Watts`` and ``Hashrate`` (TH/s). ``set_power_limit`` can only reach
  these profiles, so they are the points. (pyasic's own ``MiningPreset`` rounds the
  hashrate to whole TH/s; the raw reply keeps it.)
- **Braiins OS+**: the tuner's saved power-target profiles over gRPC
  (``handle.web.list_target_profiles()``: per profile the target in W, the measured
  hashrate and the estimated consumption), kept within the tuner's power-target
  constraints (``handle.web.get_constraints()``). A profile's target is the point's power
  (the tuner holds the miner at its target; commanding it reuses the tuned profile).
- Stock Antminer firmware states no curve.

The parsers are pure (tested on recorded replies); the driver runs the calls under its
deadlines and retries.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from controller.curves.book import FirmwareCurve, sorted_points

LUXOS_DETAIL = "luxos profiles"
BRAIINS_DETAIL = "bos+ tuner profiles"


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def luxos_curve(reply: Any) -> FirmwareCurve | None:
    """Points from a LuxOS ``profiles`` reply; None when it holds no usable profile."""
    try:
        entries = reply["PROFILES"]
    except (KeyError, TypeError):
        return None
    points: list[tuple[float, float]] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        watts, hashrate = _num(entry.get("Watts")), _num(entry.get("Hashrate"))
        if watts is not None and hashrate is not None:
            points.append((hashrate, watts))
    if not points:
        return None
    return FirmwareCurve(sorted_points(points), LUXOS_DETAIL)


def _watt(message: Any) -> float | None:
    return _num(message.get("watt")) if isinstance(message, dict) else None


def braiins_curve(profiles: Any, constraints: Any = None) -> FirmwareCurve | None:
    """Points from BOS+ ``ListTargetProfiles`` (and ``GetConstraints``) as pyasic's dicts.

    pyasic returns betterproto's ``to_pydict()``: camelCase keys, defaults omitted.
    """
    if not isinstance(profiles, dict):
        return None
    low = high = None
    if isinstance(constraints, dict):
        power = constraints.get("tunerConstraints", {}).get("powerTarget", {})
        if isinstance(power, dict):
            low, high = _watt(power.get("min")), _watt(power.get("max"))
    points: list[tuple[float, float]] = []
    for entry in profiles.get("powerTargetProfiles", []) or []:
        if not isinstance(entry, dict):
            continue
        target = _watt(entry.get("target"))
        measured = entry.get("measuredHashrate")
        ghs = _num(measured.get("gigahashPerSecond")) if isinstance(measured, dict) else None
        if target is None or ghs is None:
            continue
        if (low is not None and target < low) or (high is not None and target > high):
            continue
        points.append((ghs / 1000.0, target))
    if not points:
        return None
    return FirmwareCurve(sorted_points(points), BRAIINS_DETAIL)


#: A pyasic call the driver runs under its deadline and retries.
Call = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]


async def read_curve(handle: Any, firmware: str, call: Call) -> FirmwareCurve | None:
    """The curve a discovered miner's firmware states (None for firmware that states none)."""
    match firmware:
        case "luxos":
            return luxos_curve(await call("profiles", handle.rpc.profiles))
        case "braiins":
            web = handle.web
            profiles = await call("list_target_profiles", web.list_target_profiles)
            constraints = await call("get_constraints", web.get_constraints)
            return braiins_curve(profiles, constraints)
        case _:
            return None
