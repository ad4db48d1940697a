"""Property tests at the HTTP layer of the pollers: any status, Retry-After and body.

The body parsers are fuzzed in test_fuzz_parsers.py; here a real aiohttp server on
loopback answers each example with an arbitrary status, ``Retry-After`` header and body,
and ``fetch_bytes`` must classify it: the body of a 2xx within the size limit, else a
``TransientFeedError`` (408, 429, 5xx: retried) or a ``PermanentFeedError`` (other 3xx and
4xx: polling stops), never another exception.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.feeds.health import PermanentFeedError, TransientFeedError
from adapters.feeds.http import MAX_RETRY_AFTER_S, fetch_bytes, parse_retry_after

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))


@dataclass
class Answer:
    """What the server says next."""

    status: int = 200
    retry_after: str | None = None
    body: bytes = b""


class Server:
    """An aiohttp server on its own thread and loop, answering with ``self.answer``."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _handle(self, _: web.Request) -> web.Response:
        a = self.answer
        headers = {} if a.retry_after is None else {"Retry-After": a.retry_after}
        return web.Response(status=a.status, body=a.body, headers=headers)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/report"
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10)

    def stop(self) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    s.start()
    yield s
    s.stop()


# Header values a server can send: printable text without CR/LF (aiohttp refuses those).
_header_text = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=40
) | st.sampled_from(["0", "5", "120", "86400000", "Wed, 21 Oct 2015 07:28:00 GMT", "²", " 7 "])
answers = st.builds(
    Answer,
    status=st.sampled_from(
        [200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 408, 418, 429, 500, 502, 503, 504]
    )
    | st.integers(200, 599),
    retry_after=st.none() | _header_text,
    body=st.binary(max_size=200),
)


async def _fetch(url: str) -> bytes:
    async with aiohttp.ClientSession() as session:
        return await fetch_bytes(session, "GET", url, timeout_s=5.0)


def _classified(server: Server, answer: Answer) -> None:
    server.answer = answer
    outcome: bytes | TransientFeedError | PermanentFeedError
    try:
        outcome = asyncio.run(_fetch(server.url))
    except (TransientFeedError, PermanentFeedError) as exc:
        outcome = exc
    if isinstance(outcome, TransientFeedError):
        assert answer.status in (408, 429) or answer.status >= 500
        wait = outcome.retry_after_s
        assert wait is None or 0.0 <= wait <= MAX_RETRY_AFTER_S
    elif isinstance(outcome, PermanentFeedError):
        assert 300 <= answer.status < 500
        assert answer.status not in (408, 429)
    else:
        assert 200 <= answer.status < 300
        assert outcome == (b"" if answer.status in (204, 304) else answer.body)  # no body by rule


def _retry_after_is_bounded(value: str) -> None:
    now = datetime(2026, 11, 22, tzinfo=UTC)
    wait = parse_retry_after(value, now)
    assert wait is None or 0.0 <= wait <= MAX_RETRY_AFTER_S


@FAST
@given(answer=answers)
def test_every_http_answer_is_classified(server: Server, answer: Answer) -> None:
    _classified(server, answer)


@pytest.mark.slow
@SLOW
@given(answer=answers)
def test_every_http_answer_is_classified_10k(server: Server, answer: Answer) -> None:
    _classified(server, answer)


@FAST
@given(value=st.text(max_size=60) | _header_text)
def test_retry_after_is_none_or_bounded(value: str) -> None:
    _retry_after_is_bounded(value)


@pytest.mark.slow
@SLOW
@given(value=st.text(max_size=60) | _header_text)
def test_retry_after_is_none_or_bounded_10k(value: str) -> None:
    _retry_after_is_bounded(value)


def test_a_superscript_digit_in_retry_after_is_no_crash() -> None:
    # Found by the fuzzing above: "²".isdigit() is True, float("²") raises ValueError.
    assert parse_retry_after("²") is None
