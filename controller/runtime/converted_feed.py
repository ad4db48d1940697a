"""A reading feed in another currency: each reading converted at the rate of its own time.

The daemon wraps a site's price feed (and its hashprice feed, which is USD at the source)
in one of these when the site settles in another currency. A reading for which no rate is
known, or only one older than the rate's ``max_age_s``, is not offered at all: the site's
staleness fail-safe then acts on it as on any missing input, rather than deciding on a
figure in the wrong currency.
"""

from __future__ import annotations

import numpy as np

from controller.currency import CurrencyError, ExchangeRate
from controller.domain import EpochS, Reading
from controller.runtime.ports import ReadingFeed


class ConvertedFeed:
    """``inner``'s readings (in ``src``) in ``dst``."""

    def __init__(self, inner: ReadingFeed, src: str, dst: str, rate: ExchangeRate) -> None:
        self._inner = inner
        self._src = src
        self._dst = dst
        self._rate = rate

    @property
    def name(self) -> str:
        """The inner feed's name, and the conversion."""
        return f"{self._inner.name} ({self._src} -> {self._dst})"

    def latest(self, now: EpochS) -> Reading | None:
        """The inner feed's latest reading in ``dst``; None without a usable rate."""
        reading = self._inner.latest(now)
        if reading is None:
            return None
        try:
            factor = self._rate.factors(self._src, self._dst, np.array([reading.observed_at]))
        except CurrencyError:
            return None
        return Reading(reading.value * float(factor[0]), reading.observed_at, reading.source)

    def next_change_after(self, now: EpochS) -> EpochS | None:
        """As the inner feed (a new rate alone does not make a new reading)."""
        return self._inner.next_change_after(now)
