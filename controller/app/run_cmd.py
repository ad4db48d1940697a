"""``hashspark run CONFIG``: the daemon (site loops, ledger, metrics)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import structlog

from adapters.feeds.recorded import RecordingError
from adapters.ledger.sqlite import LedgerError
from controller.app.cli_support import EXIT_OK, port, positive
from controller.app.daemon import DaemonOptions, run_daemon
from controller.app.preflight import preflight, print_warnings
from controller.config import ConfigError, load_config
from controller.runtime import logs

_log = structlog.get_logger("hashspark.daemon")

#: The daemon died of an error it could not handle (systemd's Restart=on-failure).
EXIT_FAILED = 1


def _describe(exc: BaseException) -> str:
    """The innermost errors of ``exc`` (task groups nest them), as one line."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def _usage_error(exc: BaseException) -> BaseException | None:
    """The first error the user can fix among those ``exc`` nests (task groups wrap them)."""
    if isinstance(exc, USAGE_ERRORS):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _usage_error(inner)
            if found is not None:
                return found
    return None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``run``."""
    run = sub.add_parser("run", help="run the daemon: site loops, ledger, metrics")
    run.add_argument("config", type=Path)
    run.add_argument(
        "--simulated",
        action="store_true",
        help="run each site on a simulated clock from its ledger's end (or the scenario start) "
        "to the scenario end, then exit",
    )
    run.add_argument(
        "--speed",
        type=positive,
        metavar="X",
        help="with --simulated: simulated seconds per real second (default: as fast as possible)",
    )
    run.add_argument(
        "--state-dir", type=Path, help="where the ledger lives (default: daemon.state_dir)"
    )
    run.add_argument(
        "--metrics-port", type=port, help="override daemon.metrics_port (0: any free port)"
    )
    run.add_argument(
        "--stay", action="store_true", help="with --simulated: keep serving metrics at the end"
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="decide, log, audit and export as usual, but command no miner",
    )


#: Errors the user can fix: ``cli.main`` prints them as one line and exits 2.
USAGE_ERRORS = (ConfigError, LedgerError, RecordingError)


def run(args: argparse.Namespace) -> int:
    """Run the daemon until it ends (``--simulated``) or is stopped."""
    loaded = load_config(args.config)
    print_warnings(preflight(loaded))  # the checks check-config makes, and its warnings
    logs.configure(loaded.config.daemon.log_level)
    options = DaemonOptions(
        simulated=args.simulated,
        speed=args.speed,
        state_dir=args.state_dir,
        metrics_port=args.metrics_port,
        stay=args.stay,
        dry_run=args.dry_run,
    )
    try:
        asyncio.run(run_daemon(loaded, options))
    except USAGE_ERRORS:
        raise  # bad config, recording or state directory: one line and exit 2 (cli.main)
    except Exception as exc:  # a task that failed: one line, a non-zero exit, systemd restarts
        usage = _usage_error(exc)
        if usage is not None:  # e.g. the metrics port in use, raised inside a feed's task group
            raise usage from None
        _log.critical("daemon_failed", error=_describe(exc), exc_info=exc)
        return EXIT_FAILED
    return EXIT_OK
