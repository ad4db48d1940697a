"""pyasic against asic-rs on the same simulated fleet, in one run: the two miner drivers.

Starts one ``hashspark simulate`` process (a third each LuxOS, stock Antminer and Braiins
OS+), then runs each driver in its own child process (so its RSS and CPU are its own)
against that same fleet, one after the other, and prints per driver and per firmware:

- discovery time of each family's third (a family a driver does not identify is reported
  as not found, and left out of its runs);
- curtail-and-confirm miners/s (median of ``--repeat`` runs, each confirmed by the miner's
  telemetry; a resume restores the fleet between runs), and the mixed fleet of every family
  the driver found;
- CPU-seconds per confirmed miner (the child's user + system time over the curtails, every
  thread included: asic-rs's Rust runtime runs in threads of its own);
- the child's RSS after the runs (VmRSS) and its peak.

Then the floor: the LuxOS exchanges over plain asyncio streams (bench_pyasic_dispatch.py's),
and each driver's LuxOS rate as a fraction of it. Needs root (port 80 for stock web UIs).

    .venv/bin/python bench/bench_driver_compare.py --miners 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from adapters.miners.asicrs import AsicRsDriver, asic_rs
from adapters.miners.config import AsicRsDriverConfig, MinerDriverConfig, PyasicDriverConfig
from adapters.miners.driver import PyasicDriver
from adapters.miners.pyasic_lib import pyasic
from controller.domain import OFF, build_fleet
from controller.runtime.clocks.simulated import ScaledClock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pyasic_dispatch import _all, _fleet_file  # one fleet file and batch for both

FAMILIES = [("luxos", "127.68.0.1"), ("antminer", "127.69.0.1"), ("braiins", "127.70.0.1")]
NAMEPLATE = ("Antminer S19j Pro", [(104.0, 3068.0)])
DRIVERS = ("pyasic", "asic-rs")
CALL_TIMEOUT_S = 10.0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _driver(kind: str, ips: list[str], args: argparse.Namespace) -> PyasicDriver:
    fleet = build_fleet([(NAMEPLATE[0], len(ips), NAMEPLATE[1])])
    values: dict[str, Any] = {
        "type": kind,
        "concurrency": args.concurrency,
        "call_timeout_s": CALL_TIMEOUT_S,
        "discovery_timeout_s": CALL_TIMEOUT_S,
        "confirm_timeout_s": args.confirm_timeout,
        "confirm_poll_s": 0.5,
        "resume_batch_size": args.resume_batch,
    }
    clock = ScaledClock(time.time(), speed=args.speed)
    config: MinerDriverConfig
    if kind == "asic-rs":
        config = AsicRsDriverConfig.model_validate(values)
        return AsicRsDriver(fleet, ips, config, clock, seed=0)
    config = PyasicDriverConfig.model_validate(values)
    return PyasicDriver(fleet, ips, config, clock, seed=0)


async def _curtails(driver: PyasicDriver, repeat: int) -> dict[str, float]:
    """Median curtail-and-confirm of the whole driver's fleet, and CPU-s per confirmed miner."""
    runs: list[float] = []
    cpu: list[float] = []
    confirmed: list[int] = []
    for _ in range(repeat):
        await driver.observe()
        c0, t0 = _cpu_s(), time.perf_counter()
        report = await driver.apply(_all(driver.fleet.size, OFF))
        runs.append(time.perf_counter() - t0)
        cpu.append(_cpu_s() - c0)
        confirmed.append(report.applied.size)
        await driver.observe()
        await driver.apply(_all(driver.fleet.size, 1))  # restore
    s = float(np.median(runs))
    n = min(confirmed)
    return {
        "miners": driver.fleet.size,
        "confirmed": n,
        "seconds": s,
        "rate": n / s if s > 0 else 0.0,
        "cpu_per_miner": float(np.median(cpu)) / max(n, 1),
    }


