"""``hashspark fleet scan RANGE...`` (find miners, print a config fragment) and manual ops."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from collections import defaultdict
from dataclasses import dataclass

from adapters.miners.addresses import AddressError, expand_all
from adapters.miners.capabilities import capabilities_of
from adapters.miners.pyasic_lib import miner_protocol, pyasic
from controller.app import curves_cmd
from controller.app import fleet_ops as ops
from controller.catalog import NAMEPLATES
from controller.runtime.retry import hard_deadline

EXIT_OK = 0
EXIT_NONE_FOUND = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class Found:
    """One miner discovery identified."""

    ip: str
    model: str  # config model name (a catalog name when pyasic's model is known there)
    firmware: str
    can_throttle: bool


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``fleet`` on the hashspark command line."""
    fleet = subparsers.add_parser("fleet", help="find and inspect miners through pyasic")
    sub = fleet.add_subparsers(dest="fleet_command", required=True)
    scan = sub.add_parser("scan", help="discover miners and print a [[sites.miners]] fragment")
    scan.add_argument("ranges", nargs="+", metavar="RANGE", help="address, FIRST-LAST or CIDR")
    scan.add_argument("--concurrency", type=int, default=200, help="addresses probed at once")
    scan.add_argument("--timeout", type=float, default=10.0, help="seconds per address")
    ops.add_parsers(sub)
    curves_cmd.add_parser(sub)
    return fleet


def run(args: argparse.Namespace) -> int:
    """Run a ``fleet`` command; ``scan`` exits 1 when nothing answered, 2 on bad arguments."""
    if args.fleet_command == "curves":
        return curves_cmd.run(args)
    if args.fleet_command != "scan":
        return ops.run(args)
    try:
        ips = expand_all(args.ranges)
    except AddressError as exc:
        print(f"hashspark fleet scan: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.concurrency < 1 or not args.timeout > 0:
        print("hashspark fleet scan: --concurrency and --timeout must be positive", file=sys.stderr)
        return EXIT_USAGE
    found = asyncio.run(scan(ips, concurrency=args.concurrency, timeout_s=args.timeout))
    print(fragment(found), end="")
    print(f"# {len(found)} of {len(ips)} addresses answered", file=sys.stderr)
    return EXIT_OK if found else EXIT_NONE_FOUND


async def scan(ips: list[str], *, concurrency: int, timeout_s: float) -> list[Found]:
    """Identify the miners at ``ips``; at most ``concurrency`` probes at once, each bounded."""
    lib = pyasic()
    base = miner_protocol()
    gate = asyncio.Semaphore(concurrency)  # pyasic's own limit does not bound concurrency

    async def probe(ip: str) -> Found | None:
        async with gate:
            try:
                miner = await hard_deadline(lib.get_miner(ip), timeout_s)
            except (TimeoutError, OSError):
                return None
        if miner is None:
            return None
        caps = capabilities_of(miner, base)
        raw = str(miner.raw_model or caps.model)
        model = f"Antminer {raw}" if f"Antminer {raw}" in NAMEPLATES else raw
        return Found(ip, model, caps.firmware, caps.can_throttle)

    results = await asyncio.gather(*(probe(ip) for ip in ips))
    return [r for r in results if r is not None]


def fragment(found: list[Found]) -> str:
    """TOML ``[[sites.miners]]`` groups, one per model and firmware, addresses as ranges."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    throttle: dict[tuple[str, str], bool] = {}
    for f in found:
        groups[(f.model, f.firmware)].append(f.ip)
        throttle[(f.model, f.firmware)] = f.can_throttle
    lines: list[str] = []
    for (model, firmware), ips in sorted(groups.items()):
        lines.append("[[sites.miners]]")
        if model not in NAMEPLATES:
            lines.append("# not in the catalog: give its curve = [{ hashrate_th, power_w }, ...]")
        lines.append(f'model = "{model}"')
        if firmware != "other":
            lines.append(f'firmware = "{firmware}"')
        ranges = ", ".join(f'"{r}"' for r in compress(ips))
        lines.append(f"addresses = [{ranges}]")
        can = "can" if throttle[(model, firmware)] else "cannot"
        lines.append(f"# {len(ips)} miners; {can} throttle (power limit)")
        lines.append("")
    return "\n".join(lines)


def compress(ips: list[str]) -> list[str]:
    """Sorted addresses as singles and ``FIRST-LAST`` runs of consecutive addresses."""
    ordered = sorted(ipaddress.IPv4Address(ip) for ip in ips)
    runs: list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]] = []
    for ip in ordered:
        if runs and int(ip) == int(runs[-1][1]) + 1:
            runs[-1] = (runs[-1][0], ip)
        else:
            runs.append((ip, ip))
    return [str(a) if a == b else f"{a}-{b}" for a, b in runs]
