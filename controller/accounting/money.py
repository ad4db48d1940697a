"""Money as the ledger books it: whole micro-dollars (1 micro-USD = 1e-6 USD).

The core settles in floating point (vectorised over intervals); an amount becomes an integer
exactly once, where a settled interval is booked (``to_micro_usd``). From there on every total
is a sum of integers, so a report and a SQL ``SUM`` over the ledger agree to the micro-dollar,
whatever the order of the sum.

Why a sub-cent unit: an interval's amounts are small (one S21 earns about 0.10 USD in 15
minutes). Rounding each to the cent would move each by up to half a cent, and amounts of
similar size round the same way interval after interval, so the error adds up instead of
cancelling (0.1021 rounds to 0.10 every time: -0.21 cents an interval, about -74 USD over a
year of 15-minute intervals, on one miner). At the micro-dollar the bound is 0.5e-6 USD an
interval: at most 0.05 USD over a year of 5-minute intervals (105,120), in the worst case
where every one rounds the same way. A signed 64-bit integer holds 9.2e12 USD in
micro-dollars.

The rounding rule: the exact binary value of the settled float, rounded to the nearest
micro-dollar, ties to even (``decimal.ROUND_HALF_EVEN``; a float cannot lie exactly half-way
between two micro-dollars, so ties do not arise in practice). Non-finite amounts are refused.
"""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal

from controller.records import COMPONENTS, IntervalRecord

CURRENCY = "USD"  #: the one currency the ledger books (ECONOMICS.md: money is USD)
MICRO_PER_USD = 1_000_000  #: micro-dollars in one dollar
#: The settlement components that are money (the rest are energy, in MWh).
MONEY_COMPONENTS = tuple(c for c in COMPONENTS if c.endswith("_usd"))

_SCALE = Decimal(MICRO_PER_USD)


def to_micro_usd(usd: float) -> int:
    """``usd`` as whole micro-dollars: nearest, ties to even. Raises on NaN or infinity."""
    if not math.isfinite(usd):
        raise ValueError(f"amount {usd!r} USD is not a finite number")
    return int((Decimal(usd) * _SCALE).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_micro_usd(micro_usd: int) -> float:
    """Whole micro-dollars as a float of USD (for arithmetic and charts; totals stay integer)."""
    return micro_usd / MICRO_PER_USD


def usd_text(micro_usd: int, *, sign: bool = False, grouping: bool = True) -> str:
    """Exact decimal text of an integer amount, e.g. ``-1,234.567890`` (``+`` with ``sign``;
    ``-1234.567890`` without ``grouping``, as CSV wants it)."""
    whole, frac = divmod(abs(micro_usd), MICRO_PER_USD)
    mark = "-" if micro_usd < 0 else ("+" if sign else "")
    return f"{mark}{whole:,}.{frac:06d}" if grouping else f"{mark}{whole}.{frac:06d}"


def booked(record: IntervalRecord) -> IntervalRecord:
    """``record`` with its money rounded to the micro-dollar, as the ledger returns it."""
    return replace(
        record,
        components=tuple(
            from_micro_usd(to_micro_usd(v)) if name in MONEY_COMPONENTS else v
            for name, v in zip(COMPONENTS, record.components, strict=True)
        ),
        instruments=tuple(
            (i, c, from_micro_usd(to_micro_usd(usd))) for i, c, usd in record.instruments
        ),
    )
