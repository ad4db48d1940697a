"""Refused commands, counted by reason and summarised: a flood writes a count, not a line each.

The first refusals are logged, audited and acknowledged one by one (an operator's typo gets
its answer): up to ``burst`` at once, refilled at ``rate_per_s``. Once that allowance runs
out a burst begins: every further refusal is only counted (no warning line, no audit line,
no ack) until the burst ends, when no refusal has come for ``quiet_s``; then one warning and
one audit line give the count by reason code. A burst that goes on is summarised every
``max_burst_s``. Every refusal, detailed or not, counts in ``CommandStats``, which
the metrics export as ``hashspark_operator_commands_total{site, status, code}``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from controller.domain import EpochS


@dataclass
class CommandStats:
    """Commands received, by (site, status, code); plain counters read at scrape time."""

    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def count(self, site: str, status: str, code: str | None) -> None:
        """One more command of ``status`` (accepted, rejected, duplicate, ignored)."""
        self.counts[(site, status, code or "")] += 1

    def total(self, status: str | None = None) -> int:
        """All commands counted, or those of one status."""
        return sum(n for (_, s, _), n in self.counts.items() if status in (None, s))


@dataclass(frozen=True, slots=True)
class BurstSummary:
    """The refusals of a burst that were only counted."""

    count: int
    codes: dict[str, int]
    first: EpochS
    last: EpochS


class RejectionLimiter:
    """A token bucket over detailed refusals; what it does not admit, it summarises."""

    def __init__(
        self,
        *,
        burst: int = 10,
        rate_per_s: float = 1.0,
        quiet_s: float = 5.0,
        max_burst_s: float = 60.0,
    ) -> None:
        self.burst = burst
        self.rate_per_s = rate_per_s
        self.quiet_s = quiet_s
        self.max_burst_s = max_burst_s
        self._tokens = float(burst)
        self._at: EpochS | None = None
        self._codes: Counter[str] = Counter()
        self._first: EpochS = 0.0
        self._last: EpochS = 0.0

    def admit(self, now: EpochS, code: str) -> bool:
        """Whether this refusal is detailed; if not, it joins the burst's summary."""
        if self._at is not None and not self._codes:  # no refill within a burst
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        if self._tokens >= 1.0 and not self._codes:
            self._tokens -= 1.0
            return True
        if not self._codes:
            self._first = now
        self._codes[code] += 1
        self._last = now
        return False

    def due(self, now: EpochS) -> BurstSummary | None:
        """The burst's summary, once it has ended or lasted long enough (then reset)."""
        if not self._codes:
            return None
        if now - self._last < self.quiet_s and now - self._first < self.max_burst_s:
            return None
        summary = BurstSummary(
            sum(self._codes.values()), dict(self._codes), self._first, self._last
        )
        self._codes = Counter()
        return summary
