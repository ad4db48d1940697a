"""Start 1,000 mixed simulated miners in one process and sweep them with unmodified pyasic.

Prints the simulator's start time (spawn to its ``ready`` line), pyasic's discovery and
full ``get_data`` sweep times, failures, and the simulator's RSS. Needs root (port 80).

    .venv/bin/python bench/bench_simulated_fleet.py [--count 1000] [--concurrency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

GROUPS = [  # family, model, first address: one /16 per family
    ("luxos", "S19jPro", "127.42.0.1"),
    ("luxos", "S21", "127.42.128.1"),
    ("antminer", "S19jPro", "127.43.0.1"),
    ("antminer", "S21", "127.43.128.1"),
    ("braiins", "S19jPro", "127.44.0.1"),
    ("braiins", "S21", "127.44.128.1"),
]
CALL_TIMEOUT_S = 30.0


def _fleet_file(count: int, port: int) -> tuple[Path, list[str]]:
    sizes = [count // len(GROUPS) + (1 if i < count % len(GROUPS) else 0) for i in range(6)]
    lines = [f"meter_port = {port}"]
    ips: list[str] = []
    for (family, model, first), n in zip(GROUPS, sizes, strict=True):
        if n == 0:
            continue
        lines += ["[[group]]", f'family = "{family}"', f'model = "{model}"']
        lines += [f"count = {n}", f'ip_start = "{first}"']
        base = first.rsplit(".", 2)[0]
        third, fourth = int(first.split(".")[2]), int(first.split(".")[3])
        for i in range(n):
            k = third * 256 + fourth + i
            ips.append(f"{base}.{k // 256}.{k % 256}")
    path = Path(tempfile.mkdtemp()) / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, ips


def _rss_mib(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _sweep(ips: list[str], concurrency: int) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyasic  # noqa: PLC0415  (import resets the root logger: after our setup)
    logging.getLogger().setLevel(logging.CRITICAL)
    semaphore = asyncio.Semaphore(concurrency)

    async def bounded(coro: Any) -> Any:
        async with semaphore:
            try:
                return await asyncio.wait_for(coro, CALL_TIMEOUT_S)
            except Exception as exc:
                return exc

    started = time.perf_counter()
    miners = await asyncio.gather(*(bounded(pyasic.get_miner(ip)) for ip in ips))
    discovery_s = time.perf_counter() - started
    found = [m for m in miners if m is not None and not isinstance(m, Exception)]
    kinds = Counter(type(m).__name__ for m in found)

    started = time.perf_counter()
    datas = await asyncio.gather(*(bounded(m.get_data()) for m in found))
    sweep_s = time.perf_counter() - started
    good = [d for d in datas if not isinstance(d, Exception) and d.hashrate is not None]
    return {
        "discovery_s": discovery_s,
        "found": len(found),
        "kinds": kinds,
        "sweep_s": sweep_s,
        "data_ok": len(good),
        "errors": Counter(type(d).__name__ for d in datas if isinstance(d, Exception)),
        "hashrate_th": sum(float(d.hashrate) for d in good),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65536), hard), hard))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    fleet, ips = _fleet_file(args.count, port)
    cmd = [
        sys.executable,
        "-c",
        "import sys; from controller.app.cli import main; sys.exit(main())",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, "simulate", "--fleet", str(fleet)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().strip()
        start_s = time.perf_counter() - started
        if not ready.startswith("ready"):
            print(f"simulator did not start: {ready!r}", file=sys.stderr)
            return 1
        rss_ready, _ = _rss_mib(proc.pid)
        cpu_before = _cpu_s(proc.pid)
        result = asyncio.run(_sweep(ips, args.concurrency))
        sim_cpu_s = _cpu_s(proc.pid) - cpu_before
        rss_now, rss_peak = _rss_mib(proc.pid)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()

    print(f"simulated fleet: {args.count} miners ({', '.join(f'{f}/{m}' for f, m, _ in GROUPS)})")
    print(f"  start           {start_s:6.2f} s  (spawn to '{ready}')")
    print(
        f"  discovery       {result['discovery_s']:6.2f} s  pyasic.get_miner, found "
        f"{result['found']}/{args.count}: {dict(result['kinds'])}"
    )
    print(
        f"  get_data sweep  {result['sweep_s']:6.2f} s  concurrency {args.concurrency}, "
        f"ok {result['data_ok']}/{result['found']}, errors {dict(result['errors'])}"
    )
    print(f"  fleet hashrate  {result['hashrate_th'] / 1000:8.2f} PH/s as pyasic reports it")
    print(
        f"  simulator RSS   {rss_ready:6.1f} MiB ready, {rss_now:6.1f} MiB after sweep, "
        f"{rss_peak:6.1f} MiB peak"
    )
    busy = sim_cpu_s / (result["discovery_s"] + result["sweep_s"])
    print(f"  simulator CPU   {sim_cpu_s:6.2f} s during discovery + sweep ({busy:.0%} of one core)")
    print(f"  exit on SIGTERM {code}")
    ok = result["found"] == args.count and result["data_ok"] == args.count and code == 0
    return 0 if ok and start_s < 30 else 1


if __name__ == "__main__":
    sys.exit(main())
