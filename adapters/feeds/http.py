"""HTTP polling shared by the ERCOT, chain and index feeds (aiohttp).

Failure classes, each with one behaviour:

| response | class | behaviour |
|---|---|---|
| 2xx, body parses | success | reading offered to the store; next poll after ``interval_s`` |
| 2xx, body does not parse | transient | rejection counted; retry with backoff |
| 401, 403, other 4xx (not 408/429) | permanent | logged once, polling stops, value goes stale |
| 408, 5xx, timeout, connection error | transient | retry with capped full-jitter backoff |
| 429 | transient | retry after ``Retry-After`` (seconds or HTTP date), else backoff |

Errors name the status, the URL with its credentials masked and at most an error code from a
JSON body: never the body's text, which may echo the request's headers.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Protocol, Self

import aiohttp
import structlog

from adapters.feeds.config import BackoffConfig
from adapters.feeds.health import (
    FeedHealth,
    PermanentFeedError,
    TransientFeedError,
)
from adapters.feeds.http_errors import client_error_reason, error_code, status_text
from adapters.feeds.payloads import Candidate, ReadingKind, ValueBound, ingest
from adapters.feeds.store import LatestStore, Rejected, RejectReason, StoreFeed
from controller.domain import EpochS, Reading
from controller.runtime.ports import Clock
from controller.runtime.redact import redact_url
from controller.runtime.retry import Backoff

#: Bodies above this are refused unread (an ERCOT page of one settlement point is ~10 kB).
MAX_BODY_BYTES = 4 * 1024 * 1024
#: A Retry-After beyond this is taken as this (a misconfigured server must not park us a week).
MAX_RETRY_AFTER_S = 3600.0
USER_AGENT = "hashspark/0.1 (+https://github.com/hashspark)"

_log = structlog.get_logger("hashspark.feeds")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), capped."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # str.isdigit() is also true of "²", which float refuses
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER_S)


async def fetch_bytes(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
) -> bytes:
    """One request; the body of a 2xx, or a transient/permanent ``FeedError``.

    An error names the status, the URL redacted and a short reason of our own: never the
    response body or the text of the client's exception, either of which may echo the
    request's headers (``Authorization: Bearer ...``) or its query string.
    """
    shown = redact_url(url)
    try:
        async with session.request(
            method,
            url,
            headers=headers,
            params=params,
            data=data,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as resp:
            body = await resp.content.read(MAX_BODY_BYTES + 1)
            status = resp.status
            if status == 429:
                retry = parse_retry_after(resp.headers.get("Retry-After"))
                raise TransientFeedError(
                    f"HTTP 429 rate limited from {shown}", status=429, retry_after_s=retry
                )
            if status == 408 or status >= 500:
                raise TransientFeedError(f"HTTP {status_text(status)} from {shown}", status=status)
            if status >= 300:
                code = error_code(body)
                why = f"HTTP {status_text(status)}" + (f" ({code})" if code else "")
                raise PermanentFeedError(f"{why} from {shown}", status=status)
            if len(body) > MAX_BODY_BYTES:
                raise TransientFeedError(f"body from {shown} exceeds {MAX_BODY_BYTES} bytes")
            return body
    except TimeoutError:
        raise TransientFeedError(f"timeout after {timeout_s:g} s from {shown}") from None
    except aiohttp.ClientError as exc:
        raise TransientFeedError(f"{client_error_reason(exc)} from {shown}") from None


class PollerConfig(Protocol):
    """What every HTTP poller's config has: cadence, timeout, backoff, value bounds."""

    @property
    def interval_s(self) -> float: ...

    @property
    def timeout_s(self) -> float: ...

    @property
    def backoff(self) -> BackoffConfig: ...

    def bound(self, kind: ReadingKind) -> ValueBound:
        """The plausibility bounds for ``kind``."""
        ...


class PollingFeed(ABC):
    """A ``ReadingFeed`` fed by polling an HTTP API; an async context manager.

    Subclasses implement ``poll(session)``: fetch, parse, and return a candidate or a
    rejection (or raise a ``FeedError``). The base class runs the loop in a TaskGroup,
    classifies failures, keeps the health state and offers readings to the store.
    """

    def __init__(
        self,
        config: PollerConfig,
        kind: ReadingKind,
        store: LatestStore,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.store = store
        self.feed = StoreFeed(store)
        self.health = FeedHealth(store.feed)
        self._clock = clock
        self._interval_s = config.interval_s
        self._timeout_s = config.timeout_s
        self._backoff = backoff or Backoff(config.backoff.base_s, config.backoff.cap_s)
        self._bound = config.bound(kind)
        self._tasks: asyncio.TaskGroup | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.polls = 0

    # --- ReadingFeed -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The feed's name."""
        return self.feed.name

    def latest(self, now: EpochS) -> Reading | None:
        """The newest accepted reading."""
        return self.feed.latest(now)

    def next_change_after(self, now: EpochS) -> EpochS | None:
        """Unknown: polled readings arrive when the API publishes them."""
        return self.feed.next_change_after(now)

    @property
    def updated(self) -> asyncio.Event:
        """Set on every accepted reading (the site loop waits on it and clears it)."""
        return self.feed.updated

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._task = self._tasks.create_task(self._run(), name=f"poll:{self.name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tasks is not None
        assert self._session is not None
        self._stop.set()
        if self._task is not None:
            self._task.cancel()  # do not wait out a request in flight (up to timeout_s)
        try:
            await self._tasks.__aexit__(exc_type, exc, tb)
        finally:
            await self._session.close()

    @abstractmethod
    async def poll(self, session: aiohttp.ClientSession) -> Candidate | Rejected:
        """Fetch and parse once."""

    async def _run(self) -> None:
        assert self._session is not None
        while not self._stop.is_set():
            delay = await self._poll_once(self._session)
            if delay is None:
                return  # permanent failure: stay stale, the fail-safe takes over
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.0)):
                    await self._stop.wait()

    async def _poll_once(self, session: aiohttp.ClientSession) -> float | None:
        """One poll; the delay before the next, or None to stop."""
        self.polls += 1
        try:
            result = await self.poll(session)
        except PermanentFeedError as exc:
            self.health.fail(str(exc))
            return None
        except TransientFeedError as exc:
            self.health.down(str(exc))
            if exc.retry_after_s is not None:
                return exc.retry_after_s
            return self._backoff.next_delay_s()
        except Exception as exc:  # a parser bug on one response: retried, never the task's end
            _log.exception("feed_poll_failed", feed=self.name)
            self.store.reject(RejectReason.MALFORMED, f"{type(exc).__name__} while parsing")
            self.health.down(f"unusable response: {type(exc).__name__}")
            return self._backoff.next_delay_s()
        if isinstance(result, Rejected):
            ingest(self.store, result, self._clock.now())  # counted and logged by the store
            self.health.down(f"unusable response: {result.reason}: {result.detail}")
            return self._backoff.next_delay_s()
        current = self.store.current
        unchanged = current is not None and (result.observed_at, result.value) == (
            current.observed_at,
            current.value,
        )
        if not unchanged:  # re-reading the same record is no news, and no rejection either
            ingest(self.store, result, self._clock.now())
        self.health.up()  # the API answered; an old or duplicate record is the store's call
        self._backoff.reset()
        return self._interval_s

    async def wait_up(self, timeout_s: float) -> None:
        """Return once a poll succeeded; raise if the feed failed permanently or timed out."""
        await self.health.wait_up(timeout_s)
