"""``hashspark replay SCENARIO``: recorded feeds against the fleet, and the P&L they make.

The fast path or the daemon's site loop on a simulated clock; with ``--live-path``, the
site loop against simulated ASICs through pyasic, with its progress on standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.app.cli_support import (
    EXIT_OK,
    positive,
    progress_bar,
    require_report_extra,
    window_args,
    write_json_atomic,
)
from controller.app.replay.runner import (
    ReplayError,
    ReplayInputs,
    ReplayResult,
    prepare,
    replay,
    with_fleet_size,
)
from controller.app.replay.summary import format_summary
from controller.config import load_config
from controller.domain import EpochS, iso

if TYPE_CHECKING:
    from simulators.miners.fleet_file import FaultConfig


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``replay``."""
    rep = sub.add_parser("replay", help="replay a scenario's recorded feeds and report the P&L")
    rep.add_argument("scenario", type=Path)
    rep.add_argument("--report-json", type=Path, metavar="PATH", help="write the JSON report here")
    window_args(rep)
    rep.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write report.html (charts embedded), its PNGs and report.json into DIR",
    )
    rep.add_argument(
        "--engine",
        choices=("auto", "fast", "loop"),
        default="auto",
        help="fast: all intervals at once; loop: the daemon's site loop on a simulated clock; "
        "auto: fast when the policy allows (default)",
    )
    rep.add_argument("--quiet", action="store_true", help="print nothing but errors")
    _live_args(rep)


def _live_args(p: argparse.ArgumentParser) -> None:
    live = p.add_argument_group(
        "live path", "the daemon's site loop against simulated ASICs through pyasic"
    )
    live.add_argument(
        "--live-path",
        action="store_true",
        help="start a simulated fleet (real miner protocols), command it through the pyasic "
        "driver and feed the recordings through a live feed adapter (MQTT if the site has a "
        "broker, else in-process)",
    )
    live.add_argument(
        "--miners",
        type=int,
        metavar="N",
        help="scale the scenario's fleet to N miners (groups keep their shares; any engine)",
    )
    live.add_argument(
        "--speed",
        type=positive,
        metavar="X",
        help="simulated seconds per wall second while the clock runs (default 10: a 90 s "
        "resume ramp takes 9 s); idle time between cycles is skipped",
    )
    live.add_argument(
        "--family",
        choices=("luxos", "antminer", "braiins", "mixed", "auto"),
        help="firmware the simulated miners speak (default luxos; antminer needs port 80; "
        "mixed: the three round robin; auto: mixed if port 80 can be bound, else luxos and "
        "braiins)",
    )
    live.add_argument(
        "--decisions",
        action="store_true",
        help="print each change of plan as it happens on standard output: time, price, the "
        "miners it moves by model and family, and why (economics, override, fail-safe, ramp)",
    )
    live.add_argument(
        "--ip-start",
        metavar="ADDR",
        help="first loopback address of the simulated fleet (default 127.50.0.1)",
    )
    live.add_argument(
        "--resume-ramp-s",
        type=float,
        metavar="S",
        help="the simulated miners' resume ramp (default 90; 0: full hashrate at once)",
    )
    live.add_argument(
        "--meter-port", type=int, metavar="P", help="the simulator's meter port (default: any)"
    )
    live.add_argument(
        "--fault",
        action="append",
        metavar="JSON",
        help='a fault for some simulated miners, e.g. \'{"kind": "liar", "fraction": 0.05}\' '
        "(keys as a fleet file's [[fault]]; repeatable); more through the meter's /faults",
    )


_LIVE_ONLY = ("speed", "family", "ip_start", "resume_ramp_s", "meter_port", "fault")
_LIVE_FLAGS = ("decisions",)  # store_true: given when True


def run(args: argparse.Namespace) -> int:
    """Replay, print the summary and write the reports asked for."""
    if args.report is not None:
        require_report_extra()
    loaded = load_config(args.scenario)
    inputs = prepare(loaded, site_id=args.site, start=args.start, end=args.end, window=args.window)
    if args.miners is not None:
        inputs = with_fleet_size(inputs, args.miners)
    if args.live_path:
        result = _replay_live(args, inputs)
    else:
        given = [f"--{k.replace('_', '-')}" for k in _LIVE_ONLY if getattr(args, k) is not None]
        given += [f"--{k.replace('_', '-')}" for k in _LIVE_FLAGS if getattr(args, k)]
        if given:
            raise ReplayError(f"{', '.join(given)} only go with --live-path")
        progress = (
            None
            if args.quiet or not sys.stderr.isatty()
            else progress_bar(inputs.start, inputs.end)
        )
        result = replay(inputs, engine=args.engine, progress=progress)
        if progress is not None:
            print(file=sys.stderr)
    if args.report_json is not None:
        write_json_atomic(args.report_json, result.typed_report.as_dict())
    html = None
    if args.report is not None:
        from controller.app.replay.html_report import write_report  # noqa: PLC0415 (matplotlib: slow)

        html = write_report(args.report, inputs, result).html
    if not args.quiet:
        print(format_summary(result, args.report_json, html))
    return EXIT_OK


