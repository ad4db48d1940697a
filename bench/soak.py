"""Soak: a day of recorded prices, 1,000 simulated miners, the site loop through real pyasic.

``hashspark simulate`` runs the fleet (six family/model groups on 127.53.0.0/16) in its own
process at ``--speed`` simulated seconds per wall second; this process runs the daemon's
own site loop on a ``ScaledClock`` at the same speed, with the pyasic driver, the recorded
ERCOT HB_SOUTH prices and daily hashprice, the SQLite ledger, the command audit log and
the Prometheus metrics, composed as ``hashspark run`` composes them. At the end of every
cycle it samples this process's RSS, open file descriptors and asyncio tasks, the cycle's
duration, and the simulator's RSS and descriptors; then it prints the figures: growth
after warm-up (the first quarter of the simulated day), and cycle duration per quarter.

    .venv/bin/python bench/soak.py                      # 24 h, 1,000 miners, speed 120 (as root)
    .venv/bin/python bench/soak.py --hours 2 --json out.json

Needs root (the stock Antminers' web UI is on port 80). Exit 0 whatever the figures:
``tests/test_soak_slow.py`` runs it and holds them to their bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import resource
import select
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from adapters.control.command_audit import CommandAuditLog
from adapters.feeds.recorded import (
    HASHPRICE_COLUMN,
    PRICE_COLUMN,
    RecordedFeed,
    RecordedFeedConfig,
    load_recording,
)
from adapters.ledger.sqlite import LEDGER_FILE, SqliteLedger
from adapters.metrics import BookedLedger, Metrics, PnlBook
from adapters.miners.driver import PyasicDriver
from adapters.miners.pyasic_lib import pyasic
from controller.app.assemble import assemble
from controller.app.drivers import build_driver
from controller.config import load_config
from controller.decision.reconcile import DispatchReport
from controller.runtime.clocks.simulated import ScaledClock
from controller.runtime.logs import configure
from controller.site_model import SiteModel
from controller.status import SiteStatus
from simulators import procs

ROOT = Path(__file__).resolve().parents[1]
RECORDINGS = ROOT / "simulators" / "recordings"
PRICES = RECORDINGS / "ercot_hb_south_rtm_spp_15min_2024-06_2025-03.csv"
HASHPRICES = RECORDINGS / "btc_hashprice_daily_2024-05_2025-04_with_fees.csv"
#: The recording's busiest day for this fleet: the price crosses the S19j Pro's and the
#: S21's breakevens 21 times (3.37 to 171.75 USD/MWh), most of them 06:00-14:00 UTC. The
#: clock starts here before discovery, so the simulated day begins an hour or a few later.
DAY = "2025-02-05T00:00:00Z"
FIRST_IP = "127.53.0.1"
GROUPS = [  # (family, simulator model, pyasic model, curve: 60 % and nameplate)
    ("luxos", "S19jPro", "Antminer S19j Pro", [(80.6, 1841.0), (104.0, 3068.0)]),
    ("luxos", "S21", "Antminer S21", [(155.0, 2100.0), (200.0, 3500.0)]),
    ("antminer", "S19jPro", "Antminer S19j Pro", [(104.0, 3068.0)]),
    ("antminer", "S21", "Antminer S21", [(200.0, 3500.0)]),
    ("braiins", "S19jPro", "Antminer S19j Pro", [(80.6, 1841.0), (104.0, 3068.0)]),
    ("braiins", "S21", "Antminer S21", [(155.0, 2100.0), (200.0, 3500.0)]),
]
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sample:
    """One cycle's end: where the simulated day was, what the process held."""

    wall_s: float  # since the loop started
    sim_h: float  # simulated hours into the window
    cycle_s: float  # this cycle's wall duration
    rss_mib: float
    fds: int
    tasks: int
    sim_rss_mib: float  # the simulator process
    sim_fds: int
    commanded: int  # miners commanded this cycle
    peak_fds: int  # the most descriptors seen during the cycle (sampled every 0.5 s)
    peak_tasks: int  # the most asyncio tasks seen during the cycle
    unreachable: int  # miners the cycle could not read


