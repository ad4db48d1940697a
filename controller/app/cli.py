"""The ``hashspark`` command: the composition root that wires config, core and adapters."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.feeds.recorded import RecordingError
from adapters.ledger.sqlite import LedgerError
from controller.app import command_cmd as command_cli
from controller.app import fleet_cmd as fleet_cli
from controller.app import ledger_cmd as ledger_cli
from controller.app import worker_cmd as worker_cli
from controller.app.daemon import DaemonOptions, run_daemon
from controller.app.replay.compare import Comparison, compare
from controller.app.replay.runner import (
    ReplayError,
    ReplayInputs,
    ReplayResult,
    prepare,
    replay,
    with_fleet_size,
)
from controller.config import ConfigError, load_config, render
from controller.domain import EpochS, iso
from controller.runtime import logs
from controller.runtime.config_base import one_line
from simulators.miners import cli as simulate_cli

if TYPE_CHECKING:
    from simulators.miners.fleet_file import FaultConfig

EXIT_OK = 0
EXIT_USAGE = 2  # bad input or bad config: the user can fix it


def _time_arg(text: str) -> datetime:
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hashspark",
        description="Real-time curtailment and hedge controller for Bitcoin mining sites.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "check-config", help="validate a config or scenario and print it resolved"
    )
    check.add_argument("file", type=Path)

    rep = sub.add_parser("replay", help="replay a scenario's recorded feeds and report the P&L")
    rep.add_argument("scenario", type=Path)
    rep.add_argument("--report-json", type=Path, metavar="PATH", help="write the JSON report here")
    _window_args(rep)
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

    cmp_ = sub.add_parser(
        "compare", help="replay a scenario under several supply and hedge books side by side"
    )
    cmp_.add_argument("scenario", type=Path)
    _window_args(cmp_)
    cmp_.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write report.html (charts embedded), its PNGs, report.json and comparison.json "
        "into DIR",
    )

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
        type=_positive,
        metavar="X",
        help="with --simulated: simulated seconds per real second (default: as fast as possible)",
    )
    run.add_argument(
        "--state-dir", type=Path, help="where the ledger lives (default: daemon.state_dir)"
    )
    run.add_argument(
        "--metrics-port", type=int, help="override daemon.metrics_port (0: any free port)"
    )
    run.add_argument(
        "--stay", action="store_true", help="with --simulated: keep serving metrics at the end"
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="decide, log, audit and export as usual, but command no miner",
    )

    led = sub.add_parser("ledger", help="read the P&L ledger")
    led_sub = led.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    for name, text in (
        ("summary", "totals per site and instrument"),
        ("export", "every interval as CSV"),
    ):
        p = led_sub.add_parser(name, help=text)
        p.add_argument(
            "--state-dir",
            type=Path,
            default=Path("/var/lib/hashspark"),
            help="the daemon's state directory (default /var/lib/hashspark)",
        )
        p.add_argument("--site", help="one site only")
        p.add_argument("--from", dest="start", type=_time_arg, metavar="T")
        p.add_argument("--to", dest="end", type=_time_arg, metavar="T")
        if name == "export":
            p.add_argument(
                "--csv", action="store_true", required=True, help="CSV (the only format)"
            )
            p.add_argument("--out", type=Path, help="write here instead of standard output")
    simulate_cli.add_parser(sub)
    command_cli.add_parser(sub)
    fleet_cli.add_parser(sub)
    worker_cli.add_parser(sub)
    return parser


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
        type=_positive,
        metavar="X",
        help="simulated seconds per wall second while the clock runs (default 10: a 90 s "
        "resume ramp takes 9 s); idle time between cycles is skipped",
    )
    live.add_argument(
        "--family",
        choices=("luxos", "antminer", "braiins", "mixed"),
        help="firmware the simulated miners speak (default luxos; antminer needs port 80)",
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


def _window_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--window", metavar="NAME", help="a named window of the scenario ([[scenario.windows]])"
    )
    p.add_argument(
        "--from", dest="start", type=_time_arg, metavar="T", help="window start (ISO-8601)"
    )
    p.add_argument("--to", dest="end", type=_time_arg, metavar="T", help="window end (ISO-8601)")
    p.add_argument("--site", help="site id, when the file has several")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    logs.configure("warning")
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "check-config": lambda a: _check_config(a.file),
        "replay": _replay,
        "compare": _compare,
        "run": _run,
        "ledger": ledger_cli.main,
        "simulate": simulate_cli.run,
        "command": command_cli.run,
        "fleet": fleet_cli.run,
        "worker": worker_cli.run,
    }
    try:
        return commands[args.command](args)
    except ConfigError as exc:
        for message in exc.messages:
            print(f"hashspark: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except (RecordingError, ReplayError, LedgerError) as exc:
        print(f"hashspark: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hashspark: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    logs.configure(loaded.config.daemon.log_level)
    options = DaemonOptions(
        simulated=args.simulated,
        speed=args.speed,
        state_dir=args.state_dir,
        metrics_port=args.metrics_port,
        stay=args.stay,
        dry_run=args.dry_run,
    )
    asyncio.run(run_daemon(loaded, options))
    return EXIT_OK


def _check_config(path: Path) -> int:
    loaded = load_config(path)
    print(f"# {path}: valid (version {loaded.version})")
    print(json.dumps(render(loaded.config), indent=2))
    return EXIT_OK


_LIVE_ONLY = ("speed", "family", "ip_start", "resume_ramp_s", "meter_port", "fault")


def _replay(args: argparse.Namespace) -> int:
    if args.report is not None:
        _require_report_extra()
    loaded = load_config(args.scenario)
    inputs = prepare(loaded, site_id=args.site, start=args.start, end=args.end, window=args.window)
    if args.miners is not None:
        inputs = with_fleet_size(inputs, args.miners)
    if args.live_path:
        result = _replay_live(args, inputs)
    else:
        given = [f"--{k.replace('_', '-')}" for k in _LIVE_ONLY if getattr(args, k) is not None]
        if given:
            raise ReplayError(f"{', '.join(given)} only go with --live-path")
        progress = (
            None
            if args.quiet or not sys.stderr.isatty()
            else _progress_bar(inputs.start, inputs.end)
        )
        result = replay(inputs, engine=args.engine, progress=progress)
        if progress is not None:
            print(file=sys.stderr)
    if args.report_json is not None:
        write_json_atomic(args.report_json, result.report)
    html = None
    if args.report is not None:
        from controller.app.replay.html_report import write_report  # noqa: PLC0415 (matplotlib: slow)

        html = write_report(args.report, inputs, result).html
    if not args.quiet:
        print(format_summary(result, args.report_json, html))
    return EXIT_OK


def _replay_live(args: argparse.Namespace, inputs: ReplayInputs) -> ReplayResult:
    from controller.app.replay.live import (  # noqa: PLC0415 (pyasic and the simulators: slow)
        DEFAULT_IP_START,
        DEFAULT_SPEED,
        LiveOptions,
        replay_live,
    )
    from simulators.miners.state import DEFAULT_RAMP_S  # noqa: PLC0415

    if args.engine != "auto":
        raise ReplayError("--live-path and --engine exclude each other")
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
    progress = None if args.quiet else LiveProgress(inputs.start, inputs.end, sys.stderr)
    try:
        return asyncio.run(replay_live(inputs, options, progress))
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

    def close(self) -> None:
        """End the bar's line."""
        if self._drawn:
            print(file=self._stream, flush=True)


