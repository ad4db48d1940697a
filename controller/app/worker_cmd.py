"""``hashspark worker CONFIG --shard N [--site ID]``: run one shard of a sharded site."""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
from pathlib import Path

from controller.app.worker import ShardWorker
from controller.config import ConfigError, load_config
from controller.runtime import logs
from controller.runtime.clocks.system import SystemClock

EXIT_OK = 0


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``worker`` on the hashspark command line."""
    p = subparsers.add_parser(
        "worker", help="run one shard of a sharded site's miners (see docs/scaling.md)"
    )
    p.add_argument("config", type=Path)
    p.add_argument("--shard", type=int, required=True, metavar="N", help="0 .. shards-1")
    p.add_argument("--site", help="the site (default: the only sharded one)")
    return p


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; exit 2 on a bad config, site or shard."""
    loaded = load_config(args.config)
    sharded = [s for s in loaded.config.sites if s.sharding is not None]
    if args.site is not None:
        sharded = [s for s in sharded if s.id == args.site]
    if len(sharded) != 1:
        what = f"no sharded site {args.site!r}" if args.site else f"{len(sharded)} sharded sites"
        raise ConfigError([f"{args.config}: {what} (give --site ID of a site with [sharding])"])
    logs.configure(loaded.config.daemon.log_level)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # ~2 descriptors per call in flight
    worker = ShardWorker(sharded[0], args.shard, SystemClock())
    asyncio.run(_serve(worker))
    return EXIT_OK


async def _serve(worker: ShardWorker) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await worker.run(stop)
