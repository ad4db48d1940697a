"""Deadlines, retries and backoff, in one place for every adapter: a hard deadline per call,
capped full-jitter exponential backoff for transient failures under an overall deadline
(miner calls), and the reconnect/poll backoff of feeds and links."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_abandoned: set[asyncio.Task[object]] = set()


def abandoned_calls() -> int:
    """Calls given up at their deadline that have not yet ended (they still hold a socket)."""
    return len(_abandoned)


async def reap(*tasks: asyncio.Future[Any]) -> None:
    """Cancel ``tasks`` and wait until they have ended; their errors are dropped.

    Unlike ``task.cancel()`` then ``with suppress(CancelledError): await task``, this never
    swallows a cancellation of the caller: there, the caller's own ``cancel()`` arrives as
    that same ``CancelledError`` and is suppressed, and the caller runs on, cancelled in
    name only (a task group that failed would wait for it for ever).
    """
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved


def caller_cancelled() -> bool:
    """Whether the running task has been asked to cancel (and has not taken it back)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _forget(task: asyncio.Task[object]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned call's error is not news


async def hard_deadline(aw: Awaitable[T], timeout_s: float) -> T:
    """``aw``'s result, or ``TimeoutError`` after ``timeout_s``, whatever ``aw`` does.

    ``asyncio.wait_for`` cancels at the deadline and then *waits for the cancellation to
    finish*: a library call that swallows its cancellation (or blocks in a cleanup that
    never ends) holds the caller, and so the whole cycle, for ever. Here the call is
    cancelled and left to end by itself: the caller gets its ``TimeoutError`` on time.
    """
    task: asyncio.Task[T] = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        return task.result()
    task.cancel()
    _abandoned.add(task)
    task.add_done_callback(_forget)
    raise TimeoutError(f"no answer within {timeout_s:g} s")


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


class Backoff:
    """Capped exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**n))``."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self.attempt = 0

    def next_delay_s(self) -> float:
        """The delay before the next retry; grows until the cap."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 62))
        self.attempt += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        """Back to the first, shortest delay (after a success)."""
        self.attempt = 0