def _compare(args: argparse.Namespace) -> int:
    if args.report is not None:
        _require_report_extra()
    loaded = load_config(args.scenario)
    inputs = prepare(loaded, site_id=args.site, start=args.start, end=args.end, window=args.window)
    began = time.perf_counter()
    comparison = compare(inputs)
    compare_s = time.perf_counter() - began
    print(format_comparison(comparison, inputs, compare_s))
    if args.report is not None:
        from controller.app.replay.html_report import write_report  # noqa: PLC0415 (matplotlib: slow)

        began = time.perf_counter()
        result = replay(inputs, engine="fast")
        meta = {k: result.report[k] for k in ("scenario", "config_file", "config_version", "site")}
        meta["window"] = result.report["window"]
        files = write_report(args.report, inputs, result, comparison, comparison.to_json(meta))
        print(f"\n  report      {files.html}  ({time.perf_counter() - began:.2f} s)")
    return EXIT_OK


def _require_report_extra() -> None:
    """Fail as a usage error, before any work, if ``--report``'s charts cannot be drawn.

    matplotlib is the optional ``report`` extra: the daemon's install goes without it.
    """
    try:
        importlib.import_module("matplotlib")
    except ImportError as exc:
        raise ReplayError(
            f"--report: the HTML report needs matplotlib ({exc}): pip install 'hashspark[report]'"
        ) from None


