"""Backoff bounds, Retry-After parsing, and prompt shutdown with a request in flight."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from adapters.feeds.http import MAX_RETRY_AFTER_S, parse_retry_after
from controller.runtime.retry import Backoff


def test_backoff_is_capped_full_jitter_and_resets() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(1))
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(12)]
    for ceiling in ceilings:
        assert 0.0 <= backoff.next_delay_s() <= ceiling
    late = [backoff.next_delay_s() for _ in range(2000)]
    assert max(late) <= 8.0
    assert min(late) < 1.0  # full jitter: short waits stay possible, retries spread out
    backoff.reset()
    assert backoff.next_delay_s() <= 0.5


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(2.0, 1.0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("999999", MAX_RETRY_AFTER_S),
        ("Sat, 21 Nov 2026 22:16:00 GMT", 60.0),
        ("Sat, 21 Nov 2026 22:00:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime(2026, 11, 21, 22, 15, tzinfo=UTC)
    assert parse_retry_after(header, now) == expected