def _replay_live(args: argparse.Namespace, inputs: ReplayInputs) -> ReplayResult:
    from controller.app.replay.decisions import DecisionLog  # noqa: PLC0415
    from controller.app.replay.live import (  # noqa: PLC0415 (pyasic and the simulators: slow)
        DEFAULT_IP_START,
        DEFAULT_SPEED,
        LiveOptions,
        replay_live,
        resolve_family,
    )
    from simulators.miners.state import DEFAULT_RAMP_S  # noqa: PLC0415

    if args.engine != "auto":
        raise ReplayError("--live-path and --engine exclude each other")
    if args.decisions and args.quiet:
        raise ReplayError("--decisions and --quiet exclude each other")
    if args.resume_ramp_s is not None and not 0 <= args.resume_ramp_s <= 3600:
        raise ReplayError(f"--resume-ramp-s must be within 0..3600, not {args.resume_ramp_s}")
    if args.meter_port is not None and not 0 <= args.meter_port <= 65_535:
        raise ReplayError(f"--meter-port must be within 0..65535, not {args.meter_port}")
    options = LiveOptions(
        faults=tuple(_fault_arg(text) for text in args.fault or ()),
        speed=args.speed or DEFAULT_SPEED,
        family=args.family or "luxos",
        ip_start=args.ip_start or DEFAULT_IP_START,
        resume_ramp_s=DEFAULT_RAMP_S if args.resume_ramp_s is None else args.resume_ramp_s,
        meter_port=args.meter_port or 0,
    )
    options, note = resolve_family(options)
    progress = None if args.quiet else LiveProgress(inputs.start, inputs.end, sys.stderr)
    decisions = None
    if args.decisions:
        decisions = DecisionLog(sys.stdout, None if progress is None else progress.clear, note=note)
    elif note is not None and not args.quiet:
        print(f"hashspark replay: {note}", file=sys.stderr)
    try:
        return asyncio.run(replay_live(inputs, options, progress, decisions=decisions))
    finally:
        if progress is not None:
            progress.close()


def _fault_arg(text: str) -> FaultConfig:
    from pydantic import ValidationError  # noqa: PLC0415

    from simulators.miners.fleet_file import FaultConfig  # noqa: PLC0415

    try:
        return FaultConfig.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ReplayError(f"--fault {text}: {where}: {err['msg']}") from None


class LiveProgress:
    """Simulated time, speed and net P&L so far: a bar on a terminal, else periodic lines."""

    LINE_EVERY_S = 10.0  #: wall seconds between plain lines

    def __init__(
        self, start: EpochS, end: EpochS, stream: Any, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._start, self._span = start, max(end - start, 1.0)
        self._stream = stream
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._clock = clock
        self._began = clock()
        self._last_line = -1.0
        self._drawn = False

    def line(self, now: EpochS, net_usd: float) -> tuple[str, float]:
        """The progress text at simulated ``now``, and the fraction of the window done."""
        done = min(max((now - self._start) / self._span, 0.0), 1.0)
        wall = max(self._clock() - self._began, 1e-9)
        speed = (now - self._start) / wall
        return (
            f"{iso(now)}  {100 * done:5.1f}%  {speed:,.0f} sim s/s  net {net_usd + 0.0:,.2f} USD"
        ), done

    def __call__(self, now: EpochS, net_usd: float) -> None:
        text, done = self.line(now, net_usd)
        if self._tty:
            bar = "#" * int(25 * done)
            print(f"\r  [{bar:<25}] {text}", end="", file=self._stream, flush=True)
            self._drawn = True
            return
        wall = self._clock() - self._began
        if self._last_line < 0 or wall - self._last_line >= self.LINE_EVERY_S:
            self._last_line = wall
            print(f"  live path {text}", file=self._stream, flush=True)

    def clear(self) -> None:
        """Erase the bar, so that a line printed next starts at the margin; the next update
        draws it again below that line."""
        if self._drawn:
            print("\r\033[K", end="", file=self._stream, flush=True)
            self._drawn = False

    def close(self) -> None:
        """End the bar's line."""
        if self._drawn:
            print(file=self._stream, flush=True)