def _progress_bar(start: EpochS, end: EpochS) -> Callable[[EpochS], None]:
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


def _usd(x: float) -> str:
    return f"{x + 0.0:>16,.2f}"  # + 0.0 turns -0.0 into 0.0


def format_comparison(comparison: Comparison, inputs: ReplayInputs, wall_s: float) -> str:
    """The strategy table for the terminal: one row per book."""
    rows = [r.row() for r in comparison.results]
    source = "built-in books" if comparison.builtin else "compare.strategies"
    first = comparison.results[0].report
    lines = [
        f"hashspark compare: {_scenario_name(inputs)}  (site {inputs.site.id}, {source}, "
        f"fast engine, {wall_s:.2f} s)",
        f"  window      {first['window']['from']} .. {first['window']['to']}  "
        f"({first['totals']['hours']:,.2f} h; daily figures over "
        f"{rows[0]['days_counted']} whole UTC days)",
        "",
        f"  {'strategy':<18} {'net USD':>14} {'USD/MWh':>8} {'daily std':>10} "
        f"{'worst day':>10} {'(UTC)':<10} {'curtailed h':>11}",
    ]
    for r in rows:
        margin = r["net_margin_usd_per_mwh"]
        lines.append(
            f"  {r['name']:<18} {r['totals']['net_usd']:>14,.2f} "
            f"{_opt(margin):>8} "
            f"{_opt(r['daily_net_std_usd']):>10} {r['worst_day']['net_usd']:>10,.2f} "
            f"{r['worst_day']['date']:<10} {r['curtailed_hours']:>11,.2f}"
        )
    lines.append("")
    lines.extend(f"  {r['name']:<18} {r['description']}" for r in rows)
    return "\n".join(lines)


def _opt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def _scenario_name(inputs: ReplayInputs) -> str:
    scenario = inputs.loaded.config.scenario
    return scenario.name if scenario else inputs.loaded.path.stem


