"""A local aiohttp server that plays scripted responses (recorded bodies) per route."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture(name: str) -> bytes:
    """A recorded response body from tests/fixtures."""
    return (FIXTURES / name).read_bytes()


@dataclass(frozen=True)
class Reply:
    """One scripted response."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Hit:
    """One request the server saw."""

    at: float  # time.monotonic()
    headers: dict[str, str]
    query: dict[str, str]
    form: dict[str, str]


class Script:
    """Routes to reply queues; the last reply of a queue repeats."""

    def __init__(self) -> None:
        self.replies: dict[tuple[str, str], list[Reply]] = {}
        self.hits: dict[str, list[Hit]] = {}
        self.base_url = ""

    def on(self, method: str, path: str, *replies: Reply) -> None:
        """Answer ``method path`` with ``replies`` in turn, then the last one forever."""
        self.replies[(method, path)] = list(replies)

    def count(self, path: str) -> int:
        """How many requests ``path`` received."""
        return len(self.hits.get(path, []))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = (request.method, request.path)
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.hits.setdefault(request.path, []).append(
            Hit(time.monotonic(), dict(request.headers), dict(request.query), form)
        )
        queue = self.replies.get(key)
        if not queue:
            return web.Response(status=404, text="no script")
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return web.Response(
            status=reply.status,
            body=reply.body,
            headers=reply.headers,
            content_type="application/json",
        )


@asynccontextmanager
async def scripted_server() -> AsyncIterator[Script]:
    """Serve a fresh ``Script`` on a free loopback port."""
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    script.base_url = str(server.make_url("")).rstrip("/")
    try:
        yield script
    finally:
        await server.close()
