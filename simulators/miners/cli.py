"""``hashspark simulate``: run a simulated fleet and its meter until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulators.miners.meter import DEFAULT_METER_PORT
from simulators.miners.miner import Family
from simulators.miners.models import MODELS

if TYPE_CHECKING:
    from simulators.miners.fleet import Fleet
    from simulators.miners.fleet_file import FaultConfig, FleetConfig

# The fleet modules import pyasic (its protobuf code), which costs about a second: they
# are imported when ``simulate`` runs, not whenever the hashspark command line is built.

EXIT_OK = 0
EXIT_USAGE = 2


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``simulate`` on the hashspark command line."""
    sim = subparsers.add_parser(
        "simulate", help="run simulated miners that speak real firmware protocols"
    )
    source = sim.add_mutually_exclusive_group(required=True)
    source.add_argument("--fleet", type=Path, metavar="FLEET.toml", help="fleet file")
    source.add_argument("--family", choices=[f.value for f in Family], help="one family")
    sim.add_argument("--count", type=int, default=1, help="miners (with --family)")
    sim.add_argument("--model", choices=sorted(MODELS), default="S19jPro", help="model key")
    sim.add_argument("--ip-start", default="127.42.0.1", help="first loopback address")
    sim.add_argument("--meter-port", type=int, default=None, help=f"default {DEFAULT_METER_PORT}")
    sim.add_argument("--speed", type=float, default=None, help="simulated seconds per second")
    return sim


def _config(args: argparse.Namespace) -> FleetConfig:
    from simulators.miners.fleet import consecutive_ips  # noqa: PLC0415  (see above)
    from simulators.miners.fleet_file import (  # noqa: PLC0415
        FleetConfig,
        FleetFileError,
        load_fleet_file,
    )

    if args.fleet is not None:
        config = load_fleet_file(args.fleet)
    else:
        if args.count < 1:
            raise FleetFileError("--count must be at least 1")
        consecutive_ips(args.ip_start, args.count)  # fails early on a bad range
        config = FleetConfig.model_validate(
            {
                "group": [
                    {
                        "family": args.family,
                        "model": args.model,
                        "count": args.count,
                        "ip_start": args.ip_start,
                    }
                ]
            }
        )
    updates: dict[str, Any] = {}
    if args.meter_port is not None:
        updates["meter_port"] = args.meter_port
    if args.speed is not None:
        if args.speed <= 0:
            raise FleetFileError("--speed must be > 0")
        updates["speed"] = args.speed
    return config.model_copy(update=updates)


def _raise_fd_limit(needed: int) -> None:
    """Each miner holds 1-2 listening sockets: lift the soft limit towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _apply_faults(fleet: Fleet, faults: tuple[FaultConfig, ...]) -> None:
    for fc in faults:
        await fleet.apply_fault(fleet.select(fc.miners, fc.fraction, fc.seed), fc.fault())


async def _serve(config: FleetConfig) -> int:
    from controller.runtime.clocks.simulated import ScaledClock  # noqa: PLC0415  (see above)
    from simulators.miners.fleet import FAMILIES, NEEDS_ROOT, Fleet  # noqa: PLC0415
    from simulators.miners.host import PortPermissionError  # noqa: PLC0415
    from simulators.miners.meter import Meter  # noqa: PLC0415

    specs = config.specs()
    clock = ScaledClock(time.time(), config.speed)
    fleet = Fleet(specs, clock, seed=config.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await fleet.start()
    except PortPermissionError as exc:
        families = ", ".join(f.value for f in FAMILIES if f not in NEEDS_ROOT)
        print(f"hashspark simulate: {exc}", file=sys.stderr)
        print(f"hashspark simulate: without root, simulate: {families}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"hashspark simulate: cannot listen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        async with Meter(fleet, config.meter_port):
            await _apply_faults(fleet, config.fault)
            print(f"ready {len(fleet.miners)} miners on {fleet.first_ip}..{fleet.last_ip}")
            sys.stdout.flush()
            await stop.wait()
    except OSError as exc:
        print(f"hashspark simulate: meter cannot listen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        await fleet.stop()
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run ``simulate`` with parsed arguments; returns the exit code."""
    try:
        config = _config(args)
        count = len(config.specs())
    except ValueError as exc:  # FleetFileError and pydantic's errors are ValueErrors
        print(f"hashspark simulate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _raise_fd_limit(4 * count + 1024)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(config))
    return EXIT_OK