async def _child(kind: str, ips: dict[str, list[str]], args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    _ = asic_rs() if kind == "asic-rs" else pyasic()
    out: dict[str, Any] = {"driver": kind, "import_s": time.perf_counter() - t0, "families": {}}
    found_ips: list[str] = []
    for family, _first in FAMILIES:
        driver = _driver(kind, ips[family], args)
        t0 = time.perf_counter()
        found = await driver.discover()
        row: dict[str, Any] = {"found": found, "of": len(ips[family])}
        row["discovery_s"] = time.perf_counter() - t0
        if found == len(ips[family]):
            row |= await _curtails(driver, args.repeat)
            found_ips += ips[family]
        out["families"][family] = row
    if found_ips:
        mixed = _driver(kind, found_ips, args)
        await mixed.discover()
        out["mixed"] = await _curtails(mixed, args.repeat)
    out["rss_mib"] = _rss_mib()
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _spawn_child(kind: str, ips_file: Path, argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--ips", str(ips_file), *argv],
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed: {proc.stderr.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _print(results: list[dict[str, Any]], floor_rate: float, n_lux: int) -> None:
    print(
        f"  {'driver':8} {'firmware':9} {'found':>9} {'discover':>9} {'curtail+confirm':>16}"
        f" {'CPU-ms/miner':>13} {'of floor':>9}"
    )
    for r in results:
        rows = [*r["families"].items()]
        if "mixed" in r:
            rows.append(("mixed", r["mixed"] | {"found": r["mixed"]["miners"], "of": None}))
        for family, row in rows:
            found = f"{row['found']}/{row['of']}" if row.get("of") else f"{row['found']}"
            disc = f"{row['discovery_s']:.2f} s" if "discovery_s" in row else ""
            if "rate" in row:
                rate = f"{row['rate']:8.1f} miners/s"
                cpu = f"{1000 * row['cpu_per_miner']:10.2f}"
                frac = f"{row['rate'] / floor_rate:8.2f}x" if family == "luxos" else ""
            else:
                rate, cpu, frac = "not identified", "", ""
            print(
                f"  {r['driver']:8} {family:9} {found:>9} {disc:>9} {rate:>16} {cpu:>13} {frac:>9}"
            )
        print(
            f"  {r['driver']:8} import {r['import_s']:.2f} s; RSS after the runs"
            f" {r['rss_mib']:.0f} MiB, peak {r['peak_rss_mib']:.0f} MiB"
        )
    print(f"  floor, plain streams: {n_lux} LuxOS miners at {floor_rate:.1f} miners/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--miners", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--resume-batch", type=int, default=250)
    parser.add_argument("--speed", type=float, default=100.0, help="simulated s per wall s")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--confirm-timeout", type=float, default=15.0)
    parser.add_argument("--child", choices=DRIVERS, help=argparse.SUPPRESS)
    parser.add_argument("--ips", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65536), hard), hard))

    if args.child:
        ips = json.loads(args.ips.read_text())
        print(json.dumps(asyncio.run(_child(args.child, ips, args))))
        return 0

    from bench_pyasic_dispatch import _floor  # noqa: PLC0415 (a sibling script)

    print(
        f"pyasic and asic-rs on one simulated fleet of {args.miners} S19j Pro (a third per"
        f" firmware), simulator speed {args.speed:g}x, concurrency {args.concurrency},"
        f" median of {args.repeat}"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    fleet, ips = _fleet_file(args.miners, port, args.speed, FAMILIES)
    ips_file = fleet.parent / "ips.json"
    ips_file.write_text(json.dumps(ips))
    cmd = [
        sys.executable,
        "-c",
        "import sys; from controller.app.cli import main; sys.exit(main())",
    ]
    proc = subprocess.Popen(
        [*cmd, "simulate", "--fleet", str(fleet)], stdout=subprocess.PIPE, text=True
    )
    argv = [
        f"--concurrency={args.concurrency}",
        f"--resume-batch={args.resume_batch}",
        f"--speed={args.speed}",
        f"--repeat={args.repeat}",
        f"--confirm-timeout={args.confirm_timeout}",
    ]
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().strip()
        if not ready.startswith("ready"):
            print(f"simulator did not start: {ready!r}", file=sys.stderr)
            return 1
        results = [_spawn_child(kind, ips_file, argv) for kind in DRIVERS]

        async def floor() -> float:
            runs = []
            for _ in range(args.repeat):
                runs.append(await _floor(ips["luxos"], args.concurrency, "sleep"))
                await _floor(ips["luxos"], args.concurrency, "wakeup")
            return len(ips["luxos"]) / float(np.median(runs))

        floor_rate = asyncio.run(floor())
        _print(results, floor_rate, len(ips["luxos"]))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
