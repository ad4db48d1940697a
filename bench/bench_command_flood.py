"""A flood of invalid commands against the reaction to a price spike, over a real Mosquitto.

Starts a private Mosquitto and ``hashspark run`` (the real daemon, its own process) on live
MQTT prices with the in-process fleet (1,000 miners) as its driver. Each trial publishes a
low price, waits for the fleet to mine, then publishes a spike far above every breakeven and
reads, from the daemon's log (its ``decision`` line, stamped to the microsecond; the command
audit stamps whole seconds), when the decision on the spike was taken: the reaction is that
time minus the moment the spike was handed to the broker.

"flooded" trials first publish N invalid commands (by default 20,000: a third malformed
JSON, a third well-formed but out of bounds, a third clearing nothing) from another client,
as fast as it can, at QoS 1, then publish the spike from the price client at once.

It prints the reaction with and without the flood, the extra delay and the ratio, what the
daemon logged about the flood (warning lines, the summaries), the growth of its command
audit (``<state>/audit/<site>.jsonl``), and how many commands it refused or dropped.

    .venv/bin/python bench/bench_command_flood.py [--commands 20000] [--trials 3]
"""

from __future__ import annotations

import argparse
import getpass
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

EXE = str(Path(sys.executable).parent / "hashspark")
SITE = "flood"
LOW, SPIKE, HASHPRICE = 20.0, 500.0, 50.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: object, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_command_flood: timed out waiting for {what}")
        time.sleep(0.02)


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private Mosquitto (its default queue and in-flight limits) on a free port."""
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\n"
        "allow_anonymous true\npersistence false\n"
    )
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)

    def up() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    _wait("mosquitto", up, 10)
    return proc, port


def write_config(workdir: Path, broker_port: int, miners: int) -> Path:
    broker = f'{{ host = "127.0.0.1", port = {broker_port}, client_id = "hashspark-{SITE}" }}'
    path = workdir / "site.toml"
    path.write_text(f"""
[daemon]
cycle_s = 30

[[sites]]
id = "{SITE}"
pool_fee = 0.02
price_feed = {{ type = "mqtt", broker = {broker} }}
hashprice_feed = {{ type = "mqtt", broker = {broker} }}

[sites.driver]
type = "simulated"

[[sites.miners]]
model = "Antminer S19j Pro"
count = {miners}

[sites.supply]
type = "spot"

