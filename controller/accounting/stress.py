"""Stressed inputs: the recorded hashprice and power price, scaled, shifted and spiked.

A stress changes the world a book is replayed in, never the book: the contracts keep the
terms they were written with. Hashprice is ``(sub + k * (HP - sub)) * scale + shift``, where
``sub`` is the subsidy-only hashprice and ``k`` the fee scale (the transaction fees' part
of hashprice scaled by ``k``), floored at zero; the power price is ``P * scale + shift``
(it may go negative, as real prices do), and each spike sets it to a price over a span.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from controller.domain import EpochS, Recording


@dataclass(frozen=True, slots=True)
class Spike:
    """The power price forced to ``price_usd_per_mwh`` over ``[start, end)``."""

    start: EpochS
    end: EpochS
    price_usd_per_mwh: float


@dataclass(frozen=True, slots=True)
class Stress:
    """How to bend the recorded inputs; the defaults change nothing."""

    hashprice_scale: float = 1.0
    hashprice_shift_usd_per_ph_day: float = 0.0
    fee_scale: float | None = None  #: needs the subsidy-only hashprice
    power_scale: float = 1.0
    power_shift_usd_per_mwh: float = 0.0
    spikes: tuple[Spike, ...] = ()


def holding(rec: Recording, at: np.ndarray) -> np.ndarray:
    """The value of ``rec`` holding at each time (its first value before it starts)."""
    idx = np.clip(np.searchsorted(rec.times, at, side="right") - 1, 0, len(rec) - 1)
    return np.asarray(rec.values[idx])


def stress_hashprice(hp: Recording, stress: Stress, subsidy: Recording | None) -> Recording:
    """The hashprice under ``stress``; ``subsidy`` is required when the fee scale is set."""
    values = hp.values
    if stress.fee_scale is not None:
        if subsidy is None:
            raise ValueError("a fee scale needs the subsidy-only hashprice")
        sub = holding(subsidy, hp.times)
        values = sub + stress.fee_scale * (values - sub)
    values = np.maximum(values * stress.hashprice_scale + stress.hashprice_shift_usd_per_ph_day, 0)
    return replace(
        hp, values=np.asarray(values, dtype=np.float64), source=f"{hp.source} (stressed)"
    )


def stress_price(price: Recording, stress: Stress) -> Recording:
    """The power price under ``stress``: scaled, shifted, then spiked."""
    times, values = price.times, price.values * stress.power_scale + stress.power_shift_usd_per_mwh
    if stress.spikes:
        edges = [t for s in stress.spikes for t in (s.start, s.end)]
        new_times = np.union1d(times, np.asarray(edges, dtype=np.float64))
        new_times = new_times[new_times >= times[0]]
        shifted = replace(price, times=times, values=values)
        values = holding(shifted, new_times).copy()
        for s in stress.spikes:
            values[(new_times >= s.start) & (new_times < s.end)] = s.price_usd_per_mwh
        times = new_times
    return replace(
        price,
        times=np.asarray(times, dtype=np.float64),
        values=np.asarray(values, dtype=np.float64),
        source=f"{price.source} (stressed)",
    )