class SamplingObserver:
    """The daemon's metrics observer, plus a sample of the process at every cycle's end."""

    def __init__(self, metrics: Metrics, clock: ScaledClock, sim_pid: int) -> None:
        self.metrics = metrics
        self.samples: list[Sample] = []
        self._clock = clock
        self.start = clock.now()  # reset when the loop starts
        self._sim_pid = sim_pid
        self._t0 = time.monotonic()
        self._peak_fds = 0
        self._peak_tasks = 0
        self._unreachable = 0

    async def watch_peaks(self, period_s: float = 0.5) -> None:
        """Sample descriptors and tasks during cycles: the peaks, not only the ends."""
        while True:
            self._peak_fds = max(self._peak_fds, _fds("self"))
            self._peak_tasks = max(self._peak_tasks, len(asyncio.all_tasks()))
            await asyncio.sleep(period_s)

    def cycle_finished(
        self, site_id: str, duration_s: float, decision_reason: str, report: DispatchReport | None
    ) -> None:
        """Forward to the metrics; sample."""
        self.metrics.cycle_finished(site_id, duration_s, decision_reason, report)
        commanded = 0 if report is None else int(report.applied.size) + len(report.failed)
        self.samples.append(
            Sample(
                wall_s=time.monotonic() - self._t0,
                sim_h=(self._clock.now() - self.start) / 3600,
                cycle_s=duration_s,
                rss_mib=_rss_mib("self"),
                fds=_fds("self"),
                tasks=len(asyncio.all_tasks()),
                sim_rss_mib=_rss_mib(str(self._sim_pid)),
                sim_fds=_fds(str(self._sim_pid)),
                commanded=commanded,
                peak_fds=self._peak_fds,
                peak_tasks=self._peak_tasks,
                unreachable=self._unreachable,
            )
        )
        self._peak_fds = self._peak_tasks = 0

    def ledger_write_failed(self, site_id: str) -> None:
        """Forward."""
        self.metrics.ledger_write_failed(site_id)

    def status(self, status: SiteStatus) -> None:
        """Forward (and note how many miners could not be read)."""
        self._unreachable = sum(m.unreachable for m in status.models)
        self.metrics.status(status)


