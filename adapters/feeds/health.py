"""Connection health shared by live feeds: state, outage/recovery logging, backoff, errors.

An outage is logged once when it starts and a recovery once when it ends (with how long it
lasted), never a line per retry. Permanent failures (bad credentials, a URL that does not
exist) stop the retries: the feed keeps its last good value, turns stale, and the site's
fail-safe applies; ``wait_up`` lets the composition root fail fast at start-up instead.
"""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum

import structlog

_log = structlog.get_logger("hashspark.feeds")


class FeedError(Exception):
    """A fetch or connection that did not produce data (``status``: the HTTP status, if any)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientFeedError(FeedError):
    """Worth retrying: timeouts, refused connections, 5xx, rate limits, malformed bodies."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after_s = retry_after_s


class PermanentFeedError(FeedError):
    """Not worth retrying until the config changes: bad credentials, forbidden, not found."""


class FeedFailedError(Exception):
    """Raised by ``wait_up`` when the feed stopped on a permanent error."""


class FeedState(StrEnum):
    """Where a live feed's connection stands."""

    STARTING = "starting"  # no successful fetch or connection yet
    UP = "up"
    DOWN = "down"  # transient outage: retrying with backoff
    FAILED = "failed"  # permanent error: not retrying


class FeedHealth:
    """State of one feed's connection, with edge-triggered logs and a waitable 'up'."""

    def __init__(self, feed: str) -> None:
        self.feed = feed
        self.state = FeedState.STARTING
        self.last_error: str | None = None
        self.failure: str | None = None
        self.outages = 0
        self._down_since: float | None = None
        self._changed = asyncio.Event()

    def up(self) -> None:
        """A fetch or connection succeeded."""
        if self.state is FeedState.DOWN and self._down_since is not None:
            _log.info(
                "feed_recovered",
                feed=self.feed,
                outage_s=round(time.monotonic() - self._down_since, 3),
                last_error=self.last_error,
            )
        elif self.state is FeedState.STARTING:
            _log.info("feed_up", feed=self.feed)
        self._down_since = None
        self._set(FeedState.UP)

    def down(self, error: str) -> None:
        """A transient failure: logged only when the outage starts."""
        self.last_error = error
        if self.state is not FeedState.DOWN:
            self.outages += 1
            self._down_since = time.monotonic()
            _log.warning("feed_outage", feed=self.feed, error=error)
            self._set(FeedState.DOWN)

    def fail(self, error: str) -> None:
        """A permanent failure: logged once, and the feed stops retrying."""
        self.last_error = error
        self.failure = error
        _log.error("feed_failed", feed=self.feed, error=error, retrying=False)
        self._set(FeedState.FAILED)

    def _set(self, state: FeedState) -> None:
        self.state = state
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_up(self, timeout_s: float) -> None:
        """Return once the feed is up; ``FeedFailedError`` if it failed, ``TimeoutError`` else."""
        async with asyncio.timeout(timeout_s):
            while True:
                if self.state is FeedState.UP:
                    return
                if self.state is FeedState.FAILED:
                    raise FeedFailedError(f"{self.feed}: {self.failure}")
                await self._changed.wait()
