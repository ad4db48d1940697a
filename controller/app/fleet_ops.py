"""``hashspark fleet status|curtail|resume|power-limit``: manual operations, confirmed.

Targets are addresses, ``FIRST-LAST`` ranges, CIDR blocks and/or ``--config FILE`` (every
miner of every site that lists addresses; the first pyasic driver section supplies the
settings and credentials). Every command is confirmed from the miner's telemetry exactly
as in the daemon; the exit status is 1 when any miner ends unconfirmed or unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adapters.miners.addresses import AddressError, expand_all
from adapters.miners.capabilities import Capabilities
from adapters.miners.config import PyasicDriverConfig
from adapters.miners.driver import PyasicDriver
from controller.catalog import NAMEPLATES
from controller.config import ConfigError, load_config
from controller.decision.reconcile import (
    CommandBatch,
    Dispatched,
    outcome_name,
    outcome_reason,
)
from controller.domain import OFF, FleetSpec, build_fleet
from controller.runtime.clocks.system import SystemClock
from controller.runtime.redact import scrub

EXIT_OK = 0
EXIT_UNCONFIRMED = 1
EXIT_USAGE = 2
#: Used for miners whose model is not in the catalog: only the thresholds depend on it.
DEFAULT_NAMEPLATE = (100.0, 3000.0)


@dataclass(frozen=True, slots=True)
class Row:
    """One miner's line in the output."""

    ip: str
    firmware: str
    model: str
    outcome: str
    seconds: float | None
    detail: str

    def as_json(self) -> dict[str, object]:
        """The row as a JSON object."""
        return {
            "ip": self.ip,
            "firmware": self.firmware,
            "model": self.model,
            "outcome": self.outcome,
            "seconds": self.seconds,
            "detail": self.detail,
        }


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register status, curtail, resume and power-limit under ``fleet``."""
    for name, text in [
        ("status", "read every target's state"),
        ("curtail", "stop mining and confirm"),
        ("resume", "resume mining and confirm"),
        ("power-limit", "set a power limit (W) and confirm"),
    ]:
        p = sub.add_parser(name, help=text)
        if name == "power-limit":
            p.add_argument("watts", type=float, metavar="WATTS")
        p.add_argument("targets", nargs="*", metavar="TARGET", help="address, FIRST-LAST, CIDR")
        p.add_argument("--config", type=Path, help="every miner listed in this config")
        p.add_argument("--json", action="store_true", help="JSON instead of a table")
        p.add_argument("--concurrency", type=int, help="pyasic calls in flight")
        p.add_argument("--confirm-timeout", type=float, help="seconds to confirm each miner")


def run(args: argparse.Namespace) -> int:
    """Run one manual operation."""
    try:
        addresses, config = _targets(args)
    except (AddressError, ConfigError, ValueError) as exc:
        print(f"hashspark fleet {args.fleet_command}: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    started = time.perf_counter()
    rows = asyncio.run(operate(args.fleet_command, addresses, config, getattr(args, "watts", None)))
    if args.json:
        print(json.dumps([r.as_json() for r in rows], indent=1))
    else:
        print(table(rows))
    bad = [r for r in rows if r.outcome not in ("applied", "reachable")]
    print(
        f"# {len(rows) - len(bad)} of {len(rows)} ok in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return EXIT_UNCONFIRMED if bad else EXIT_OK


def _targets(args: argparse.Namespace) -> tuple[list[str], PyasicDriverConfig]:
    specs = list(args.targets)
    config = PyasicDriverConfig(type="pyasic")
    if args.config is not None:
        loaded = load_config(args.config)
        pyasic_configs = [
            s.driver for s in loaded.config.sites if isinstance(s.driver, PyasicDriverConfig)
        ]
        if pyasic_configs:
            config = pyasic_configs[0]
        for site in loaded.config.sites:
            if all(g.addresses is not None for g in site.miners):
                specs += site.addresses()[0]
    if not specs:
        raise ValueError("name at least one TARGET or --config FILE")
    addresses = list(dict.fromkeys(expand_all(dict.fromkeys(specs))))
    update: dict[str, object] = {}
    if args.concurrency is not None:
        update["concurrency"] = args.concurrency
    if args.confirm_timeout is not None:
        update["confirm_timeout_s"] = args.confirm_timeout
    if update:
        config = PyasicDriverConfig.model_validate(config.model_dump() | update)
    return addresses, config


async def discover_at(addresses: Sequence[str], config: PyasicDriverConfig) -> PyasicDriver:
    """A driver for the miners at ``addresses``, discovered (on a placeholder fleet until
    their models are known)."""
    placeholder = build_fleet([("unknown", len(addresses), [DEFAULT_NAMEPLATE])])
    driver = PyasicDriver(placeholder, addresses, config, SystemClock())
    await driver.discover()
    return driver


def catalog_model(caps: Capabilities) -> str:
    """The catalog's name for a discovered model ("S21 (LuxOS)" -> "Antminer S21"), or the
    firmware's own when the catalog does not know it."""
    raw = caps.model.split(" (")[0]
    return f"Antminer {raw}" if f"Antminer {raw}" in NAMEPLATES else raw


