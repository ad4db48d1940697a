"""``hashspark check-config FILE``: validate a config or scenario and print it resolved."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from controller.app.cli_support import EXIT_OK
from controller.app.preflight import command_warnings, preflight, print_warnings
from controller.config import load_config, render


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``check-config``."""
    check = sub.add_parser(
        "check-config", help="validate a config or scenario and print it resolved"
    )
    check.add_argument("file", type=Path)


def run(args: argparse.Namespace) -> int:
    """Print the file resolved, after a line saying it is valid; warnings go to stderr.

    Refuses exactly what ``run`` refuses before it starts (``controller/app/preflight.py``).
    """
    path: Path = args.file
    loaded = load_config(path)
    print_warnings(preflight(loaded) + command_warnings(loaded))
    print(f"# {path}: valid (version {loaded.version})")
    print(json.dumps(render(loaded.config), indent=2))
    return EXIT_OK
