"""What several ``hashspark`` commands share: time, number and window arguments, progress,
JSON files."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from controller.app.replay.runner import ReplayError
from controller.domain import EpochS, iso

N = TypeVar("N", int, float)

EXIT_OK = 0
EXIT_USAGE = 2  # bad input or bad config: the user can fix it


def time_arg(text: str) -> datetime:
    """``--from``/``--to``: ISO-8601 with a zone, or a bare date meaning 00:00 UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time") from None
    if len(text) == 10:  # YYYY-MM-DD
        return value.replace(tzinfo=UTC)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add Z or an offset")
    return value


def bounded(
    convert: Callable[[str], N], ok: Callable[[N], bool], must: str, *, noun: str = "a number"
) -> Callable[[str], N]:
    """An argparse ``type``: ``convert(text)`` where ``ok`` holds, else one line naming the
    text: ``'x' is not <noun>`` (it does not convert) or ``'x' <must>`` (out of range)."""

    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} {must}")
        return value

    return parse


#: A positive, finite number.
positive = bounded(float, lambda v: v > 0 and v != float("inf"), "must be a positive number")
#: A TCP port, 0 (any free one) to 65535.
port = bounded(int, lambda v: 0 <= v <= 65_535, "is not a port (0 to 65535)", noun="a port number")


def window_args(p: argparse.ArgumentParser) -> None:
    """``--window``/``--from``/``--to``/``--site``: which site and which part of a scenario."""
    p.add_argument(
        "--window", metavar="NAME", help="a named window of the scenario ([[scenario.windows]])"
    )
    p.add_argument(
        "--from", dest="start", type=time_arg, metavar="T", help="window start (ISO-8601)"
    )
    p.add_argument("--to", dest="end", type=time_arg, metavar="T", help="window end (ISO-8601)")
    p.add_argument("--site", help="site id, when the file has several")


def require_report_extra() -> None:
    """Fail as a usage error, before any work, if ``--report``'s charts cannot be drawn.

    matplotlib is the optional ``report`` extra: the daemon's install goes without it.
    """
    try:
        importlib.import_module("matplotlib")
    except ImportError as exc:
        raise ReplayError(
            f"--report: the HTML report needs matplotlib ({exc}): pip install 'hashspark[report]'"
        ) from None


def progress_bar(start: EpochS, end: EpochS) -> Callable[[EpochS], None]:
    """A percentage bar on standard error, redrawn when the percentage changes."""
    span = max(end - start, 1.0)
    last = [-1]

    def show(now: EpochS) -> None:
        pct = int(100 * (now - start) / span)
        if pct != last[0]:
            last[0] = pct
            bar = "#" * (pct // 4)
            print(f"\r  [{bar:<25}] {pct:3d}%  {iso(now)}", end="", file=sys.stderr, flush=True)

    return show


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
