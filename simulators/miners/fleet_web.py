"""One aiohttp application serving a port-80 web UI for every miner of a family in a fleet.

Each miner listens on its own address (``site(ip, port)``); the handler tells miners apart
by the address a request came in on. The stock Antminer CGI UI and the Braiins OS+ web API
both build on it.
"""

from __future__ import annotations

from aiohttp import web

WEB_MAX_BODY_BYTES = 64 * 1024


class FleetWebServer:
    """A shared ``AppRunner`` routing every path to ``_handle``; subclasses answer."""

    def __init__(self) -> None:
        app = web.Application(client_max_size=WEB_MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        self._ready = False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def setup(self) -> None:
        """Prepare the shared runner (once)."""
        if not self._ready:
            await self._runner.setup()
            self._ready = True

    async def cleanup(self) -> None:
        """Close the shared runner."""
        if self._ready:
            await self._runner.cleanup()
            self._ready = False

    def site(self, ip: str, port: int) -> web.TCPSite:
        """A listening site for one miner's address."""
        return web.TCPSite(self._runner, ip, port, reuse_address=True)
