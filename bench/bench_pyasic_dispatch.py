"""Curtail-and-confirm throughput of the pyasic driver on simulated fleets, with baselines.

For each fleet size N it starts ``hashspark simulate`` (a separate process: one core for
the miners, one for us), a third of the fleet each LuxOS, stock Antminer and Braiins OS+,
and measures, wall clock, from the first command to the last confirmation:

- the driver curtailing the whole mixed fleet (every miner confirmed by its telemetry,
  then checked against the meter);
- the driver on each family's third alone (where the time goes);
- a naive sequential pyasic loop (stop_mining, then get_data until off; one miner at a
  time) on a sample of the LuxOS miners, extrapolated to miners/s;
- a floor: the same LuxOS exchanges (session or logon, curtail, read ``power`` until
  asleep) over plain asyncio streams, no pyasic, at the driver's concurrency.

Resumes (staggered, confirmed) restore the fleet between runs. Needs root (port 80).
With ``--faults 0.1`` it instead gives 10 % of the fleet the simulator's fault modes
(an equal share each), curtails everyone at once and prints the outcomes per fault mode.

    .venv/bin/python bench/bench_pyasic_dispatch.py --miners 500 1000 [--profile]
    .venv/bin/python bench/bench_pyasic_dispatch.py --miners 1000 --faults 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from adapters.miners.config import PyasicDriverConfig
from adapters.miners.driver import PyasicDriver
from adapters.miners.pyasic_lib import pyasic
from controller.decision.reconcile import CommandBatch, DispatchReport
from controller.domain import OFF, build_fleet
from controller.runtime.clocks.simulated import ScaledClock

FAMILIES = [("luxos", "127.42.0.1"), ("antminer", "127.43.0.1"), ("braiins", "127.44.0.1")]
NAMEPLATE = ("Antminer S19j Pro", [(104.0, 3068.0)])
CALL_TIMEOUT_S = 10.0
SLEEP_W = 150.0  # "asleep" for the floor: the simulator's S19j Pro sleeps at 22 W


def _ips(first: str, n: int) -> list[str]:
    a, b, c, d = (int(x) for x in first.split("."))
    base = (a << 24) | (b << 16) | (c << 8) | d
    return [".".join(str((base + i) >> s & 255) for s in (24, 16, 8, 0)) for i in range(n)]


def _fleet_file(
    n: int, port: int, speed: float, families: list[tuple[str, str]] = FAMILIES
) -> tuple[Path, dict[str, list[str]]]:
    """A ``hashspark simulate`` fleet file of ``n`` S19j Pros split over ``families`` (each
    with its first address); the file and each family's addresses."""
    sizes = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
    lines = [f"meter_port = {port}", f"speed = {speed}"]
    ips: dict[str, list[str]] = {}
    for (family, first), k in zip(families, sizes, strict=True):
        lines += ["[[group]]", f'family = "{family}"', 'model = "S19jPro"', f"count = {k}"]
        lines.append(f'ip_start = "{first}"')
        ips[family] = _ips(first, k)
    path = Path(tempfile.mkdtemp()) / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, ips


def _meter(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/meter", timeout=30) as resp:
        data: dict[str, Any] = json.load(resp)
    return data


def _sleeping(port: int, ips: list[str]) -> int:
    wanted = set(ips)
    return sum(m["mode"] == "sleep" for m in _meter(port)["miners"] if m["ip"] in wanted)


CONFIRM_TIMEOUT_S = [15.0]  # set from --confirm-timeout


def _driver(ips: list[str], concurrency: int, clock: ScaledClock, batch: int) -> PyasicDriver:
    fleet = build_fleet([(NAMEPLATE[0], len(ips), NAMEPLATE[1])])
    config = PyasicDriverConfig(
        type="pyasic",
        concurrency=concurrency,
        call_timeout_s=CALL_TIMEOUT_S,
        discovery_timeout_s=CALL_TIMEOUT_S,
        confirm_timeout_s=CONFIRM_TIMEOUT_S[0],
        confirm_poll_s=0.5,
        resume_batch_size=batch,
    )
    return PyasicDriver(fleet, ips, config, clock, seed=0)


def _all(n: int, point: int) -> CommandBatch:
    return CommandBatch(miner=np.arange(n, dtype=np.int64), point=np.full(n, point))


async def _dispatch(driver: PyasicDriver, point: int) -> tuple[float, DispatchReport]:
    await driver.observe()
    started = time.perf_counter()
    report = await driver.apply(_all(driver.fleet.size, point))
    return time.perf_counter() - started, report


async def _naive(ips: list[str]) -> float:
    """One miner at a time: pyasic stop_mining, then get_data until it reads asleep."""
    lib = pyasic()
    miners = [await asyncio.wait_for(lib.get_miner(ip), CALL_TIMEOUT_S) for ip in ips]
    started = time.perf_counter()
    for miner in miners:
        await asyncio.wait_for(miner.stop_mining(), CALL_TIMEOUT_S)
        while True:
            data = await asyncio.wait_for(
                miner.get_data(include=["hashboards", "wattage"]), CALL_TIMEOUT_S
            )
            if data.wattage is not None and data.wattage < SLEEP_W:
                break
            await asyncio.sleep(0.5)
    elapsed = time.perf_counter() - started
    for miner in miners:
        await asyncio.wait_for(miner.resume_mining(), CALL_TIMEOUT_S)
    return elapsed


async def _raw(ip: str, command: str, parameter: str | None = None) -> dict[str, Any]:
    body: dict[str, str] = {"command": command}
    if parameter is not None:
        body["parameter"] = parameter
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, 4028), CALL_TIMEOUT_S)
    try:
        writer.write(json.dumps(body).encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), CALL_TIMEOUT_S)
    finally:
        writer.close()
    reply: dict[str, Any] = json.loads(data.rstrip(b"\x00"))
    return reply


