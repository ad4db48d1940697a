"""The ``hashspark`` command: the composition root that wires config, core and adapters.

Each command lives in its own module with ``add_parser(sub)`` and ``run(args)``; this one
parses, dispatches and turns the errors a user can fix into exit code 2 (one line each,
URL credentials and resolved secrets masked).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from adapters.feeds.recorded import RecordingError
from adapters.ledger.sqlite import LedgerError
from controller.app import check_cmd, compare_cmd, explain_cmd, replay_cmd, run_cmd, stress_cmd
from controller.app import command_cmd as command_cli
from controller.app import feed_cmd as feed_cli
from controller.app import fleet_cmd as fleet_cli
from controller.app import ledger_cmd as ledger_cli
from controller.app import markets_cmd as markets_cli
from controller.app import recordings_cmd as recordings_cli
from controller.app import worker_cmd as worker_cli
from controller.app.cli_support import EXIT_USAGE
from controller.app.replay.runner import ReplayError
from controller.config import ConfigError
from controller.runtime import logs
from controller.runtime.config_base import one_line
from controller.runtime.redact import scrub
from simulators.miners import cli as simulate_cli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hashspark",
        description="Real-time curtailment and hedge controller for Bitcoin mining sites.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check_cmd.add_parser(sub)
    replay_cmd.add_parser(sub)
    compare_cmd.add_parser(sub)
    stress_cmd.add_parser(sub)
    run_cmd.add_parser(sub)
    ledger_cli.add_parser(sub)
    simulate_cli.add_parser(sub)
    command_cli.add_parser(sub)
    fleet_cli.add_parser(sub)
    worker_cli.add_parser(sub)
    explain_cmd.add_parser(sub)
    markets_cli.add_parser(sub)
    recordings_cli.add_parser(sub)
    feed_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    logs.configure("warning")
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "check-config": check_cmd.run,
        "replay": replay_cmd.run,
        "compare": compare_cmd.run,
        "stress": stress_cmd.run,
        "run": run_cmd.run,
        "ledger": ledger_cli.run,
        "simulate": simulate_cli.run,
        "command": command_cli.run,
        "fleet": fleet_cli.run,
        "worker": worker_cli.run,
        "explain": explain_cmd.run,
        "markets": markets_cli.run,
        "recordings": recordings_cli.run,
        "feed": feed_cli.run,
    }
    try:
        return commands[args.command](args)
    except ConfigError as exc:
        for message in exc.messages:
            print(f"hashspark: error: {scrub(message)}", file=sys.stderr)
        return EXIT_USAGE
    except (RecordingError, ReplayError, LedgerError) as exc:
        print(f"hashspark: error: {scrub(one_line(str(exc)))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hashspark: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