def _rss_mib(pid: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _fds(pid: str) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ips(first: str, n: int) -> list[str]:
    a, b, c, d = (int(x) for x in first.split("."))
    base = (a << 24) | (b << 16) | (c << 8) | d
    return [".".join(str((base + i) >> s & 255) for s in (24, 16, 8, 0)) for i in range(n)]


def _sizes(miners: int) -> list[int]:
    k = len(GROUPS)
    return [miners // k + (1 if i < miners % k else 0) for i in range(k)]


def _write_files(work: Path, miners: int, speed: float, meter_port: int) -> tuple[Path, Path]:
    """The simulator's fleet file and the daemon's config over the same addresses."""
    ips = _ips(FIRST_IP, miners)
    fleet = [f"meter_port = {meter_port}", f"speed = {speed}", ""]
    config = [
        "[daemon]",
        "cycle_s = 300",
        "",
        "[[sites]]",
        'id = "soak"',
        "pool_fee = 0.02",
        f'price_feed = {{ type = "recorded", path = "{PRICES}" }}',
        f'hashprice_feed = {{ type = "recorded", path = "{HASHPRICES}" }}',
        "",
        "[sites.driver]",
        'type = "pyasic"',
        "concurrency = 200",
        "call_timeout_s = 10.0",
        "discovery_timeout_s = 20.0",
        "confirm_timeout_s = 30.0",
        "confirm_poll_s = 0.5",
        "resume_batch_size = 250",
        "",
        "[sites.policy]",
        "ramp_up_mw_per_min = 1.0",
        "",
    ]
    at = 0
    for (family, sim_model, name, curve), n in zip(GROUPS, _sizes(miners), strict=True):
        group = ips[at : at + n]
        at += n
        fleet += ["[[group]]", f'family = "{family}"', f'model = "{sim_model}"']
        fleet += [f"count = {n}", f'ip_start = "{group[0]}"', ""]
        points = ", ".join(f"{{ hashrate_th = {h}, power_w = {w} }}" for h, w in curve)
        config += ["[[sites.miners]]", f'model = "{name}"']
        config += [f'addresses = ["{group[0]}-{group[-1]}"]', f"curve = [{points}]", ""]
    config += ["[sites.supply]", 'type = "spot"', ""]
    fleet_path, config_path = work / "fleet.toml", work / "soak.toml"
    fleet_path.write_text("\n".join(fleet))
    config_path.write_text("\n".join(config))
    return fleet_path, config_path


def _start_simulator(fleet: Path, log: Path) -> subprocess.Popen[bytes]:
    exe = str(Path(sys.executable).parent / "hashspark")
    proc = subprocess.Popen(
        [exe, "simulate", "--fleet", str(fleet)], stdout=subprocess.PIPE, stderr=log.open("ab")
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("ready "):
        proc.kill()
        raise SystemExit(f"soak: the simulator did not start: {line!r} {log.read_text()}")
    return proc


def _meter(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/meter", timeout=60) as resp:
        data: dict[str, Any] = json.load(resp)
    return data


async def _soak(
    config_path: Path, state: Path, start: float, hours: float, speed: float, sim_pid: int
) -> tuple[SamplingObserver, CollectorRegistry, float]:
    loaded = load_config(config_path)
    site = loaded.config.sites[0]
    assert isinstance(site.price_feed, RecordedFeedConfig)
    assert isinstance(site.hashprice_feed, RecordedFeedConfig)
    model = SiteModel(
        site.id, site.fleet(), site.policy_params(), site.supply_contract(), site.hedge_book()
    )
    clock = ScaledClock(start, speed)
    driver = build_driver(site, model.fleet, clock)
    assert isinstance(driver, PyasicDriver)
    discovery_started = time.monotonic()
    found = await driver.discover()
    for _ in range(20):  # on a busy machine some probes miss their deadline: probe those again
        if found == model.fleet.size:
            break
        found = await driver.discover()
    discovery_s = time.monotonic() - discovery_started
    if found != model.fleet.size:
        raise SystemExit(f"soak: discovered {found} of {model.fleet.size} miners")
    registry, book = CollectorRegistry(), PnlBook()
    observer = SamplingObserver(Metrics(registry, book), clock, sim_pid)
    ledger = SqliteLedger.open(
        state / LEDGER_FILE,
        run_id="soak",
        config_version=loaded.version,
        started_at=time.time(),
        synchronous="full",
    )
    try:
        loop = assemble(
            model,
            clock=clock,
            price_feed=RecordedFeed(load_recording(site.price_feed.path, PRICE_COLUMN)),
            hashprice_feed=RecordedFeed(load_recording(site.hashprice_feed.path, HASHPRICE_COLUMN)),
            driver=driver,
            ledger=BookedLedger(ledger, book),
            cycle_s=loaded.config.daemon.cycle_s,
            observer=observer,
            audit=CommandAuditLog(state / "audit" / f"{site.id}-commands.jsonl", driver.addresses),
        )
        loop.adopt_fleet(driver.restrict_to_capabilities())
        watcher = asyncio.create_task(observer.watch_peaks(), name="soak-peaks")
        try:
            # The window starts now: discovery ran on the clock, so begin where it is.
            observer.start = clock.now()
            await loop.run(until=observer.start + hours * 3600)
        finally:
            watcher.cancel()
    finally:
        ledger.close()
    return observer, registry, discovery_s


def _quarters(values: list[float]) -> list[list[float]]:
    n = len(values)
    return [values[n * q // 4 : n * (q + 1) // 4] for q in range(4)]


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def figures(samples: list[Sample]) -> dict[str, Any]:
    """Growth after warm-up (the first quarter of cycles) and cycle duration per quarter."""
    if len(samples) < 8:
        raise SystemExit(f"soak: {len(samples)} cycles are too few for figures: run longer")
    quarters = _quarters([s.cycle_s for s in samples])
    warm = samples[len(samples) // 4 - 1]  # the last sample of the warm-up quarter
    after = samples[len(samples) // 4 :]
    return {
        "cycles": len(samples),
        "rss_mib": {
            "first": samples[0].rss_mib,
            "after_warmup": warm.rss_mib,
            "max_after_warmup": max(s.rss_mib for s in after),
            "last": samples[-1].rss_mib,
            "growth_after_warmup": max(s.rss_mib for s in after) - warm.rss_mib,
        },
        "fds": {
            "first": samples[0].fds,
            "after_warmup": warm.fds,
            "min_after_warmup": min(s.fds for s in after),
            "max_after_warmup": max(s.fds for s in after),
            "last": samples[-1].fds,
        },
        "tasks": {
            "after_warmup": warm.tasks,
            "max_after_warmup": max(s.tasks for s in after),
            "last": samples[-1].tasks,
        },
        "simulator": {
            "rss_mib_after_warmup": warm.sim_rss_mib,
            "rss_mib_max_after_warmup": max(s.sim_rss_mib for s in after),
            "fds_after_warmup": warm.sim_fds,
            "fds_max_after_warmup": max(s.sim_fds for s in after),
        },
        "cycle_s": [
            {
                "quarter": q + 1,
                "cycles": len(values),
                "p50": statistics.median(values),
                "p95": _p95(values),
                "max": max(values),
            }
            for q, values in enumerate(quarters)
        ],
        "cycle_p95_last_over_first": _p95(quarters[3]) / _p95(quarters[0]),
        "peak_fds": max(s.peak_fds for s in samples),
        "peak_tasks": max(s.peak_tasks for s in samples),
        "unreachable_at_end": samples[-1].unreachable,
        "commanded_cycles": sum(s.commanded > 0 for s in samples),
        "miners_commanded": sum(s.commanded for s in samples),
    }


def _ledger_check(state: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{state / LEDGER_FILE}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT start_s, end_s FROM intervals ORDER BY start_s").fetchall()
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    overlaps = sum(a[1] > b[0] for a, b in itertools.pairwise(rows))
    hours = (rows[-1][1] - rows[0][0]) / 3600 if rows else 0.0
    return {"intervals": len(rows), "overlaps": overlaps, "integrity": integrity, "hours": hours}


def _commands(registry: CollectorRegistry) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in registry.collect():
        if metric.name == "hashspark_commands":
            for s in metric.samples:
                if s.name.endswith("_total"):
                    out[s.labels["outcome"]] = s.value
    return out


def run(miners: int, hours: float, speed: float, day: str) -> dict[str, Any]:
    """Run the soak and return its figures."""
    start = datetime.fromisoformat(day.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    pyasic()  # import it (quietly) before anything is measured
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="hashspark-soak-") as tmp:
        work = Path(tmp)
        meter_port = _free_port()
        fleet, config = _write_files(work, miners, speed, meter_port)
        sim = _start_simulator(fleet, work / "simulate.log")
        began = time.monotonic()
        try:
            observer, registry, discovery_s = asyncio.run(
                _soak(config, work / "state", start, hours, speed, sim.pid)
            )
            wall_s = time.monotonic() - began
            meter = _meter(meter_port)
        finally:
            procs.stop(sim, grace_s=30)
        return {
            "miners": miners,
            "simulated_hours": hours,
            "speed": speed,
            "window_start": datetime.fromtimestamp(observer.start, UTC).isoformat(),
            "wall_s": wall_s,
            "discovery_s": discovery_s,
            "ledger": _ledger_check(work / "state"),
            "commands": _commands(registry),
            "meter_commands": meter["total_commands"],
            "samples": [asdict(s) for s in observer.samples],
            **figures(observer.samples),
        }


def _print(r: dict[str, Any]) -> None:
    print(
        f"soak: {r['miners']:,} miners, {r['simulated_hours']:g} simulated h at {r['speed']:g}x "
        f"from {r['window_start']}: {r['wall_s'] / 60:.1f} min wall "
        f"(discovery {r['discovery_s']:.1f} s), {r['cycles']} cycles"
    )
    ledger = r["ledger"]
    print(
        f"  ledger        {ledger['intervals']} intervals over {ledger['hours']:.2f} h, "
        f"{ledger['overlaps']} overlaps, integrity {ledger['integrity']}"
    )
    commands = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(r["commands"].items()))
    print(
        f"  commands      {commands or 'none'}; the meter counted {r['meter_commands']:,}; "
        f"{r['commanded_cycles']} cycles commanded miners"
    )
    rss, fds, tasks, sim = r["rss_mib"], r["fds"], r["tasks"], r["simulator"]
    print(
        f"  RSS MiB       first {rss['first']:.1f}, after warm-up {rss['after_warmup']:.1f}, "
        f"max after {rss['max_after_warmup']:.1f}, last {rss['last']:.1f} "
        f"(growth after warm-up {rss['growth_after_warmup']:+.1f})"
    )
    print(
        f"  open fds      first {fds['first']}, after warm-up {fds['after_warmup']}, "
        f"range after {fds['min_after_warmup']}..{fds['max_after_warmup']}, last {fds['last']}"
    )
    print(
        f"  asyncio tasks after warm-up {tasks['after_warmup']}, "
        f"max after {tasks['max_after_warmup']}, last {tasks['last']} (at cycle ends)"
    )
    print(
        f"  during cycles peak fds {r['peak_fds']}, peak tasks {r['peak_tasks']}; "
        f"unreachable miners at the last cycle {r['unreachable_at_end']}"
    )
    print(
        f"  simulator     RSS {sim['rss_mib_after_warmup']:.1f} -> max "
        f"{sim['rss_mib_max_after_warmup']:.1f} MiB, fds {sim['fds_after_warmup']} -> max "
        f"{sim['fds_max_after_warmup']}"
    )
    print("  cycle s       quarter  cycles   p50     p95     max")
    for q in r["cycle_s"]:
        print(
            f"                {q['quarter']:>7} {q['cycles']:>7} {q['p50']:>6.2f} "
            f"{q['p95']:>7.2f} {q['max']:>7.2f}"
        )
    print(f"  p95 last quarter / first quarter: {r['cycle_p95_last_over_first']:.2f}")


def main() -> None:
    """Parse arguments, run, print (and write the JSON if asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours")
    parser.add_argument("--speed", type=float, default=120.0, help="simulated s per wall s")
    parser.add_argument(
        "--day",
        default=DAY,
        help="the clock's start (ISO 8601, UTC); the window begins after discovery",
    )
    parser.add_argument("--json", type=Path, help="write every figure and sample here")
    parser.add_argument("--log-level", default="warning", help="the loop's logs, on stderr")
    args = parser.parse_args()
    # SIGTERM unwinds like an error, so the simulator process is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    pyasic()  # before configuring logs: importing it resets the root logger's level
    configure(args.log_level)
    result = run(args.miners, args.hours, args.speed, args.day)
    _print(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
