"""How much of a span the ledger accounts for: booked hours, down hours and the gaps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controller.domain import EpochS


@dataclass(frozen=True, slots=True)
class Coverage:
    """A site's ledger over ``[start, end)``: what is booked, what of it is down, what is not."""

    start: EpochS
    end: EpochS
    booked_h: float  # settled and down intervals, clipped to the range
    down_h: float  # of which down (the daemon settled nothing: fixed costs only)
    gaps: tuple[tuple[EpochS, EpochS], ...]  # spans no interval covers

    @property
    def wall_h(self) -> float:
        """Hours from the range's start to its end."""
        return (self.end - self.start) / 3600.0

    @property
    def fraction(self) -> float:
        """Booked hours over wall hours (1.0 for an empty range)."""
        return self.booked_h / self.wall_h if self.wall_h > 0 else 1.0


def coverage(
    spans: Sequence[tuple[EpochS, EpochS, bool]],
    start: EpochS | None = None,
    end: EpochS | None = None,
    *,
    tolerance_s: float = 1e-3,
) -> Coverage:
    """Coverage of ``[start, end)`` by ``spans`` ((start, end, down), in time order, not
    overlapping). Without a range, from the first span's start to the last one's end.
    Gaps shorter than ``tolerance_s`` (float rounding of epoch seconds) are not gaps."""
    lo = start if start is not None else (spans[0][0] if spans else 0.0)
    hi = end if end is not None else (spans[-1][1] if spans else lo)
    booked = down = 0.0
    gaps: list[tuple[EpochS, EpochS]] = []
    cursor = lo
    for span_start, span_end, is_down in spans:
        a, b = max(span_start, lo), min(span_end, hi)
        if b <= a:
            continue
        if a - cursor > tolerance_s:
            gaps.append((cursor, a))
        booked += b - a
        if is_down:
            down += b - a
        cursor = max(cursor, b)
    if hi - cursor > tolerance_s:
        gaps.append((cursor, hi))
    return Coverage(lo, hi, booked / 3600.0, down / 3600.0, tuple(gaps))
