"""Currencies: a recorded series converted into the site's currency, at the edge of settlement.

A site decides and settles in one currency (``USD`` unless it says otherwise). A price feed
in another currency, and the hashprice (always USD per PH/s per day at its source), are
converted before anything decides on them: each observation at the exchange rate that was
published at its timestamp, so a replay never uses a rate from its future and an hourly price
keeps one value for its hour. The converted series is labelled with the site's currency
(``eur_per_ph_day``), never left with its source's name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.domain import FloatArray, Recording, iso

USD = "USD"


class CurrencyError(ValueError):
    """A conversion that cannot be made: no rate for the pair, or none yet at a time."""


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """``1 base = rate quote`` (``EUR/USD`` 1.08: one euro is 1.08 US dollars), over time.

    A constant rate is one observation holding from the beginning of time: an assumption,
    which ``constant`` flags so that every report can say so.
    """

    base: str
    quote: str
    times: FloatArray  # epoch s at which each rate was published
    rates: FloatArray  # quote per base
    source: str
    max_age_s: float = float("inf")  # older than this at a conversion: refused

    @classmethod
    def constant(cls, base: str, quote: str, rate: float) -> ExchangeRate:
        """A fixed rate, stated as an assumption."""
        return cls(
            base,
            quote,
            np.array([-np.inf]),
            np.array([float(rate)]),
            f"constant {base}/{quote} {rate:g} (assumption)",
        )

    @property
    def is_constant(self) -> bool:
        """True for a fixed, assumed rate."""
        return self.times.size == 1 and bool(np.isneginf(self.times[0]))

    @property
    def pair(self) -> str:
        """``EUR/USD``."""
        return f"{self.base}/{self.quote}"

    def covers(self, src: str, dst: str) -> bool:
        """Whether this pair converts ``src`` into ``dst`` (either way round, or none needed)."""
        return src == dst or {src, dst} == {self.base, self.quote}

    def factors(self, src: str, dst: str, at: FloatArray) -> FloatArray:
        """Multipliers from ``src`` into ``dst`` for amounts observed at ``at`` (epoch s)."""
        if src == dst:
            return np.ones_like(at, dtype=np.float64)
        if not self.covers(src, dst):
            raise CurrencyError(
                f"the exchange rate is {self.pair}: it cannot convert {src} to {dst}"
            )
        idx = np.searchsorted(self.times, at, side="right") - 1
        if (idx < 0).any():
            first = float(at[idx < 0][0])
            raise CurrencyError(
                f"{self.source}: no {self.pair} rate at or before {iso(first)} "
                f"(its first is {iso(float(self.times[0]))})"
            )
        age = at - self.times[idx]
        if (age > self.max_age_s).any():
            k = int(np.argmax(age > self.max_age_s))
            raise CurrencyError(
                f"{self.source}: the {self.pair} rate at {iso(float(at[k]))} is "
                f"{age[k] / 86400:.1f} days old (more than {self.max_age_s / 86400:g})"
            )
        rate = self.rates[idx]
        return rate if src == self.base else 1.0 / rate


def convert(rec: Recording, src: str, dst: str, rate: ExchangeRate | None, unit: str) -> Recording:
    """``rec`` (amounts in ``src`` per ``unit``) in ``dst``, each value at its own time's rate.

    The result's column is ``<dst>_per_<unit>`` (``eur_per_mwh``); its source names the rate.
    With ``src == dst`` the recording comes back as it is.
    """
    if src == dst:
        return rec
    if rate is None:
        raise CurrencyError(f"{rec.source}: in {src}, the site in {dst}, and no exchange rate")
    values = rec.values * rate.factors(src, dst, rec.times)
    return Recording(
        source=f"{rec.source} ({src} -> {dst} at {rate.source})",
        path=rec.path,
        column=f"{dst.lower()}_per_{unit}",
        times=rec.times,
        values=values,
    )
