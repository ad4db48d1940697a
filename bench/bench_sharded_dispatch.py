"""Curtail-and-confirm throughput of a sharded site: 1 and 2 worker processes through MQTT.

Starts a private Mosquitto, ``hashspark simulate`` with N LuxOS miners (on 127.56.0.0/16
and up), and for each worker count W: W ``hashspark worker`` processes and, in this
process, the planner's ``ShardedDriver`` (the same object the daemon runs). It measures,
wall clock, one observe sweep and one curtail of the whole fleet, from the plans going out
to the last report (every miner confirmed from its own telemetry by its worker, then
checked on the meter); each worker's CPU time and RSS; and the bytes and messages the
planner exchanged with the broker. Beside them, in the same run: the plain-streams floor
(the same LuxOS exchanges without pyasic, one process). ``--json`` writes the figures for
the capacity plan (``bench/capacity.py``).

    .venv/bin/python bench/bench_sharded_dispatch.py --miners 2000 --workers 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import resource
import shutil
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pyasic_dispatch import _floor

from adapters.sharding.planner import ShardedDriver
from controller.config import load_config
from controller.decision.reconcile import CommandBatch
from controller.domain import OFF
from controller.runtime import logs
from controller.runtime.clocks.system import SystemClock
from simulators.procs import stop

FIRST_IP = "127.56.0.1"
EXE = [sys.executable, "-c", "import sys; from controller.app.cli import main; sys.exit(main())"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ips(n: int) -> list[str]:
    a, b, c, d = (int(x) for x in FIRST_IP.split("."))
    base = (a << 24) | (b << 16) | (c << 8) | d
    return [".".join(str((base + i) >> s & 255) for s in (24, 16, 8, 0)) for i in range(n)]


def _rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _asleep(meter_port: int) -> int:
    url = f"http://127.0.0.1:{meter_port}/meter"
    with urllib.request.urlopen(url, timeout=60) as resp:
        data = json.load(resp)
    return sum(m["mode"] == "sleep" for m in data["miners"])


def _config(tmp: Path, site: str, broker_port: int, n: int, workers: int, args: Any) -> Path:
    ips = _ips(n)
    text = f"""
