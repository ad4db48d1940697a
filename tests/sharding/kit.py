"""Run a sharded site for real: simulated miners, workers and the planner as processes."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from simulators.procs import stop
from tests.daemon_kit import EXE, free_port, get

MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
SITE = "big"


def ips_from(first: str, n: int) -> list[str]:
    """``n`` consecutive addresses from ``first``."""
    start = ipaddress.IPv4Address(first)
    return [str(start + i) for i in range(n)]


class Lines:
    """A process's output lines, read by a thread, each with the wall time it arrived."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            with self._lock:
                self.lines.append((time.time(), line.rstrip("\n")))

    def snapshot(self) -> list[tuple[float, str]]:
        """Every line so far."""
        with self._lock:
            return list(self.lines)

    def mark(self) -> int:
        """A position: ``wait(after=mark())`` only looks at lines that come later."""
        with self._lock:
            return len(self.lines)

    def wait(
        self, match: Callable[[str], bool], timeout_s: float, what: str, *, after: int = 0
    ) -> tuple[float, str]:
        """The first line at or past ``after`` that ``match``es (fails after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        seen = after
        while True:
            lines = self.snapshot()
            for item in lines[seen:]:
                if match(item[1]):
                    return item
            seen = max(seen, len(lines))
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.005)


def wait_until(
    condition: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.25
) -> Any:
    """Poll ``condition`` until truthy; errors while polling count as not yet."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # the daemon may not listen yet
            last = exc
        else:
            if value:
                return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last error: {last})")


def config_text(
    broker_port: int,
    first_ip: str,
    miners: int,
    shards: int,
    keepalive_s: int,
    *,
    sharding_extra: str = "",
    failsafe_action: str = "hold",
    client_id: str | None = None,
    concurrency: int = 200,
) -> str:
    """A sharded pyasic site of LuxOS S19j Pros on MQTT price feeds."""
    named = "" if client_id is None else f', client_id = "{client_id}"'
    feed_broker = f'{{ host = "127.0.0.1", port = {broker_port}{named} }}'
    last = ips_from(first_ip, miners)[-1]
    return f"""
[daemon]
cycle_s = 1.0
log_level = "info"

[[sites]]
id = "{SITE}"
price_feed = {{ type = "mqtt", broker = {feed_broker} }}
hashprice_feed = {{ type = "mqtt", broker = {feed_broker} }}

[sites.driver]
type = "pyasic"
concurrency = {concurrency}
call_timeout_s = 10.0
discovery_timeout_s = 15.0
confirm_timeout_s = 30.0
confirm_poll_s = 0.5
resume_batch_size = 1000

[sites.sharding]
shards = {shards}
report_timeout_s = 120.0
startup_timeout_s = 180.0
broker = {{ host = "127.0.0.1", port = {broker_port}, keepalive_s = {keepalive_s} }}
{sharding_extra}

[[sites.miners]]
model = "Antminer S19j Pro"
firmware = "luxos"
addresses = ["{first_ip}-{last}"]

[sites.supply]
type = "spot"

[sites.failsafe]
price_max_age_s = 3600
action = "{failsafe_action}"

# Curtails and resumes within seconds on the wall clock: no raise interval here
# (pacing itself: tests/test_pacing.py, tests/test_pacing_loop.py).
[sites.pacing]
min_raise_interval_s = 0
"""


