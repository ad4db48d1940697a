"""The site meter: ground truth of what the simulated fleet really draws and hashes.

Served on 127.0.0.1: ``GET /meter`` (JSON), ``GET /metrics`` (Prometheus text), and the
fault API ``GET|POST|DELETE /faults``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from simulators.miners.faults import parse_fault

if TYPE_CHECKING:
    from simulators.miners.fleet import Fleet

DEFAULT_METER_PORT = 9109
METER_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Metric:
    """One exposed metric: declared once, read from the latest snapshot."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    field: str  # key in each miner's snapshot, or in the site totals
    per_miner: bool


METRICS: tuple[Metric, ...] = (
    Metric("hashspark_sim_site_power_watts", "gauge", "Total site power.", "total_power_w", False),
    Metric(
        "hashspark_sim_site_hashrate_terahashes",
        "gauge",
        "Total true hashrate.",
        "total_hashrate_th",
        False,
    ),
    Metric("hashspark_sim_miner_power_watts", "gauge", "Miner power.", "power_w", True),
    Metric(
        "hashspark_sim_miner_hashrate_terahashes",
        "gauge",
        "Miner true hashrate (no reporting noise).",
        "hashrate_th",
        True,
    ),
    Metric(
        "hashspark_sim_miner_power_target_watts",
        "gauge",
        "Miner power target.",
        "power_target_w",
        True,
    ),
    Metric(
        "hashspark_sim_site_commands_total",
        "counter",
        "State-changing commands the fleet received (any outcome).",
        "total_commands",
        False,
    ),
    Metric(
        "hashspark_sim_miner_commands_total",
        "counter",
        "State-changing commands the miner received (any outcome).",
        "commands",
        True,
    ),
    Metric(
        "hashspark_sim_miner_sleeping",
        "gauge",
        "1 when the miner is in sleep mode.",
        "sleeping",
        True,
    ),
)


def snapshot(fleet: Fleet, *, log: bool = False) -> dict[str, Any]:
    """The meter reading: site totals and, per miner, mode, power, hashrate, power target
    (and with ``log``, each miner's recent commands as ``[time, kind]``)."""
    now = fleet.clock.now()
    miners: list[dict[str, Any]] = []
    for miner in fleet.miners:
        reading = miner.state.read(now)
        miners.append(
            {
                "ip": miner.ip,
                "family": miner.family.value,
                "model": miner.model.name,
                "mode": reading.mode.value,
                "sleeping": int(reading.mode.value == "sleep"),
                "power_w": round(reading.power_w, 1),
                "hashrate_th": round(reading.hashrate_th, 3),
                "power_target_w": round(float(reading.power_target_w), 1),
                "booting": reading.booting,
                "commands": miner.commands,
                "listening": fleet.hosts[miner.ip].listening,
                "faults": [f.to_json() for f in miner.faults.values()],
                **({"command_log": [list(c) for c in miner.command_log]} if log else {}),
            }
        )
    return {
        "observed_at": now,
        "total_power_w": round(sum(m["power_w"] for m in miners), 1),
        "total_hashrate_th": round(sum(m["hashrate_th"] for m in miners), 3),
        "total_commands": sum(m["commands"] for m in miners),
        "miners": miners,
    }


def prometheus_text(snap: dict[str, Any]) -> str:
    """The snapshot in the Prometheus text exposition format."""
    lines: list[str] = []
    for metric in METRICS:
        lines.append(f"# HELP {metric.name} {metric.help}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        if not metric.per_miner:
            lines.append(f"{metric.name} {snap[metric.field]}")
            continue
        for m in snap["miners"]:
            labels = f'ip="{m["ip"]}",family="{m["family"]}",model="{m["model"]}"'
            lines.append(f"{metric.name}{{{labels}}} {m[metric.field]}")
    return "\n".join(lines) + "\n"


def _bad(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


def meter_app(fleet: Fleet) -> web.Application:
    """The meter's HTTP application over a fleet."""

    async def get_meter(request: web.Request) -> web.Response:
        return web.json_response(snapshot(fleet, log=request.query.get("log") == "1"))

    async def get_metrics(_request: web.Request) -> web.Response:
        return web.Response(text=prometheus_text(snapshot(fleet)), content_type="text/plain")

    async def get_faults(_request: web.Request) -> web.Response:
        faults = {m.ip: [f.to_json() for f in m.faults.values()] for m in fleet.miners}
        return web.json_response({ip: f for ip, f in faults.items() if f})

    async def _targets(request: web.Request) -> tuple[dict[str, Any], list[str]]:
        try:
            body = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            raise ValueError("body is not JSON") from None
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        unknown = set(body) - {"miners", "fraction", "seed", "fault"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        ips = body.get("miners", [])
        if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
            raise ValueError("miners must be a list of addresses")
        fraction = float(body.get("fraction", 0.0))
        return body, fleet.select(ips, fraction, int(body.get("seed", 0)))

    async def post_faults(request: web.Request) -> web.Response:
        try:
            body, ips = await _targets(request)
            raw = body.get("fault")
            if not isinstance(raw, dict):
                raise ValueError('"fault" must be an object like {"kind": "slow"}')
            fault = parse_fault(raw)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        await fleet.apply_fault(ips, fault)
        return web.json_response({"applied": fault.to_json(), "miners": ips})

    async def delete_faults(request: web.Request) -> web.Response:
        try:
            body, ips = await _targets(request)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        if not body.get("miners") and not body.get("fraction"):
            ips = [m.ip for m in fleet.miners]
        await fleet.clear_faults(ips)
        return web.json_response({"cleared": ips})

    app = web.Application()
    app.router.add_get("/meter", get_meter)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/faults", get_faults)
    app.router.add_post("/faults", post_faults)
    app.router.add_delete("/faults", delete_faults)
    return app


class Meter:
    """The meter server as an async context manager."""

    def __init__(self, fleet: Fleet, port: int = DEFAULT_METER_PORT) -> None:
        self._runner = web.AppRunner(meter_app(fleet), access_log=None)
        self._port = port
        self.port = port

    async def __aenter__(self) -> Meter:
        await self._runner.setup()
        site = web.TCPSite(self._runner, METER_HOST, self._port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        """Base URL of the meter."""
        return f"http://{METER_HOST}:{self.port}"