[[sites]]
id = "{site}"
price_feed = {{ type = "mqtt", broker = {{ host = "127.0.0.1", port = {broker_port} }} }}
hashprice_feed = {{ type = "mqtt", broker = {{ host = "127.0.0.1", port = {broker_port} }} }}
[sites.driver]
type = "pyasic"
concurrency = {args.concurrency}
call_timeout_s = 10.0
discovery_timeout_s = 10.0
confirm_timeout_s = 30.0
confirm_poll_s = 0.5
resume_batch_size = 250
[sites.sharding]
shards = {workers}
report_timeout_s = 300.0
startup_timeout_s = 300.0
broker = {{ host = "127.0.0.1", port = {broker_port}, keepalive_s = 30 }}
[[sites.miners]]
model = "Antminer S19j Pro"
firmware = "luxos"
addresses = ["{ips[0]}-{ips[-1]}"]
[sites.supply]
type = "spot"
"""
    path = tmp / f"{site}.toml"
    path.write_text(text)
    return path


async def _run_workers(
    config: Path, workers: int, n: int, meter_port: int, tmp: Path
) -> dict[str, Any]:
    loaded = load_config(config)
    site = loaded.config.sites[0]
    assert site.sharding is not None
    broker = site.shard_broker
    assert broker is not None
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is timed)
            [*EXE, "worker", str(config), "--shard", str(k)],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / f"{site.id}-worker{k}.log").open("w"),
        )
        for k in range(workers)
    ]
    try:
        clock = SystemClock()
        async with ShardedDriver(
            site.id,
            site.fleet(),
            [ip for g in site.miners for ip in _expand(g.addresses)],
            sharding=site.sharding,
            broker=broker,
            clock=clock,
        ) as driver:
            began = time.perf_counter()
            found = await driver.discover()
            online_s = time.perf_counter() - began
            driver.restrict_to_capabilities()

            began = time.perf_counter()
            observed = await driver.observe()
            observe_s = time.perf_counter() - began
            reachable = int(observed.reachable.sum())

            cpu0 = [_cpu_s(p.pid) for p in procs]
            out0, in0 = driver.bytes_out + driver.bytes_in, driver.messages_out + driver.messages_in
            batch = CommandBatch(np.arange(n, dtype=np.int64), np.full(n, OFF, dtype=np.int64))
            began = time.perf_counter()
            report = await driver.apply(batch)
            curtail_s = time.perf_counter() - began
            cpu = sum(_cpu_s(p.pid) - c for p, c in zip(procs, cpu0, strict=True))
            apply_bytes = driver.bytes_out + driver.bytes_in - out0
            apply_messages = driver.messages_out + driver.messages_in - in0
            asleep = _asleep(meter_port)
            rss = [_rss_mib(p.pid) for p in procs]
            peak = [_rss_mib(p.pid, "VmHWM") for p in procs]

            out0 = driver.bytes_out + driver.bytes_in
            began = time.perf_counter()
            cpu0 = [_cpu_s(p.pid) for p in procs]
            await driver.observe()
            observe2_s = time.perf_counter() - began
            observe_cpu = sum(_cpu_s(p.pid) - c for p, c in zip(procs, cpu0, strict=True))
            observe_bytes = driver.bytes_out + driver.bytes_in - out0

            top = driver.fleet.top_point
            resume = CommandBatch(np.arange(n, dtype=np.int64), top.astype(np.int64))
            began = time.perf_counter()
            resumed = await driver.apply(resume)
            resume_s = time.perf_counter() - began
            latency = report.confirmation_s
            return {
                "workers": workers,
                "miners": n,
                "found": found,
                "online_s": online_s,
                "observe_s": observe_s,
                "observe_after_s": observe2_s,
                "observe_cpu_s": observe_cpu,
                "reachable": reachable,
                "curtail_s": curtail_s,
                "confirmed": int(report.applied.size),
                "failed": len(report.failed),
                "failed_by": dict(Counter(type(o).__name__ for _, o in report.failed)),
                "asleep": asleep,
                "latency_p50_s": float(np.median(latency)) if latency else None,
                "latency_max_s": max(latency, default=None),
                "worker_cpu_s": cpu,
                "worker_rss_mib": rss,
                "worker_peak_rss_mib": peak,
                "planner_rss_mib": _rss_mib(os.getpid()),
                "apply_bytes": apply_bytes,
                "apply_messages": apply_messages,
                "observe_bytes": observe_bytes,
                "resume_s": resume_s,
                "resumed": int(resumed.applied.size),
            }
    finally:
        stop(procs, grace_s=60)


def _expand(specs: tuple[str, ...] | None) -> list[str]:
    from adapters.miners.addresses import expand_all  # noqa: PLC0415

    return expand_all(specs or ())


def _print(r: dict[str, Any], base: dict[str, Any] | None) -> None:
    n, w = r["miners"], r["workers"]
    rate = r["confirmed"] / r["curtail_s"]
    per_cpu = r["confirmed"] / r["worker_cpu_s"] if r["worker_cpu_s"] else float("nan")
    speedup = ""
    if base is not None and base["confirmed"]:
        speedup = f" -> {rate / (base['confirmed'] / base['curtail_s']):.2f}x of 1 worker"
    print(
        f"  {w} worker{'s' if w > 1 else ' '}  online in {r['online_s']:5.1f} s (found"
        f" {r['found']}/{n}); observe sweep {r['observe_s']:5.1f} s ({r['reachable']}/{n}"
        " reachable)"
    )
    print(
        f"             curtail+confirm {r['confirmed']}/{n} in {r['curtail_s']:6.2f} s ="
        f" {rate:7.1f} miners/s{speedup}; meter: {r['asleep']}/{n} asleep; failed"
        f" {r['failed']} {r['failed_by'] or ''}; latency p50 {r['latency_p50_s'] or 0:.2f} s,"
        f" max {r['latency_max_s'] or 0:.2f} s"
    )
    print(
        f"             worker CPU {r['worker_cpu_s']:.2f} s for the curtail = {per_cpu:.1f}"
        f" miners per CPU-second; observe {r['observe_cpu_s']:.2f} CPU-s"
        f" ({r['observe_after_s']:.1f} s wall)"
    )
    print(
        f"             broker (planner side): curtail {r['apply_messages']} messages,"
        f" {r['apply_bytes'] / 1024:.1f} KiB ({r['apply_bytes'] / n:.1f} B/miner); observe"
        f" {r['observe_bytes'] / 1024:.1f} KiB ({r['observe_bytes'] / n:.1f} B/miner)"
    )
    rss = ", ".join(f"{x:.1f}" for x in r["worker_rss_mib"])
    peak = ", ".join(f"{x:.1f}" for x in r["worker_peak_rss_mib"])
    print(
        f"             RSS: worker(s) {rss} MiB, peak {peak} MiB ({n // w} miners each);"
        " planner process"
        f" {r['planner_rss_mib']:.1f} MiB (ShardedDriver and the core); resume+confirm"
        f" {r['resumed']}/{n} in {r['resume_s']:.1f} s"
    )


def _start_broker(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        f"persistence false\nlog_dest file {tmp / 'mosquitto.log'}\n"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


async def _floor_run(ips: list[str], concurrency: int) -> float:
    elapsed = await _floor(ips, concurrency, "sleep")
    await _floor(ips, concurrency, "wakeup")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--miners", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=200, help="pyasic calls per worker")
    parser.add_argument("--speed", type=float, default=100.0, help="simulated s per wall s")
    parser.add_argument("--json", type=Path, help="write the figures here (capacity plan)")
    args = parser.parse_args()
    logs.configure("warning")  # the planner's state changes are not figures
    if args.miners > 130_000:
        parser.error("at most 130,000 miners (127.56.0.0/16 and 127.57.0.0/16)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65536), hard), hard))
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("skipped: needs mosquitto")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-sharded-"))
    n = args.miners
    meter_port = _port()
    (tmp / "fleet.toml").write_text(
        f'meter_port = {meter_port}\nspeed = {args.speed}\n[[group]]\nfamily = "luxos"\n'
        f'model = "S19jPro"\ncount = {n}\nip_start = "{FIRST_IP}"\n'
    )
    broker, broker_port = _start_broker(tmp)
    sim = subprocess.Popen(
        [*EXE, "simulate", "--fleet", str(tmp / "fleet.toml")], stdout=subprocess.PIPE, text=True
    )
    print(
        f"sharded curtail-and-confirm: {n} LuxOS miners, simulator speed {args.speed:g}x,"
        f" concurrency {args.concurrency} per worker, {os.cpu_count()} cores shared by the"
        " simulator, the broker, the workers and the planner"
    )
    results: list[dict[str, Any]] = []
    try:
        assert sim.stdout is not None
        ready = sim.stdout.readline().strip()
        if not ready.startswith("ready"):
            print(f"simulator did not start: {ready!r}", file=sys.stderr)
            return 1
        base = None
        for w in args.workers:
            config = _config(tmp, f"bench{w}", broker_port, n, w, args)
            r = asyncio.run(_run_workers(config, w, n, meter_port, tmp))
            _print(r, base)
            base = base or r
            results.append(r)
        ips = _ips(n)
        floor_s = asyncio.run(_floor_run(ips, args.concurrency))
        floor_rate = n / floor_s
        best = max(r["confirmed"] / r["curtail_s"] for r in results)
        print(
            f"  floor, plain streams, one process, {n} miners in {floor_s:6.2f} s ="
            f" {floor_rate:7.1f} miners/s -> best sharded run at {best / floor_rate:.2f}x"
        )
        if len(results) >= 2:
            a, b = results[0], results[-1]
            span = a["miners"] / a["workers"] - b["miners"] / b["workers"]
            now = (max(a["worker_rss_mib"]) - max(b["worker_rss_mib"])) / span
            peak = (max(a["worker_peak_rss_mib"]) - max(b["worker_peak_rss_mib"])) / span
            print(
                f"  worker RSS per 1,000 miners: {now * 1000:.1f} MiB after the curtail,"
                f" {peak * 1000:.1f} MiB at peak (slope between {a['miners'] // a['workers']}"
                f" and {b['miners'] // b['workers']} miners per worker; the rest is the"
                f" process: {min(b['worker_rss_mib']) - now * b['miners'] / b['workers']:.0f}"
                " MiB)"
            )
        if args.json is not None:
            args.json.write_text(
                json.dumps({"runs": results, "floor_s": floor_s, "cores": os.cpu_count()}, indent=1)
            )
    finally:
        stop(sim, grace_s=60)
        broker.terminate()
        broker.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