[sites.failsafe]
price_max_age_s = 600
action = "hold"
""")
    return path


class Client:
    """A paho client connected once, its network loop in a thread."""

    def __init__(self, port: int, name: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def invalid_commands(n: int) -> list[bytes]:
    """Malformed, out of bounds, and clearing nothing, in turn (each a distinct id)."""
    out: list[bytes] = []
    for i in range(n):
        match i % 3:
            case 0:
                out.append(b'{"command": "force_curtail", "id": "x' + str(i).encode() + b'", ')
            case 1:
                doc = {"command": "force_curtail", "id": f"f{i}", "until": "2001-01-01T00:00:00Z"}
                out.append(json.dumps(doc).encode())
            case _:
                out.append(
                    json.dumps({"command": "clear", "id": f"c{i}", "target": "nope"}).encode()
                )
    return out


class Bench:
    def __init__(self, workdir: Path, broker_port: int, metrics_port: int, log: Path) -> None:
        self.workdir = workdir
        self.log = log
        self.log_offset = 0
        self.state = workdir / "state"
        self.commands_audit = self.state / "audit" / f"{SITE}.jsonl"
        self.metrics_port = metrics_port
        self.prices = Client(broker_port, "bench-prices")
        self.attacker = Client(broker_port, "bench-attacker")

    def publish_price(self, price: float) -> float:
        ts = datetime.now(UTC).isoformat(timespec="milliseconds")
        hp = json.dumps({"usd_per_ph_day": HASHPRICE, "ts": ts}).encode()
        self.prices.send(f"hashspark/{SITE}/hashprice", hp).wait_for_publish(10)
        body = json.dumps({"usd_per_mwh": price, "ts": ts}).encode()
        info = self.prices.send(f"hashspark/{SITE}/price", body)
        sent = time.time()
        info.wait_for_publish(10)
        return sent

    def decisions(self, price: float, since: float) -> list[float]:
        """When the daemon logged a decision on ``price`` (its structlog timestamp), after
        ``since``: the command audit stamps whole seconds, the log microseconds."""
        times: list[float] = []
        with self.log.open(encoding="utf-8", errors="replace") as handle:
            handle.seek(self.log_offset)
            for line in handle:
                if '"decision"' not in line:
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line being written
                if row.get("event") != "decision" or row.get("price_usd_per_mwh") != price:
                    continue
                at = datetime.fromisoformat(row["timestamp"]).timestamp()
                if at >= since:
                    times.append(at)
        return times

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the daemon's samples of ``name`` with ``labels``."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.split("{")[0].split(" ")[0] == name and all(w in line for w in wanted)
        )

    def settle_low(self) -> None:
        self.publish_price(LOW)
        _wait(
            "the fleet mining",
            lambda: (
                0
                < self.metric("hashspark_miners", state="running")
                == self.metric("hashspark_miners")
            ),
            60,
        )
        time.sleep(1.0)  # the loop has settled

    def trial(self, flood: list[bytes] | None) -> float:
        self.settle_low()
        self.log_offset = self.log.stat().st_size
        if flood:
            topic = f"hashspark/{SITE}/command"
            infos = [self.attacker.send(topic, raw) for raw in flood]
            infos[-1].wait_for_publish(120)  # the broker has them all, in order
        sent = self.publish_price(SPIKE)
        _wait("the spike's decision", lambda: self.decisions(SPIKE, sent), 120)
        return min(self.decisions(SPIKE, sent)) - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=20000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--miners", type=int, default=1000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    broker, broker_port = start_broker(workdir)
    metrics_port = _free_port()
    config = write_config(workdir, broker_port, args.miners)
    log = workdir / "daemon.log"
    daemon = subprocess.Popen(
        [EXE, "run", str(config), "--state-dir", str(workdir / "state"),
         "--metrics-port", str(metrics_port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )  # fmt: skip
    try:
        bench = Bench(workdir, broker_port, metrics_port, log)
        _wait("the daemon's /metrics", lambda: bench.metric("hashspark_miners") > 0, 60)
        flood = invalid_commands(args.commands)
        quiet: list[float] = []
        flooded: list[float] = []
        for k in range(args.trials):
            quiet.append(bench.trial(None))
            log_before = log.stat().st_size
            audit_before = (
                bench.commands_audit.stat().st_size if bench.commands_audit.exists() else 0
            )
            flooded.append(bench.trial(flood))
            time.sleep(8.0)  # the daemon drains the flood and summarises the burst (5 s quiet)
            grew = (
                bench.commands_audit.stat().st_size if bench.commands_audit.exists() else 0
            ) - audit_before
            with log.open("rb") as handle:
                handle.seek(log_before)
                lines = handle.read().decode(errors="replace").splitlines()
            warnings = [ln for ln in lines if '"level": "warning"' in ln]
            summaries = [ln for ln in warnings if "commands_refused_summary" in ln]
            print(
                f"  trial {k + 1}: quiet {quiet[-1]:.3f} s, flooded {flooded[-1]:.3f} s, "
                f"daemon log +{len(lines)} lines ({len(warnings)} warnings, "
                f"{len(summaries)} of them summaries), command audit +{grew / 1024:.1f} KiB",
                flush=True,
            )
        rejected = bench.metric("hashspark_operator_commands_total", status="rejected")
        dropped = bench.metric("hashspark_operator_commands_total", status="ignored")
        q, f = statistics.median(quiet), statistics.median(flooded)
        print()
        print(
            f"spike reaction (spike handed to the broker -> first curtail decision), "
            f"{args.miners} in-process miners, median of {args.trials} trials:"
        )
        print(f"  without a flood                     {q:8.3f} s")
        print(f"  after {args.commands:,} invalid commands      {f:8.3f} s")
        print(f"  extra delay                         {f - q:8.3f} s   (acceptance: < 0.5 s)")
        print(f"  ratio flooded / quiet               {f / q if q > 0 else float('inf'):8.1f}")
        print(
            f"  commands sent {args.commands * args.trials:,}: rejected {rejected:,.0f}, "
            f"dropped unread (the daemon's queue full) {dropped:,.0f}, the rest dropped by the "
            "broker"
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        broker.terminate()
        broker.wait()


if __name__ == "__main__":
    main()
