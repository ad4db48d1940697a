"""The daemon's HTTP endpoint: ``/metrics`` for Prometheus and ``/healthz`` for probes."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

#: The health document and its HTTP status (503 while a site loop is stuck).
HealthProbe = Callable[[], tuple[dict[str, object], int]]


def bind_problem(exc: OSError, host: str, port: int) -> str:
    """Why the endpoint could not listen on ``host:port``, as one line naming the key."""
    if isinstance(exc, socket.gaierror):
        return f"daemon.metrics_host: cannot resolve {host!r} ({exc.strerror})"
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno == errno.EADDRINUSE:
        return f"daemon.metrics_port: {host}:{port} is already in use ({reason})"
    return f"daemon.metrics_host, metrics_port: cannot listen on {host}:{port} ({reason})"


async def serve(
    registry: CollectorRegistry, health: HealthProbe, host: str, port: int
) -> tuple[web.AppRunner, int]:
    """Start serving; the runner (``cleanup()`` it) and the bound port (``port`` 0: any)."""

    async def healthz(_: web.Request) -> web.Response:
        body, status = health()
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # aiohttp keeps the bound port only there
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    structlog.get_logger("hashspark.daemon").info("metrics_listening", host=host, port=bound)
    return runner, int(bound)