async def _floor(ips: list[str], concurrency: int, action: str) -> float:
    """The LuxOS exchanges with plain streams: session/logon, curtail, read power until done."""
    gate = asyncio.Semaphore(concurrency)

    async def one(ip: str) -> None:
        async with gate:
            sid = (await _raw(ip, "session"))["SESSION"][0]["SessionID"]
            if not sid:
                sid = (await _raw(ip, "logon"))["SESSION"][0]["SessionID"]
            await _raw(ip, "curtail", f"{sid},{action}")
        while True:
            async with gate:
                watts = (await _raw(ip, "power"))["POWER"][0]["Watts"]
            if (watts < SLEEP_W) == (action == "sleep"):
                return
            await asyncio.sleep(0.5)

    started = time.perf_counter()
    await asyncio.gather(*(one(ip) for ip in ips))
    return time.perf_counter() - started


FAULTS: list[dict[str, Any]] = [
    {"kind": "unreachable"},
    {"kind": "silent"},
    {"kind": "liar"},
    {"kind": "reject"},
    {"kind": "slow", "latency_s": 2.0},
    {"kind": "reboot", "reboot_s": 600.0},
    {"kind": "drift", "drift_after_s": 5.0},
]


def _post_faults(port: int, everyone: list[str], fraction: float) -> dict[str, str]:
    """Give each fault mode to an equal share of ``fraction`` of the fleet (spread evenly)."""
    chosen = everyone[:: max(1, round(1 / fraction))]
    kind_of: dict[str, str] = {}
    for k, fault in enumerate(FAULTS):
        ips = chosen[k :: len(FAULTS)]
        body = json.dumps({"fault": fault, "miners": ips}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/faults", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30):
            pass
        kind_of.update(dict.fromkeys(ips, fault["kind"]))
    return kind_of


async def _faulty(driver: PyasicDriver, everyone: list[str], kind_of: dict[str, str]) -> None:
    started = time.perf_counter()
    report = await driver.apply(_all(driver.fleet.size, OFF))
    elapsed = time.perf_counter() - started
    table: Counter[tuple[str, str]] = Counter()
    reasons: dict[str, Counter[str]] = {}
    for i in report.applied.tolist():
        table[(kind_of.get(everyone[i], "healthy"), "Applied")] += 1
    for i, outcome in report.failed:
        kind = kind_of.get(everyone[i], "healthy")
        table[(kind, type(outcome).__name__)] += 1
        reasons.setdefault(kind, Counter())[getattr(outcome, "reason", "")[:90]] += 1
    healthy = sum(n for (kind, _), n in table.items() if kind == "healthy")
    print(
        f"  faults: {len(kind_of)} faulty of {len(everyone)}; all commanded at once,"
        f" {elapsed:.2f} s to the last outcome; applied latency p50"
        f" {np.median(report.confirmation_s):.2f} s, max {max(report.confirmation_s):.2f} s"
    )
    print(f"  healthy: {table[('healthy', 'Applied')]}/{healthy} applied")
    for fault in FAULTS:
        kind = fault["kind"]
        got = {o: n for (k, o), n in sorted(table.items()) if k == kind}
        print(f"    {kind:12} {got}")
        for reason, count in reasons.get(kind, Counter()).most_common(2):
            print(f"    {'':12}   {count} x {reason}")


async def _run(n: int, args: argparse.Namespace, port: int, ips: dict[str, list[str]]) -> None:
    clock = ScaledClock(time.time(), speed=args.speed)
    everyone = [ip for family, _ in FAMILIES for ip in ips[family]]
    driver = _driver(everyone, args.concurrency, clock, args.resume_batch)
    started = time.perf_counter()
    found = await driver.discover()
    print(f"N={n}: discovered {found}/{n} in {time.perf_counter() - started:.1f} s")
    if args.faults > 0:
        kind_of = _post_faults(port, everyone, args.faults)
        await _faulty(driver, everyone, kind_of)
        return

    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    curtail_s, report = await _dispatch(driver, OFF)
    if profiler:
        profiler.disable()
    asleep = _sleeping(port, everyone)
    print(
        f"  driver, mixed fleet   curtail+confirm {report.applied.size}/{n} in {curtail_s:6.2f} s"
        f" = {report.applied.size / curtail_s:7.1f} miners/s; meter: {asleep}/{n} asleep;"
        f" latency p50 {np.median(report.confirmation_s):.2f} s,"
        f" max {max(report.confirmation_s, default=0):.2f} s; failed {len(report.failed)}"
    )
    resume_s, resumed = await _dispatch(driver, 1)
    print(
        f"  driver, mixed fleet   resume+confirm  {resumed.applied.size}/{n} in {resume_s:6.2f} s"
        f" (batches of {args.resume_batch})"
    )

    rates: dict[str, float] = {}
    for family, _ in FAMILIES:
        third = _driver(ips[family], args.concurrency, clock, args.resume_batch)
        await third.discover()
        runs: list[float] = []
        confirmed: list[int] = []
        for _ in range(args.repeat):
            third_s, third_report = await _dispatch(third, OFF)
            runs.append(third_s)
            confirmed.append(third_report.applied.size)
            await _dispatch(third, 1)
        third_s = float(np.median(runs))
        rates[family] = min(confirmed) / third_s
        print(
            f"  driver, {family:8} third curtail+confirm {min(confirmed)}/"
            f"{len(ips[family])} in {third_s:6.2f} s = {rates[family]:7.1f} miners/s"
            f" (median of {args.repeat})"
        )
    lux = ips["luxos"]
    lux_rate = rates["luxos"]

    sample = lux[: args.naive_sample]
    naive_s = await _naive(sample)
    naive_rate = len(sample) / naive_s
    print(
        f"  naive pyasic loop     {len(sample)} LuxOS miners one by one in {naive_s:6.2f} s ="
        f" {naive_rate:7.1f} miners/s -> driver is {lux_rate / naive_rate:5.1f}x"
    )
    await asyncio.sleep(2.0)  # let the naive loop's resumes ramp up before the floor
    floor_runs: list[float] = []
    for _ in range(args.repeat):
        floor_runs.append(await _floor(lux, args.concurrency, "sleep"))
        asleep = _sleeping(port, lux)
        await _floor(lux, args.concurrency, "wakeup")
    floor_s = float(np.median(floor_runs))
    floor_rate = len(lux) / floor_s
    print(
        f"  floor, plain streams  {len(lux)} LuxOS miners in {floor_s:6.2f} s ="
        f" {floor_rate:7.1f} miners/s (meter: {asleep} asleep) -> driver at"
        f" {lux_rate / floor_rate:4.2f}x of the floor (median of {args.repeat})"
    )

    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print("  profile of the mixed-fleet curtail (by own time):")
        print("\n".join("    " + line for line in out.getvalue().splitlines()[:40]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--miners", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--resume-batch", type=int, default=250)
    parser.add_argument("--speed", type=float, default=100.0, help="simulated s per wall s")
    parser.add_argument("--naive-sample", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="runs per family and floor")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--faults", type=float, default=0.0, help="fraction of faulty miners (fault run only)"
    )
    parser.add_argument("--confirm-timeout", type=float, default=15.0)
    args = parser.parse_args()
    CONFIRM_TIMEOUT_S[0] = args.confirm_timeout

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65536), hard), hard))
    pyasic()
    print(
        f"pyasic curtail-and-confirm, simulator speed {args.speed:g}x (a 3 s stop takes"
        f" {3 / args.speed:.2f} s), concurrency {args.concurrency}"
    )
    for n in args.miners:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        fleet, ips = _fleet_file(n, port, args.speed)
        cmd = [
            sys.executable,
            "-c",
            "import sys; from controller.app.cli import main; sys.exit(main())",
        ]
        proc = subprocess.Popen(
            [*cmd, "simulate", "--fleet", str(fleet)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            ready = proc.stdout.readline().strip()
            if not ready.startswith("ready"):
                print(f"simulator did not start: {ready!r}", file=sys.stderr)
                return 1
            asyncio.run(_run(n, args, port, ips))
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
