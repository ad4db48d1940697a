"""Chaos kit: ``hashspark simulate`` as a process, its meter and fault API, daemon metrics.

The simulated fleet runs in its own process (as on a real site the miners are not the
daemon's), so the test reads the ground truth (power, mode, commands received) from the
meter over HTTP, the way a site's revenue meter is read.
"""

from __future__ import annotations

import json
import re
import select
import signal
import subprocess
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators.procs import stop
from tests.daemon_kit import EXE, free_port, get, healthz, wait_for

SPEED = 30.0  #: simulated seconds per wall second: a 3 s stop takes 0.1 s, a 90 s ramp 3 s

#: (pyasic model name, curve points) per simulator model: 60 % and nameplate, as the LuxOS
#: profile ladder and the simulator's physics have them.
CURVES = {
    "S19jPro": ("Antminer S19j Pro", [(80.6, 1841.0), (104.0, 3068.0)]),
    "S21": ("Antminer S21", [(155.0, 2100.0), (200.0, 3500.0)]),
}
NAMEPLATE_W = {"S19jPro": 3068.0, "S21": 3500.0}


@dataclass(frozen=True)
class Group:
    """Miners of one family and model on consecutive loopback addresses."""

    family: str
    model: str
    ips: tuple[str, ...]


@dataclass
class SimFleet:
    """A running ``hashspark simulate`` process and its meter."""

    proc: subprocess.Popen[bytes]
    meter_port: int
    groups: tuple[Group, ...]

    @property
    def url(self) -> str:
        """The meter's base URL."""
        return f"http://127.0.0.1:{self.meter_port}"

    def miners(self, *, log: bool = False) -> dict[str, dict[str, Any]]:
        """The meter's ground truth per address (with each miner's command log)."""
        doc = json.loads(get(f"{self.url}/meter{'?log=1' if log else ''}", timeout=10))
        return {m["ip"]: m for m in doc["miners"]}

    def observed_at(self) -> float:
        """The simulator's clock now (simulated epoch s)."""
        return float(json.loads(get(f"{self.url}/meter", timeout=10))["observed_at"])

    def fault(self, ips: Sequence[str], fault: dict[str, Any]) -> None:
        """Inject a fault through the meter's API."""
        body = json.dumps({"miners": list(ips), "fault": fault}).encode()
        self._send("POST", body)

    def clear_faults(self) -> None:
        """Clear every lasting fault."""
        self._send("DELETE", None)

    def _send(self, method: str, body: bytes | None) -> None:
        request = urllib.request.Request(f"{self.url}/faults", data=body, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.read()


def fleet_file(tmp: Path, groups: Sequence[Group], meter_port: int, speed: float = SPEED) -> Path:
    """The fleet file of ``groups``, on ``meter_port`` at ``speed``."""
    lines = [f"meter_port = {meter_port}", f"speed = {speed}", "seed = 0", ""]
    for g in groups:
        lines += [
            "[[group]]",
            f'family = "{g.family}"',
            f'model = "{g.model}"',
            f"count = {len(g.ips)}",
            f'ip_start = "{g.ips[0]}"',
            "",
        ]
    path = tmp / "fleet.toml"
    path.write_text("\n".join(lines))
    return path


@contextmanager
def sim_fleet(tmp: Path, groups: Sequence[Group], speed: float = SPEED) -> Iterator[SimFleet]:
    """Start ``hashspark simulate``; wait for its ready line; SIGTERM it at the end."""
    port = free_port()
    proc = subprocess.Popen(
        [EXE, "simulate", "--fleet", str(fleet_file(tmp, groups, port, speed))],
        stdout=subprocess.PIPE,
        stderr=(tmp / "simulate.log").open("ab"),
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline().decode() if ready else ""
        assert line.startswith("ready "), (line, (tmp / "simulate.log").read_text())
        yield SimFleet(proc, port, tuple(groups))
    finally:
        stop(proc, grace_s=15)


@contextmanager
def daemon(config: Path, state: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``hashspark run`` on the system clock; SIGTERM at the end must exit 0.

    A daemon that does not stop within 30 s is killed (no orphan outlives the test) and
    the test fails with its log's tail.
    """
    proc = subprocess.Popen(
        [EXE, "run", str(config), "--state-dir", str(state), "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    try:
        wait_for(lambda: healthz(port), timeout=60, what="the daemon's /healthz")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                tail = log.read_text()[-3000:]
                raise AssertionError(f"SIGTERM did not stop the daemon: {tail}") from None
            assert code == 0, log.read_text()[-3000:]


def daemon_config(
    tmp: Path,
    broker_port: int,
    groups: Sequence[Group],
    *,
    site: str,
    cycle_s: float,
    failsafe: str,
    driver: dict[str, float | int],
    pacing: dict[str, float] | None = None,
    driver_type: str = "pyasic",
) -> Path:
    """A one-site daemon config: live MQTT feeds, the pyasic (or asic-rs) driver over
    ``groups``; the default actuation pacing unless ``pacing`` sets keys of ``[sites.pacing]``."""
    broker = (
        f'{{ host = "127.0.0.1", port = {broker_port}, client_id = "hashspark-{site}", '
        "keepalive_s = 5, connect_timeout_s = 2, backoff = { base_s = 0.2, cap_s = 1 } }"
    )
    text = f"""
[daemon]
cycle_s = {cycle_s}

[[sites]]
id = "{site}"
pool_fee = 0.02
price_feed = {{ type = "mqtt", broker = {broker} }}
hashprice_feed = {{ type = "mqtt", broker = {broker} }}

[sites.driver]
type = "{driver_type}"
""" + "".join(f"{k} = {v}\n" for k, v in driver.items())
    for g in groups:
        name, points = CURVES[g.model]
        curve = ", ".join(f"{{ hashrate_th = {h}, power_w = {w} }}" for h, w in points)
        text += f"""
[[sites.miners]]
model = "{name}"
addresses = ["{g.ips[0]}-{g.ips[-1]}"]
curve = [{curve}]
"""
    text += f"""
[sites.supply]
type = "spot"

[sites.failsafe]
price_max_age_s = 600
action = "{failsafe}"
"""
    if pacing:
        text += "\n[sites.pacing]\n" + "".join(f"{k} = {v}\n" for k, v in pacing.items())
    path = tmp / f"{site}.toml"
    path.write_text(text)
    return path


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(port: int, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric ``name`` whose labels include ``labels``."""
    out = []
    for line in get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        m = _SAMPLE.match(line)
        if m is None or m.group(1) != name:
            continue
        have = dict(_LABEL.findall(m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            out.append((have, float(m.group(3))))
    return out


def total(port: int, name: str, **labels: str) -> float:
    """The sum of the matching samples (0 when there are none)."""
    return sum(v for _, v in samples(port, name, **labels))
