"""Retries of transient failures: capped, full-jitter exponential backoff under a deadline."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one call."""

    attempts: int = 3
    base_s: float = 0.2
    cap_s: float = 2.0

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2**attempt))


async def retry_transient(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    transient: Callable[[BaseException], bool],
    deadline: float,
    rng: random.Random,
) -> T:
    """Await ``call()``; retry it on transient errors while attempts and time remain.

    ``deadline`` is on the event loop's clock. Permanent errors, and the last transient
    one, are raised to the caller.
    """
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            attempt += 1
            if not transient(exc) or attempt >= policy.attempts:
                raise
            pause = policy.delay_s(attempt - 1, rng)
            if loop.time() + pause >= deadline:
                raise
            await asyncio.sleep(pause)