@dataclass
class ShardedSite:
    """The processes of one sharded site and what they said."""

    tmp: Path
    broker_port: int
    first_ip: str
    miners: int
    shards: int = 2
    keepalive_s: int = 5
    speed: float = 100.0
    meter_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    bus: Lines | None = None
    planners: int = 1  # more: standby planners ("planner", "planner1", ...)
    standby_workers: tuple[int, ...] = ()  # shards that get a second worker ("worker<n>b")
    sharding_extra: str = ""  # more [sites.sharding] keys
    failsafe_action: str = "hold"
    concurrency: int = 200  # each worker's pyasic calls in flight
    planner_metrics_ports: dict[str, int] = field(default_factory=dict)

    @property
    def ips(self) -> list[str]:
        """Every miner's address, in order."""
        return ips_from(self.first_ip, self.miners)

    @property
    def config(self) -> Path:
        """The site's config file."""
        return self.tmp / "site.toml"

    def shard_ips(self, shard: int) -> list[str]:
        """The addresses of one shard, computed here independently: equal runs in order."""
        size, extra = divmod(self.miners, self.shards)
        start = shard * size + min(shard, extra)
        return self.ips[start : start + size + (1 if shard < extra else 0)]

    def start(self) -> None:
        """Simulator, a subscriber on the site's topics, workers, then the planner."""
        self.config.write_text(self._config_text())
        fleet = self.tmp / "fleet.toml"
        fleet.write_text(
            f"meter_port = {self.meter_port}\nspeed = {self.speed}\n\n[[group]]\n"
            f'family = "luxos"\nmodel = "S19jPro"\ncount = {self.miners}\n'
            f'ip_start = "{self.first_ip}"\n'
        )
        sim = self._spawn("simulator", [EXE, "simulate", "--fleet", str(fleet)], stdout=True)
        assert sim.stdout is not None
        ready = sim.stdout.readline()
        assert ready.startswith(f"ready {self.miners} miners"), ready
        sub = self._spawn(
            "subscriber",
            [MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(self.broker_port), "-q", "1", "-v",
             "-t", f"hashspark/{SITE}/shards", "-t", f"hashspark/{SITE}/shard/+/plan",
             "-t", f"hashspark/{SITE}/shard/+/report", "-t", f"hashspark/{SITE}/status",
             "-t", f"hashspark/{SITE}/planner/lease", "-t", f"hashspark/{SITE}/shard/+/lease"],
            stdout=True,
        )  # fmt: skip
        assert sub.stdout is not None
        self.bus = Lines(sub.stdout)
        for n in range(self.shards):
            self._spawn(f"worker{n}", [EXE, "worker", str(self.config), "--shard", str(n)])
        for n in self.standby_workers:
            self._spawn(f"worker{n}b", [EXE, "worker", str(self.config), "--shard", str(n)])
        for k in range(self.planners):
            name = "planner" if k == 0 else f"planner{k}"
            port = self.metrics_port if k == 0 else free_port()
            self.planner_metrics_ports[name] = port
            config = self.config
            if k > 0:  # another host's copy: its own client id for the site's MQTT link
                config = self.tmp / f"site-{name}.toml"
                config.write_text(self._config_text(client_id=f"hashspark-{SITE}-{name}"))
            self._spawn(
                name,
                [EXE, "run", str(config), "--state-dir", str(self.tmp / f"state-{name}"),
                 "--metrics-port", str(port)],
            )  # fmt: skip

    def _config_text(self, client_id: str | None = None) -> str:
        return config_text(
            self.broker_port,
            self.first_ip,
            self.miners,
            self.shards,
            self.keepalive_s,
            sharding_extra=self.sharding_extra,
            failsafe_action=self.failsafe_action,
            client_id=client_id,
            concurrency=self.concurrency,
        )

    def _spawn(self, name: str, cmd: list[str], *, stdout: bool = False) -> subprocess.Popen[str]:
        log = (self.tmp / f"{name}.log").open("w")
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> list[dict[str, Any]]:
        """A process's JSON log lines."""
        out = []
        for line in (self.tmp / f"{name}.log").read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def stop(self) -> None:
        """SIGTERM everyone still running (the planner first), SIGKILL stragglers."""
        if self.bus is not None:  # kept for a failed test's post-mortem
            (self.tmp / "bus.log").write_text(
                "".join(f"{t:.3f} {line[:300]}\n" for t, line in self.bus.snapshot())
            )
        planners = [n for n in self.procs if n.startswith("planner")]
        workers = [n for n in self.procs if n.startswith("worker")]
        for name in [*planners, *workers, "simulator"]:
            proc = self.procs.get(name)
            if proc is not None:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)  # a test may have left it stopped
                stop(proc, grace_s=30)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # --- what the site says ---------------------------------------------------------------

    def meter(self) -> dict[str, dict[str, Any]]:
        """The simulator's ground truth per address."""
        url = f"http://127.0.0.1:{self.meter_port}/meter"
        with urllib.request.urlopen(url, timeout=30) as resp:
            data = json.load(resp)
        return {m["ip"]: m for m in data["miners"]}

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the planner's /metrics."""
        text = get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).decode()
        for line in text.splitlines():
            wanted = all(f'{k}="{v}"' in line for k, v in labels.items())
            if line.startswith(f"{name}{{") and wanted:
                return float(line.rsplit(" ", 1)[1])
            if not labels and line.startswith(f"{name} "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def miners_in(self, state: str) -> float:
        """Miners the planner counts in ``state`` (all models)."""
        text = get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("hashspark_miners{") and f'state="{state}"' in line
        )

    def audit(self) -> list[dict[str, Any]]:
        """The planner's command audit."""
        path = self.tmp / "state-planner" / "audit" / f"{SITE}-commands.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def publish_price(self, broker: Any, usd_per_mwh: float) -> None:
        """A fresh price on the site's feed (and a hashprice, so the site can decide)."""
        ts = datetime.now(UTC).isoformat()
        hashprice = {"usd_per_ph_day": 50.0, "ts": ts}
        broker.publish(f"hashspark/{SITE}/hashprice", json.dumps(hashprice))
        price = {"usd_per_mwh": usd_per_mwh, "ts": ts}
        broker.publish(f"hashspark/{SITE}/price", json.dumps(price))

    def clear_faults(self) -> None:
        """Clear every miner's faults through the meter."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.meter_port}/faults", data=b"{}", method="DELETE"
        )
        with urllib.request.urlopen(request, timeout=30):
            pass

    def command_log(self) -> tuple[dict[str, list[tuple[float, str]]], float, float, float]:
        """Each miner's commands as (simulated time, kind), with the meter's simulated time,
        the wall time it was read at and how uncertain that is (half the request's round
        trip): to place wall times on the simulator's clock."""
        url = f"http://127.0.0.1:{self.meter_port}/meter?log=1"
        best: tuple[float, float, float] | None = None
        for _ in range(5):  # the read with the shortest round trip pins the clocks best
            before = time.time()
            with urllib.request.urlopen(url, timeout=30) as resp:
                data = json.load(resp)
            after = time.time()
            if best is None or after - before < 2 * best[2]:
                best = (float(data["observed_at"]), (before + after) / 2, (after - before) / 2)
                logs = {
                    m["ip"]: [(float(t), str(k)) for t, k in m["command_log"]]
                    for m in data["miners"]
                }
        assert best is not None
        return logs, *best

    def fault(self, ips: list[str], fault: dict[str, Any]) -> None:
        """Inject a fault through the meter."""
        body = json.dumps({"fault": fault, "miners": ips}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.meter_port}/faults", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30):
            pass


def topic_payload(line: str) -> tuple[str, dict[str, Any] | None]:
    """A ``mosquitto_sub -v`` line as topic and JSON payload."""
    topic, _, payload = line.partition(" ")
    try:
        return topic, json.loads(payload)
    except ValueError:
        return topic, None
