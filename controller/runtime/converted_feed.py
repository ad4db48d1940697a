"""A reading feed in another currency: each reading converted at the rate of its own time.

The daemon wraps a site's price feed (and its hashprice feed, which is USD at the source)
in one of these when the site settles in another currency. A reading for which no rate is
known, or only one older than the rate's ``max_age_s``, is not offered at all: the site's
staleness fail-safe then acts on it as on any missing input, rather than deciding on a
figure in the wrong currency. Each such reading is told once to ``on_refused`` (the daemon
counts it as a ``no_rate`` rejection and logs the first of a run of them), and the first
reading converted again to ``on_recovered``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from controller.currency import CurrencyError, ExchangeRate
from controller.domain import EpochS, Reading
from controller.runtime.ports import ReadingFeed


def _ignore(*_: object) -> None:
    return None


class ConvertedFeed:
    """``inner``'s readings (in ``src``) in ``dst``."""

    def __init__(
        self,
        inner: ReadingFeed,
        src: str,
        dst: str,
        rate: ExchangeRate,
        *,
        on_refused: Callable[[str, bool], None] = _ignore,
        on_recovered: Callable[[], None] = _ignore,
    ) -> None:
        self._inner = inner
        self._src = src
        self._dst = dst
        self._rate = rate
        self._on_refused = on_refused  # (why, first of a run)
        self._on_recovered = on_recovered
        self._told: EpochS | None = None  # the observed_at last told (refused or converted)
        self.refusing: str | None = None  # why the newest reading has no usable rate
        self.refused = 0  # readings refused for want of a usable rate
        #: The rate applied to the newest reading converted (``dst`` per ``src``).
        self.last_factor: float | None = None

    @property
    def name(self) -> str:
        """The inner feed's name, and the conversion."""
        return f"{self._inner.name} ({self._src} -> {self._dst})"

    @property
    def inner_name(self) -> str:
        """The inner feed's own name (the one its rejections are counted under)."""
        return self._inner.name

    @property
    def rate(self) -> ExchangeRate:
        """The exchange rate it converts at."""
        return self._rate

    def latest(self, now: EpochS) -> Reading | None:
        """The inner feed's latest reading in ``dst``; None without a usable rate."""
        reading = self._inner.latest(now)
        if reading is None:
            return None
        try:
            factor = self._rate.factors(self._src, self._dst, np.array([reading.observed_at]))
        except CurrencyError as exc:
            self._refuse(reading.observed_at, str(exc))
            return None
        if self._told != reading.observed_at:
            self._told = reading.observed_at
            self.last_factor = float(factor[0])
            if self.refusing is not None:
                self.refusing = None
                self._on_recovered()
        # The source says it was converted: the ledger's price_source names the conversion.
        source = f"{reading.source} ({self._src}->{self._dst})"
        return Reading(reading.value * float(factor[0]), reading.observed_at, source)

    def _refuse(self, observed_at: EpochS, why: str) -> None:
        if self._told == observed_at:
            return  # this reading was told already: asked again every cycle
        self._told = observed_at
        first = self.refusing is None
        self.refusing = why
        self.refused += 1
        self._on_refused(why, first)

    def next_change_after(self, now: EpochS) -> EpochS | None:
        """As the inner feed (a new rate alone does not make a new reading)."""
        return self._inner.next_change_after(now)