def _fleet(driver: PyasicDriver, watts: float | None) -> tuple[FleetSpec, np.ndarray]:
    """Per-miner curves from the discovered models; the target point for ``watts``."""
    groups: list[tuple[str, int, list[tuple[float, float]]]] = []
    targets: list[int] = []
    for caps in driver.capabilities:
        raw = caps.model.split(" (")[0] if caps else ""
        model = catalog_model(caps) if caps else ""
        hashrate_th, power_w = NAMEPLATES.get(model, DEFAULT_NAMEPLATE)
        points = [(hashrate_th, power_w)]
        if watts is not None and watts != power_w:
            points.append((hashrate_th * watts / power_w, watts))
        ordered = sorted(p[1] for p in points)
        targets.append(1 + ordered.index(watts if watts is not None else power_w))
        groups.append((raw or "unknown", 1, points))
    return build_fleet(groups), np.array(targets, dtype=np.int64)


async def operate(
    command: str, addresses: list[str], config: PyasicDriverConfig, watts: float | None
) -> list[Row]:
    """Discover the targets, then read or command and confirm them."""
    driver = await discover_at(addresses, config)
    fleet, target = _fleet(driver, watts)
    driver.adopt_fleet(fleet)
    observed = await driver.observe()
    if command == "status":
        return _status_rows(driver, observed.reachable.tolist(), observed.point.tolist())
    everyone = np.arange(fleet.size, dtype=np.int64)
    match command:
        case "curtail":
            points = np.full(fleet.size, OFF, dtype=np.int64)
        case "resume":
            points = fleet.top_point.copy()
        case _:
            points = target
    report = await driver.apply(CommandBatch(everyone, points))
    return [_row(driver, d) for d in report.dispatched]


def _row(driver: PyasicDriver, d: Dispatched) -> Row:
    caps = driver.capabilities[d.miner]
    firmware, model = (caps.firmware, caps.model) if caps else ("?", "?")
    name, detail = outcome_name(d.outcome), outcome_reason(d.outcome) or ""
    return Row(driver.addresses[d.miner], firmware, model, name, d.confirmation_s, detail)


def _status_rows(driver: PyasicDriver, reachable: list[bool], point: list[int]) -> list[Row]:
    rows: list[Row] = []
    for i, ip in enumerate(driver.addresses):
        caps = driver.capabilities[i]
        t = driver.telemetry[i]
        if not reachable[i] or t is None:
            rows.append(
                Row(
                    ip,
                    caps.firmware if caps else "?",
                    caps.model if caps else "?",
                    "unreachable",
                    None,
                    "",
                )
            )
            continue
        assert caps is not None
        state = "off" if point[i] == OFF else "running"
        rows.append(
            Row(ip, caps.firmware, caps.model, "reachable", None, f"{state}; {t.describe()}")
        )
    return rows


def table(rows: list[Row]) -> str:
    """Rows as an aligned text table."""
    head = ("ADDRESS", "FIRMWARE", "MODEL", "OUTCOME", "SECONDS", "DETAIL")
    cells = [
        (
            r.ip,
            r.firmware,
            r.model,
            r.outcome,
            "-" if r.seconds is None else f"{r.seconds:.2f}",
            r.detail,
        )
        for r in rows
    ]
    widths = [max(len(str(c[k])) for c in [head, *cells]) for k in range(5)]
    lines = [
        "  ".join(str(c[k]).ljust(widths[k]) for k in range(5)) + "  " + c[5]
        for c in [head, *cells]
    ]
    return "\n".join(line.rstrip() for line in lines)
