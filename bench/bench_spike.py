"""How fast a price spike stops a 1,000-miner fleet, with and without a resume in flight.

``hashspark simulate`` runs the fleet in its own process, in real time: a third each
LuxOS, stock Antminer and Braiins OS+ S19j Pros, with a 3 s stop and a 90 s resume ramp. In
this process the daemon's own site loop (``assemble``) drives them through the pyasic driver.
Prices come through the in-process feed adapter, the live parser and store, so a reading
wakes the loop exactly as an MQTT message does.

Each trial publishes a spike far above every breakeven. It then reads, from the
simulator's own command log and meter (never from the daemon):

- spike-to-first-curtail-command: when the first miner was told to sleep;
- p50 and p99 over miners of spike-to-curtail-command;
- spike-to-all-asleep: when the meter shows every miner asleep and wound down;
- wake commands after the spike: must be 0.

"steady" trials start with everything mining. "resume in flight" trials start from all
asleep, publish a low price, and spike once a few chunks of resumes have gone out. Needs
root (stock Antminers listen on port 80).

    .venv/bin/python bench/bench_spike.py [--miners 1000] [--trials 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from adapters.feeds.inprocess import InProcessFeed
from adapters.feeds.payloads import DEFAULT_HASHPRICE_BOUND, DEFAULT_PRICE_BOUND, ReadingKind
from adapters.feeds.store import FeedStats
from adapters.ledger.memory import MemoryLedger
from adapters.miners.config import PyasicDriverConfig
from adapters.miners.driver import PyasicDriver
from controller.accounting.instruments import SpotSupply
from controller.app.assemble import assemble
from controller.decision.policy import PolicyParams
from controller.domain import FailSafeAction, build_fleet
from controller.runtime import logs
from controller.runtime.clocks.system import SystemClock
from controller.site_model import SiteModel
from simulators import procs

FAMILIES = [("luxos", "127.42.0.1"), ("antminer", "127.43.0.1"), ("braiins", "127.44.0.1")]
S19 = ("Antminer S19j Pro", [(104.0, 3068.0)])
LOW, SPIKE, HASHPRICE = 20.0, 500.0, 50.0
ASLEEP_W = 150.0  # the simulator's S19j Pro sleeps at 22 W; its boards are wound down below this


def _ips(first: str, n: int) -> list[str]:
    a, b, c, d = (int(x) for x in first.split("."))
    base = (a << 24) | (b << 16) | (c << 8) | d
    return [".".join(str((base + i) >> s & 255) for s in (24, 16, 8, 0)) for i in range(n)]


def _fleet_file(n: int, port: int) -> tuple[Path, list[str]]:
    sizes = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
    lines = [f"meter_port = {port}", "speed = 1.0"]
    ips: list[str] = []
    for (family, first), k in zip(FAMILIES, sizes, strict=True):
        lines += ["[[group]]", f'family = "{family}"', 'model = "S19jPro"', f"count = {k}"]
        lines.append(f'ip_start = "{first}"')
        ips += _ips(first, k)
    path = Path(tempfile.mkdtemp()) / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, ips


def _meter(port: int, *, log: bool = False) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/meter{'?log=1' if log else ''}"
    with urllib.request.urlopen(url, timeout=60) as resp:
        data: dict[str, Any] = json.load(resp)
    return data


def _payload(kind: ReadingKind, value: float) -> bytes:
    key = "usd_per_mwh" if kind is ReadingKind.PRICE else "usd_per_ph_day"
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    return json.dumps({key: value, "ts": ts}).encode()


class Bench:
    """The loop, its feeds and the simulator's meter."""

    def __init__(self, port: int, ips: list[str]) -> None:
        self.port = port
        self.ips = ips
        stats = FeedStats()
        self.price = InProcessFeed("price", ReadingKind.PRICE, DEFAULT_PRICE_BOUND, stats)
        self.hashprice = InProcessFeed(
            "hashprice", ReadingKind.HASHPRICE, DEFAULT_HASHPRICE_BOUND, stats
        )
        clock = SystemClock()
        fleet = build_fleet([(S19[0], len(ips), S19[1])])
        config = PyasicDriverConfig(
            type="pyasic",
            concurrency=256,
            call_timeout_s=10.0,
            discovery_timeout_s=20.0,
            confirm_timeout_s=20.0,
            confirm_poll_s=0.5,
            resume_batch_size=100,
        )
        self.driver = PyasicDriver(fleet, ips, config, clock, seed=0)
        params = PolicyParams(supply=SpotSupply(), failsafe_action=FailSafeAction.HOLD)
        self.loop = assemble(
            SiteModel("bench", fleet, params, SpotSupply(), ()),
            clock=clock,
            price_feed=self.price.feed,
            hashprice_feed=self.hashprice.feed,
            driver=self.driver,
            ledger=MemoryLedger(),
            cycle_s=10.0,
        )

    def publish(self, price: float) -> float:
        """A price (and the hashprice) now; the wall time it was handed over."""
        self.hashprice.deliver(_payload(ReadingKind.HASHPRICE, HASHPRICE), time.time())
        sent = time.time()
        self.price.deliver(_payload(ReadingKind.PRICE, price), sent)
        return sent

    def offset(self) -> float:
        """Simulated minus wall time."""
        before = time.time()
        observed = float(_meter(self.port)["observed_at"])
        return observed - (before + time.time()) / 2

    async def until(self, what: str, check: Any, limit_s: float = 180.0) -> None:
        deadline = time.monotonic() + limit_s
        while not await asyncio.to_thread(check):
            if time.monotonic() > deadline:
                raise SystemExit(f"bench_spike: timed out waiting for {what}")
            await asyncio.sleep(0.2)

    def asleep(self) -> bool:
        miners = _meter(self.port)["miners"]
        return all(m["mode"] == "sleep" and m["power_w"] < ASLEEP_W for m in miners)

    def running(self) -> bool:
        miners = _meter(self.port)["miners"]
        return all(m["mode"] == "normal" for m in miners)

    def wakes(self, since: float) -> int:
        """Miners told to wake after ``since`` (simulated time)."""
        miners = _meter(self.port, log=True)["miners"]
        return sum(any(k == "wake" and t > since for t, k in m["command_log"]) for m in miners)

    async def trial(self, *, resume_in_flight: bool) -> dict[str, float]:
        if resume_in_flight:
            self.publish(SPIKE)
            await self.until("all asleep", self.asleep)
            since = self.publish(LOW) + await asyncio.to_thread(self.offset)
            await self.until("a resume in flight", lambda: self.wakes(since) >= len(self.ips) // 4)
        else:
            self.publish(LOW)
            await self.until("all mining", self.running)
            await asyncio.sleep(3.0)  # steady: the loop has settled
        offset = await asyncio.to_thread(self.offset)
        sent = self.publish(SPIKE)
        spike = sent + offset
        await self.until("all asleep after the spike", self.asleep, limit_s=120.0)
        all_asleep = time.time() - sent  # an upper bound: the meter is polled every 0.2 s
        miners = (await asyncio.to_thread(_meter, self.port, log=True))["miners"]
        curtails = [
            min((t for t, k in m["command_log"] if k == "sleep" and t >= spike), default=None)
            for m in miners
        ]
        delays = np.array([t - spike for t in curtails if t is not None])
        late_wakes = sum(
            1 for m in miners for t, k in m["command_log"] if k == "wake" and t > spike + 0.05
        )
        return {
            "first_s": float(delays.min()),
            "p50_s": float(np.percentile(delays, 50)),
            "p99_s": float(np.percentile(delays, 99)),
            "all_asleep_s": all_asleep,
            "commanded": float(delays.size),
            "late_wakes": float(late_wakes),
        }


async def _run(args: argparse.Namespace, port: int, ips: list[str]) -> None:
    bench = Bench(port, ips)
    found = await bench.driver.discover()
    if found < len(ips):
        found = await bench.driver.discover()
    print(f"fleet: {len(ips)} miners (LuxOS, stock Antminer, Braiins OS+), {found} found")
    task = asyncio.create_task(bench.loop.run(), name="site")
    try:
        rows: dict[str, list[dict[str, float]]] = {"steady": [], "resume in flight": []}
        for k in range(args.trials):
            for name, flying in (("steady", False), ("resume in flight", True)):
                result = await bench.trial(resume_in_flight=flying)
                rows[name].append(result)
                print(
                    f"  trial {k + 1} {name:17s} first {result['first_s']:.2f} s, "
                    f"p50 {result['p50_s']:.2f} s, p99 {result['p99_s']:.2f} s, "
                    f"all asleep {result['all_asleep_s']:.2f} s, "
                    f"late wakes {result['late_wakes']:.0f}",
                    flush=True,
                )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    print()
    print(f"spike reaction, {len(ips)} simulated miners, median of {args.trials} trials:")
    print("  case               first curtail   p50 curtail   p99 curtail   all asleep")
    for name, results in rows.items():
        med = {key: float(np.median([r[key] for r in results])) for key in results[0]}
        print(
            f"  {name:17s}  {med['first_s']:10.2f} s  {med['p50_s']:9.2f} s"
            f"  {med['p99_s']:9.2f} s  {med['all_asleep_s']:9.2f} s"
        )
    late = sum(r["late_wakes"] for results in rows.values() for r in results)
    print(f"  wake commands after a spike, all trials: {late:.0f}")
    print(
        "  all asleep: the meter shows every miner in sleep mode and under 150 W, polled every"
        " 0.2 s;\n  boards wind down over up to 3 s, less for a miner that had only begun its"
        " ramp"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--miners", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    logs.configure("warning")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65536), hard), hard))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    fleet, ips = _fleet_file(args.miners, port)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from controller.app.cli import main; sys.exit(main())",
         "simulate", "--fleet", str(fleet)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        if not ready.startswith("ready"):
            raise SystemExit(f"bench_spike: the simulator did not start: {ready!r}")
        asyncio.run(_run(args, port, ips))
    finally:
        procs.stop(proc, grace_s=15)


if __name__ == "__main__":
    main()
