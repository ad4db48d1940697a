"""Listening endpoints of one simulated miner, started and stopped together."""

from __future__ import annotations

import asyncio
import errno
from typing import Protocol

from simulators.miners.cgminer import ApiFamily, ApiProtocol
from simulators.miners.miner import SimMiner

API_PORT = 4028


class PortPermissionError(RuntimeError):
    """Binding a privileged port (80) failed because the process is not root."""


class Endpoint(Protocol):
    """One listening service of a miner (the 4028 API, the web UI, gRPC)."""

    async def start(self) -> None:
        """Listen on the miner's address."""
        ...

    async def stop(self) -> None:
        """Stop listening (new connections are refused)."""
        ...


class ApiEndpoint:
    """The cgminer-style API on TCP 4028."""

    def __init__(self, miner: SimMiner, family: ApiFamily, port: int = API_PORT) -> None:
        self._miner = miner
        self._family = family
        self._port = port
        self._server: asyncio.Server | None = None
        self._open: set[ApiProtocol] = set()

    def _protocol(self) -> ApiProtocol:
        protocol = ApiProtocol(self._miner, self._family, self._miner.clock.now)
        protocol.on_close = self._open.discard
        self._open.add(protocol)
        return protocol

    async def start(self) -> None:
        """Listen on ``miner.ip:4028``."""
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol,
            host=self._miner.ip,
            port=self._port,
            reuse_address=True,
            backlog=64,
        )

    async def stop(self) -> None:
        """Close the listening socket and drop open connections (a powered-off miner)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for protocol in list(self._open):
            protocol.abort()


def permission_hint(exc: OSError, port: int) -> OSError | PortPermissionError:
    """Turn EACCES on a privileged port into an error that says what to do."""
    if exc.errno == errno.EACCES and port < 1024:
        return PortPermissionError(
            f"binding port {port} needs root (or CAP_NET_BIND_SERVICE); "
            "run as root, or simulate families that need no privileged port: luxos, braiins"
        )
    return exc


class MinerHost:
    """All endpoints of one miner."""

    def __init__(self, miner: SimMiner, endpoints: list[Endpoint]) -> None:
        self.miner = miner
        self.endpoints = endpoints
        self.listening = False

    async def start(self) -> None:
        """Start every endpoint; on failure, stop the ones already started."""
        try:
            for endpoint in self.endpoints:
                await endpoint.start()
        except BaseException:
            await self.stop()
            raise
        self.listening = True

    async def stop(self) -> None:
        """Stop every endpoint."""
        for endpoint in self.endpoints:
            await endpoint.stop()
        self.listening = False
