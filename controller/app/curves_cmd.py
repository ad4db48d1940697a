"""``hashspark fleet curves``: each group's efficiency curve and where it comes from.

With ``--config FILE``, every pyasic site's groups are resolved as the daemon resolves them
at start (their ``curve_source``; learned curves from the samples the daemon keeps in
``STATE_DIR/curves/``, or the fallback and why when there are too few). With bare targets,
the miners found are grouped by model and firmware and shown as ``curve_source = "auto"``
would use them: the firmware's curve when it states one, else the catalog nameplate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adapters.miners.addresses import AddressError, expand_all
from adapters.miners.config import PyasicDriverConfig
from adapters.miners.driver import PyasicDriver
from controller.app.fleet_ops import DEFAULT_NAMEPLATE, catalog_model, discover_at
from controller.catalog import NAMEPLATES
from controller.config import ConfigError, load_config
from controller.curves.book import CurveBook, CurvePreference, GroupCurve, GroupSpec
from controller.runtime.clocks.system import SystemClock
from controller.runtime.redact import scrub
from controller.runtime.site_curves import SiteCurves

EXIT_OK = 0
EXIT_NONE_FOUND = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class CurveRow:
    """One group's line: which site and group, its curve and the curve's source."""

    site: str
    curve: GroupCurve
    miners: int

    def as_json(self) -> dict[str, object]:
        """The row as a JSON object."""
        c = self.curve
        return {
            "site": self.site,
            "group": c.group,
            "model": c.model,
            "firmware": c.firmware,
            "source": c.source.value,
            "miners": self.miners,
            "points": [{"power_w": w, "hashrate_th": h} for h, w in c.points],
            "detail": c.detail,
        }


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``curves`` under ``fleet``."""
    p = sub.add_parser("curves", help="each group's efficiency curve and its source")
    p.add_argument("targets", nargs="*", metavar="TARGET", help="address, FIRST-LAST, CIDR")
    p.add_argument("--config", type=Path, help="the groups of every pyasic site in this config")
    p.add_argument("--state-dir", type=Path, help="the daemon's state (default: the config's)")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--concurrency", type=int, default=200, help="pyasic calls in flight")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per discovery")


def run(args: argparse.Namespace) -> int:
    """Print the curves; exit 1 when no miner answered, 2 on bad arguments."""
    if not args.targets and args.config is None:
        print("hashspark fleet curves: name at least one TARGET or --config FILE", file=sys.stderr)
        return EXIT_USAGE
    try:
        rows = asyncio.run(rows_for(args))
    except (AddressError, ConfigError, ValueError) as exc:
        print(f"hashspark fleet curves: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps([r.as_json() for r in rows], indent=1))
    else:
        print(table(rows))
    return EXIT_OK if rows else EXIT_NONE_FOUND


async def rows_for(args: argparse.Namespace) -> list[CurveRow]:
    base = PyasicDriverConfig.model_validate(
        {"type": "pyasic", "concurrency": args.concurrency, "discovery_timeout_s": args.timeout}
    )
    rows: list[CurveRow] = []
    if args.config is not None:
        config = load_config(args.config).config
        state_dir = args.state_dir or config.daemon.state_dir
        for site in config.sites:
            if not isinstance(site.driver, PyasicDriverConfig):
                continue
            addresses, firmware = site.addresses()
            driver = PyasicDriver(
                site.fleet(), addresses, site.driver, SystemClock(), firmware=firmware
            )
            samples = state_dir / "curves" / f"{site.id}.json"
            rows += await resolved(site.id, site.curve_book(), driver, samples)
    if args.targets:
        rows += await discovered(expand_all(dict.fromkeys(args.targets)), base)
    return rows


async def resolved(
    site_id: str, book: CurveBook, driver: PyasicDriver, samples: Path | None = None
) -> list[CurveRow]:
    """Discover the miners, read their firmware curves, resolve each group's curve."""
    await driver.discover()
    curves = SiteCurves(site_id, book, driver, samples_path=samples)
    await curves.start(SystemClock().now())
    counts = [g.count for g in book.groups]
    return [CurveRow(site_id, c, counts[c.group]) for c in curves.curves]


async def discovered(addresses: Sequence[str], config: PyasicDriverConfig) -> list[CurveRow]:
    """Miners found at ``addresses``, grouped by model and firmware, resolved as ``auto``."""
    driver = await discover_at(addresses, config)
    keys: list[tuple[str, str]] = []
    group_of: list[int] = []
    found: list[int] = []
    firmware_found: list[str | None] = []
    for i, caps in enumerate(driver.capabilities):
        if caps is None:
            continue
        key = (catalog_model(caps), caps.firmware)
        if key not in keys:
            keys.append(key)
        group_of.append(keys.index(key))
        found.append(i)
        firmware_found.append(caps.firmware)
    if not found:
        return []
    groups = [
        GroupSpec(
            model=model,
            count=group_of.count(k),
            firmware=firmware,
            config_points=(NAMEPLATES.get(model, DEFAULT_NAMEPLATE),),
            config_is_nameplate=True,
            preference=CurvePreference.AUTO,
        )
        for k, (model, firmware) in enumerate(keys)
    ]
    book = CurveBook(groups, group_of=group_of)
    all_curves = await driver.read_firmware_curves()
    book.set_firmware(firmware_found, [all_curves[i] for i in found])
    book.refresh(0.0, force=True)
    return [CurveRow("-", c, groups[c.group].count) for c in book.curves]


def table(rows: list[CurveRow]) -> str:
    """Rows as an aligned text table, the points last (they vary in length)."""
    head = ("SITE", "GROUP", "MODEL", "FIRMWARE", "SOURCE", "MINERS", "POINTS  (DETAIL)")
    cells = [
        (
            r.site,
            str(r.curve.group),
            r.curve.model,
            r.curve.firmware,
            r.curve.source.value,
            str(r.miners),
            f"{r.curve.describe_points()}  ({r.curve.detail})",
        )
        for r in rows
    ]
    widths = [max(len(c[k]) for c in [head, *cells]) for k in range(6)]
    return "\n".join(
        "  ".join(c[k].ljust(widths[k]) for k in range(6)) + "  " + c[6] for c in [head, *cells]
    )