def format_summary(
    result: ReplayResult, report_path: Path | None, html_path: Path | None = None
) -> str:
    """A readable summary of a replay for the terminal."""
    r = result.report
    t = r["totals"]
    s = r["summary"]
    lines = [
        f"hashspark replay: {r['scenario']}  (site {r['site']}, {result.engine} engine, "
        f"{result.wall_s:.2f} s)",
        f"  window      {r['window']['from']} .. {r['window']['to']}  "
        f"({t['intervals']:,} intervals, {t['hours']:,.2f} h)",
        f"  fleet       {s['miners']:,} miners, {s['nominal_mw']:.4f} MW nominal, "
        f"{s['fleet_efficiency_j_per_th']:.2f} J/TH",
        "",
        "  P&L by component                     USD",
        f"    mining revenue            {_usd(t['mining_revenue_usd'])}",
        f"    power cost                {_usd(-t['power_cost_usd'])}",
        f"    resale revenue            {_usd(t['resale_revenue_usd'])}",
        f"    call premium              {_usd(t['call_premium_usd'])}",
        f"    call payout (capped up.)  {_usd(-t['call_payout_usd'])}",
        f"    forward settlement        {_usd(t['forward_settlement_usd'])}",
        f"    net                       {_usd(t['net_usd'])}",
        "",
        f"  energy      mined {t['mined_mwh']:,.2f} MWh, curtailed {t['curtailed_mwh']:,.2f} MWh",
        f"  curtailed   {s['curtailed_hours']:,.2f} h with some miners off, "
        f"{s['fully_curtailed_hours']:,.2f} h fully off",
    ]
    margin = s["net_margin_usd_per_mwh"]
    if margin is not None:
        lines.append(f"  net margin  {margin:,.2f} USD per mined MWh")
    spread = s["hashspark_spread_usd_per_mwh"]
    lines.append(
        f"  hashspark spread  {spread:,.2f} USD/MWh locked in (forward price vs PPA price)"
        if spread is not None
        else "  hashspark spread  n/a (needs a fixed PPA and a hashrate forward)"
    )
    if "optimiser_gain_usd" in s:
        lines.append(
            f"  optimiser   {s['optimiser_gain_usd']:,.2f} USD more than on/off dispatch "
            f"({s['onoff_net_usd']:,.2f} USD) from power targets"
        )
    for g in r.get("grid_events", []):
        verdict = {True: "met", False: "MISSED", None: "not measured"}[g["compliant"]]
        lines.append(
            f"  grid        {g['program']} {g['id']} ({g['from']}..{g['to']}): {verdict}, "
            f"load {g['min_mw'] or 0:.3f}..{g['max_mw'] or 0:.3f} MW vs {g['target_mw']} MW"
        )
    if s["failsafe_hours"]:
        lines.append(f"  fail-safe   engaged for {s['failsafe_hours']:,.2f} h")
    live = r.get("live_path")
    if live is not None:
        lines.extend(_live_lines(live))
    lines.append("")
    lines.append("  per model")
    lines.extend(
        f"    {m['model']:<20} {m['miners']:>6,} miners  {m['efficiency_j_per_th']:6.2f} J/TH  "
        f"curtailed {m['curtailed_hours']:>9,.2f} h  "
        f"revenue {m['mining_revenue_usd']:>14,.2f} USD"
        for m in r["per_model"]
    )
    lines.append("")
    if report_path is not None:
        lines.append(f"  report      {report_path}")
    if html_path is not None:
        lines.append(f"  html report {html_path}")
    else:
        lines.append(
            "  html report not written: add --report DIR (charts and tables, e.g. out/report)"
        )
    return "\n".join(lines)


def _live_lines(live: dict[str, Any]) -> list[str]:
    c, loss = live["commands"], live["ramp_losses"]
    failed = ", ".join(f"{n} {k}" for k, n in c.items() if k not in ("sent", "applied"))
    lines = [
        f"  live path   {live['miners']:,} simulated {live['family']} miners on "
        f"{live['addresses']} through pyasic; feeds {live['feeds']}",
        f"              {live['sim_s_per_wall_s'] or 0:,.0f} simulated s per wall s "
        f"({live['wall_s']:,.1f} s wall, clock {live['speed']:g}x while running); "
        f"{live['cycles']:,} cycles; {c['sent']:,} commands, {c['applied']:,} applied"
        + (f", {failed}" if failed else ""),
        f"  ramp losses {loss['ramp_ups']:,} ramp-ups over {live['resume_ramp_s']:g} s: "
        f"{loss['ph_hours_not_hashed']:,.4f} PH/s-h not hashed, "
        f"{loss['mwh_not_drawn']:,.4f} MWh not drawn; "
        f"{loss['mining_revenue_usd']:,.2f} USD revenue not earned, "
        f"{loss['power_value_usd']:,.2f} USD of power kept: net {loss['net_usd'] + 0.0:,.2f} USD "
        f"({live['net_usd_after_ramp_losses']:,.2f} USD net after them)",
    ]
    if live["late_readings"] or live["late_start_s"]:
        lines.append(
            f"  warning     the controller fell behind the clock: {live['late_readings']} readings "
            f"published up to {live['max_reading_lateness_s']:,.0f} s late; lower --speed"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
