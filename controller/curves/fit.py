"""Efficiency curves learned from telemetry: a robust, monotone fit of hashrate against power.

Miners that run at a few power targets report (power, hashrate) pairs that cluster around
those targets. The fit groups the samples into power levels, takes each level's median
after rejecting outliers by the median absolute deviation, drops levels with too few
samples (a miner ramping up passes through many powers, each only briefly), and makes
hashrate non-decreasing in power (pool adjacent violators). Pure numpy: no clock, no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from controller.domain import FloatArray

#: MAD to standard deviation for normal noise.
_MAD_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class FitParams:
    """How much evidence a learned curve needs, and what counts as an outlier."""

    min_samples: int = 60  # samples kept after outlier rejection, over all levels
    min_samples_per_point: int = 5  # a power level with fewer is not a point
    min_points: int = 2  # levels needed before a learned curve may replace another
    level_tolerance: float = 0.03  # samples within 3 % of a level's lowest power join it
    outlier_mads: float = 3.5  # |h - median| beyond this many (scaled) MADs is rejected
    min_spread_fraction: float = 0.005  # MAD floor: 0.5 % of the level's median hashrate


@dataclass(frozen=True, slots=True)
class LearnedCurve:
    """A fitted curve: (hashrate_th, power_w) points by increasing power, and its evidence."""

    points: tuple[tuple[float, float], ...]
    samples_used: int
    samples_rejected: int


@dataclass(frozen=True, slots=True)
class NotEnough:
    """No curve yet, and why (too few samples or levels)."""

    reason: str
    samples_used: int


def fit_curve(
    power_w: FloatArray, hashrate_th: FloatArray, params: FitParams
) -> LearnedCurve | NotEnough:
    """Fit a monotone curve to (power, hashrate) samples, or say why the evidence is short."""
    p = np.asarray(power_w, dtype=np.float64)
    h = np.asarray(hashrate_th, dtype=np.float64)
    ok = np.isfinite(p) & np.isfinite(h) & (p > 0) & (h > 0)
    p, h = p[ok], h[ok]
    rejected = int((~ok).sum())
    order = np.argsort(p, kind="stable")
    p, h = p[order], h[order]
    levels: list[tuple[float, float, int]] = []  # (median power, median hashrate, count)
    used = 0
    for lo, hi in _levels(p, params.level_tolerance):
        lp, lh = p[lo:hi], h[lo:hi]
        keep = _inliers(lh, params)
        keep &= _inliers(lp, params)
        rejected += int((~keep).sum())
        n = int(keep.sum())
        if n < params.min_samples_per_point:
            rejected += n
            continue
        used += n
        levels.append((float(np.median(lp[keep])), float(np.median(lh[keep])), n))
    if used < params.min_samples:
        return NotEnough(f"{used} samples of {params.min_samples} needed", used)
    points = _monotone(levels)
    if len(points) < params.min_points:
        return NotEnough(
            f"{len(points)} power levels of {params.min_points} needed (miners have run at "
            "too few power targets)",
            used,
        )
    return LearnedCurve(tuple(points), used, rejected)


def _levels(sorted_power: FloatArray, tolerance: float) -> list[tuple[int, int]]:
    """Index ranges of the sorted powers, each within ``tolerance`` of its lowest power."""
    out: list[tuple[int, int]] = []
    n = len(sorted_power)
    lo = 0
    while lo < n:
        limit = sorted_power[lo] * (1 + tolerance)
        hi = int(np.searchsorted(sorted_power, limit, side="right"))
        out.append((lo, hi))
        lo = hi
    return out


def _inliers(values: FloatArray, params: FitParams) -> np.ndarray:
    """Values within ``outlier_mads`` scaled MADs of their median (with a floor on the MAD)."""
    median = np.median(values)
    spread = max(
        _MAD_SIGMA * float(np.median(np.abs(values - median))),
        params.min_spread_fraction * abs(float(median)),
    )
    result: np.ndarray = np.abs(values - median) <= params.outlier_mads * spread
    return result


def _monotone(levels: list[tuple[float, float, int]]) -> list[tuple[float, float]]:
    """Pool adjacent violators on hashrate (weights: sample counts); one point per block.

    A block of levels whose hashrate falls as power rises is one point at the pooled
    hashrate, placed at the power of its best-supported level: more power for no more
    hashrate is never a point worth running.
    """
    blocks: list[list[float]] = []  # [pooled hashrate, weight, power of best level, its count]
    for power, hashrate, count in levels:
        blocks.append([hashrate, float(count), power, float(count)])
        while len(blocks) > 1 and blocks[-2][0] >= blocks[-1][0]:
            b = blocks.pop()
            a = blocks[-1]
            total = a[1] + b[1]
            a[0] = (a[0] * a[1] + b[0] * b[1]) / total
            a[1] = total
            if b[3] > a[3]:
                a[2], a[3] = b[2], b[3]
    return [(round(b[0], 3), round(b[2], 1)) for b in blocks]


class SampleStore:
    """Recent (power, hashrate) samples of one model and firmware, kept per power bucket.

    A fleet that sits at one target for days must not push out what it showed at the
    others, so each ``bucket_w`` wide bucket keeps its own ``per_bucket`` latest samples.
    """

    def __init__(self, *, bucket_w: float = 25.0, per_bucket: int = 200) -> None:
        self._bucket_w = bucket_w
        self._per_bucket = per_bucket
        self._buckets: dict[int, deque[tuple[float, float]]] = {}

    def add(self, power_w: FloatArray, hashrate_th: FloatArray) -> None:
        """Add samples (vectorised by bucket; one Python step per bucket, not per miner)."""
        p = np.asarray(power_w, dtype=np.float64)
        h = np.asarray(hashrate_th, dtype=np.float64)
        ok = np.isfinite(p) & np.isfinite(h) & (p > 0) & (h > 0)
        p, h = p[ok], h[ok]
        if not p.size:
            return
        ids = np.floor(p / self._bucket_w).astype(np.int64)
        for b in np.unique(ids).tolist():
            sel = ids == b
            bucket = self._buckets.setdefault(b, deque(maxlen=self._per_bucket))
            tail = slice(-self._per_bucket, None)
            bucket.extend(zip(p[sel][tail].tolist(), h[sel][tail].tolist(), strict=True))

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        """Every kept sample as (power_w, hashrate_th) arrays."""
        pairs = [s for bucket in self._buckets.values() for s in bucket]
        if not pairs:
            return np.zeros(0), np.zeros(0)
        a = np.asarray(pairs, dtype=np.float64)
        return a[:, 0], a[:, 1]

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())
