"""Hashprice built from its parts: the BTC price, the difficulty and the fees per block.

``HP = 86400 * 1e15 * (subsidy + fees) * btc_usd / (difficulty * 2**32)`` (ECONOMICS.md),
the difficulty read in units of 1e12. A site with ``bitcoin.hashprice = "derived"`` reads
this instead of a hashprice feed, so its mining revenue and its Bitcoin instruments see
one world. A value holds from the newest of its three parts' observations until the next.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from controller.decision.economics import hashprice_usd_per_ph_day
from controller.domain import EpochS, FloatArray, Reading, Recording
from controller.runtime.ports import ReadingFeed

DIFFICULTY_UNIT = 1e12
SOURCE = "derived"


def derived_hashprice(
    btc_usd: float, difficulty_t: float, fees_btc_per_block: float, subsidy_btc: float
) -> float:
    """USD per PH/s per day from one observation of each part."""
    return float(
        hashprice_usd_per_ph_day(
            difficulty_t * DIFFICULTY_UNIT, subsidy_btc, fees_btc_per_block, btc_usd
        )
    )


def _holding(rec: Recording, t: FloatArray) -> FloatArray:
    return np.asarray(rec.values[np.searchsorted(rec.times, t, side="right") - 1])


def derive_recording(
    btc_usd: Recording, difficulty_t: Recording, fees: Recording, subsidy_btc: float
) -> Recording:
    """The hashprice series: a value at every change of any part, from when all three exist."""
    first = max(float(r.times[0]) for r in (btc_usd, difficulty_t, fees))
    times = np.unique(np.concatenate([btc_usd.times, difficulty_t.times, fees.times]))
    times = np.asarray(times[times >= first], dtype=np.float64)
    values = hashprice_usd_per_ph_day(
        _holding(difficulty_t, times) * DIFFICULTY_UNIT,
        np.full_like(times, subsidy_btc),
        _holding(fees, times),
        _holding(btc_usd, times),
    )
    name = f"{SOURCE}({btc_usd.source},{difficulty_t.source},{fees.source})"
    return Recording(
        source=name,
        path=Path(name),
        column="usd_per_ph_day",
        times=np.asarray(times, dtype=np.float64),
        values=np.asarray(values, dtype=np.float64),
    )


class DerivedHashpriceFeed:
    """A ``ReadingFeed`` of the hashprice from three live or recorded feeds of its parts."""

    def __init__(
        self, btc_usd: ReadingFeed, difficulty_t: ReadingFeed, fees: ReadingFeed, subsidy_btc: float
    ) -> None:
        self._parts = (btc_usd, difficulty_t, fees)
        self._subsidy_btc = subsidy_btc

    @property
    def name(self) -> str:
        """``derived(<btc>,<difficulty>,<fees>)``."""
        return f"{SOURCE}({','.join(p.name for p in self._parts)})"

    def latest(self, now: EpochS) -> Reading | None:
        """The hashprice of the newest readings of the three parts; None until all exist.

        It is stamped with its newest part's time, when this combination was first known
        (a part sampled less often, the fees every four days at the end of the shipped recording,
        would otherwise age it past the fail-safe while the others are fresh).
        """
        readings = [p.latest(now) for p in self._parts]
        if any(r is None for r in readings):
            return None
        btc, diff, fees = (r for r in readings if r is not None)
        value = derived_hashprice(btc.value, diff.value, fees.value, self._subsidy_btc)
        observed = max(btc.observed_at, diff.observed_at, fees.observed_at)
        return Reading(value, observed, f"{SOURCE}:{btc.source}")

    def next_change_after(self, now: EpochS) -> EpochS | None:
        """The soonest next reading of any part, if known."""
        nexts = [t for p in self._parts if (t := p.next_change_after(now)) is not None]
        return min(nexts) if nexts else None
