"""Where each group's efficiency curve comes from: config, firmware, or the fleet's telemetry.

Over 300 lines: sources, precedence and refit rules decide together which curve is used.

Sources:

- ``config``: the group's ``curve`` in the config file;
- ``nameplate``: the catalog's nameplate when the config gives no curve (one point);
- ``firmware``: what the miners' firmware says (LuxOS power profiles, Braiins OS+ tuned
  power-target profiles), read through pyasic at start-up;
- ``learned``: fitted from the fleet's own (power, hashrate) telemetry per model and
  firmware, once there is enough of it (``controller.curves.fit``).

A group's ``curve_source`` preference picks among what is available: ``config`` always
uses the config (or nameplate); ``firmware`` and ``learned`` use that source when it is
there and the config otherwise; ``auto`` uses firmware when readable, else the learned
curve once it is ready, else the config. ``CurveBook`` holds this per site; it is pure:
the caller passes samples, firmware readings and the time in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from controller.curves.fit import FitParams, LearnedCurve, NotEnough, SampleStore, fit_curve
from controller.domain import (
    EpochS,
    FleetSpec,
    FloatArray,
    IntArray,
    build_fleet,
    group_names,
)

Points = tuple[tuple[float, float], ...]  #: (hashrate_th, power_w) by increasing power


class CurveSource(StrEnum):
    """Where a curve in use came from."""

    CONFIG = "config"
    NAMEPLATE = "nameplate"
    FIRMWARE = "firmware"
    LEARNED = "learned"


class CurvePreference(StrEnum):
    """What a group asks for (``curve_source`` in the config)."""

    CONFIG = "config"
    FIRMWARE = "firmware"
    LEARNED = "learned"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class FirmwareCurve:
    """A curve one miner's firmware reported, and what it was read from."""

    points: Points
    detail: str  # e.g. "luxos profiles", "bos+ tuner profiles"


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """One config group as the book needs it."""

    model: str
    count: int
    firmware: str | None  # from the config; discovery may tell it later
    config_points: Points
    config_is_nameplate: bool
    preference: CurvePreference
    max_power_w: float | None = None  # no point above this, whatever the source says


@dataclass(frozen=True, slots=True)
class GroupCurve:
    """The curve a group uses now, where it came from, and why that source."""

    group: int
    model: str
    firmware: str
    source: CurveSource
    points: Points
    detail: str
    learned_samples: int

    def describe_points(self) -> str:
        """``1841 W 80.6 TH/s, 3068 W 104.0 TH/s``."""
        return ", ".join(f"{w:.0f} W {h:.1f} TH/s" for h, w in self.points)


def sorted_points(points: Sequence[tuple[float, float]]) -> Points:
    """Points by increasing power, one per power (the first wins)."""
    seen: dict[float, tuple[float, float]] = {}
    for h, w in points:
        seen.setdefault(float(w), (float(h), float(w)))
    return tuple(seen[w] for w in sorted(seen))


def combine(curves: Sequence[FirmwareCurve | None]) -> tuple[FirmwareCurve | None, int]:
    """One curve from what a group's miners reported, and how many reported one.

    Units of a model differ a little (BOS+ measures each miner's own hashrate at each
    target), so a point is a power level that at least half the reporting miners state,
    at the median of their hashrates there.
    """
    reported = [c for c in curves if c is not None and c.points]
    if not reported:
        return None, 0
    by_power: dict[float, list[float]] = {}
    for c in reported:
        for h, w in c.points:
            by_power.setdefault(round(w), []).append(h)
    points = [
        (round(float(np.median(hs)), 3), w)
        for w, hs in by_power.items()
        if 2 * len(hs) >= len(reported)
    ]
    if not points:
        return None, len(reported)
    return FirmwareCurve(sorted_points(points), reported[0].detail), len(reported)


def _moved(a: Points, b: Points, threshold: float) -> bool:
    """Curves differ: other power levels, or a point moved by more than ``threshold``."""
    if len(a) != len(b):
        return True
    for (ha, wa), (hb, wb) in zip(a, b, strict=True):
        if abs(wa - wb) > threshold * wa or abs(ha - hb) > threshold * ha:
            return True
    return False


class CurveBook:
    """A site's groups, their curve sources, the learning samples, and the curves in use."""

    def __init__(
        self,
        groups: Sequence[GroupSpec],
        *,
        fit: FitParams | None = None,
        refit_interval_s: float = 600.0,
        change_threshold: float = 0.02,
        group_of: Sequence[int] | None = None,
    ) -> None:
        self.groups = tuple(groups)
        self.fit = fit or FitParams()
        self.refit_interval_s = refit_interval_s
        self.change_threshold = change_threshold
        contiguous = np.concatenate(
            [np.full(g.count, k, dtype=np.int64) for k, g in enumerate(self.groups)]
        )
        if group_of is not None and (
            len(group_of) != contiguous.size
            or not np.array_equal(np.sort(np.asarray(group_of)), contiguous)
        ):
            raise ValueError("group_of must name each group as many times as its count")
        #: Each miner's group: group by group unless the caller's miners are interleaved.
        self.group_of: IntArray = (
            contiguous if group_of is None else np.asarray(group_of, dtype=np.int64)
        )
        self._firmware_seen: list[str | None] = [g.firmware for g in self.groups]
        self._firmware_curve: list[FirmwareCurve | None] = [None] * len(self.groups)
        self._firmware_detail: list[str] = [""] * len(self.groups)
        self._stores: dict[tuple[str, str], SampleStore] = {}
        self._learned: dict[tuple[str, str], LearnedCurve | NotEnough] = {}
        self._last_fit: EpochS | None = None
        self.curves: tuple[GroupCurve, ...] = tuple(
            self._resolve(k) for k in range(len(self.groups))
        )

    # --- inputs ---------------------------------------------------------------------------

    @property
    def wants_firmware(self) -> bool:
        """Some group would use a firmware curve if one can be read."""
        return any(
            g.preference in (CurvePreference.FIRMWARE, CurvePreference.AUTO) for g in self.groups
        )

    @property
    def wants_learning(self) -> bool:
        """Some group would use a learned curve once one is ready."""
        return any(
            g.preference in (CurvePreference.LEARNED, CurvePreference.AUTO) for g in self.groups
        )

    def set_firmware(
        self,
        per_miner: Sequence[str | None],
        curves: Sequence[FirmwareCurve | None],
        *,
        keep_unread: bool = False,
    ) -> None:
        """What discovery found (firmware name per miner) and the curves firmware reported.

        ``keep_unread`` (a re-read while running): a group none of whose miners answered
        keeps the curve it had, so a network blip does not send it back to the config.
        """
        if len(per_miner) != self.group_of.size or len(curves) != self.group_of.size:
            raise ValueError("one firmware and one curve (or None) per miner")
        for k in range(len(self.groups)):
            members = np.flatnonzero(self.group_of == k).tolist()
            names = Counter(per_miner[i] for i in members if per_miner[i] is not None)
            if self._firmware_seen[k] is None and names:
                self._firmware_seen[k] = names.most_common(1)[0][0]
            curve, n = combine([curves[i] for i in members])
            if curve is None and keep_unread:
                continue
            self._firmware_curve[k] = curve
            self._firmware_detail[k] = (
                "" if curve is None else f"{curve.detail}, {n} of {len(members)} miners"
            )

    def add_samples(self, miner: IntArray, power_w: FloatArray, hashrate_th: FloatArray) -> None:
        """Steady (power, hashrate) telemetry of the given miners, filed by model and firmware."""
        miner = np.asarray(miner, dtype=np.int64)
        if not miner.size:
            return
        groups = self.group_of[miner]
        for k in np.unique(groups).tolist():
            sel = groups == k
            key = self.key(k)
            store = self._stores.setdefault(key, SampleStore())
            store.add(np.asarray(power_w)[sel], np.asarray(hashrate_th)[sel])

    def sample_arrays(self) -> dict[tuple[str, str], tuple[FloatArray, FloatArray]]:
        """Every kept learning sample by (model, firmware), to persist across restarts."""
        return {key: store.arrays() for key, store in self._stores.items()}

    def load_samples(self, samples: dict[tuple[str, str], tuple[FloatArray, FloatArray]]) -> None:
        """Samples kept by an earlier run (before the first refresh)."""
        for key, (power_w, hashrate_th) in samples.items():
            self._stores.setdefault(key, SampleStore()).add(power_w, hashrate_th)

    @property
    def fitted_at(self) -> EpochS | None:
        """When the last refit ran."""
        return self._last_fit

    def key(self, group: int) -> tuple[str, str]:
        """What learned curves are shared by: (model, firmware)."""
        return self.groups[group].model, self._firmware_seen[group] or "unknown"

    def samples(self, group: int) -> int:
        """Learning samples kept for the group's model and firmware."""
        store = self._stores.get(self.key(group))
        return 0 if store is None else len(store)

    # --- resolution -----------------------------------------------------------------------

    def refresh(self, now: EpochS, *, force: bool = False) -> list[tuple[GroupCurve, GroupCurve]]:
        """Refit learned curves (at most every ``refit_interval_s``) and re-resolve every group.

        Returns the (old, new) curves of the groups whose curve changed: another source, other
        power levels, or a point moved by more than ``change_threshold``. Smaller drifts keep
        the curve in use, so noise does not re-plan the fleet every cycle.
        """
        if (
            not force
            and self._last_fit is not None
            and now - self._last_fit < self.refit_interval_s
        ):
            return []
        self._last_fit = now
        if self.wants_learning:
            for key, store in self._stores.items():
                p, h = store.arrays()
                self._learned[key] = fit_curve(p, h, self.fit)
        changed: list[tuple[GroupCurve, GroupCurve]] = []
        curves = list(self.curves)
        for k in range(len(self.groups)):
            new = self._resolve(k)
            old = curves[k]
            if new.source != old.source or _moved(old.points, new.points, self.change_threshold):
                curves[k] = new
                changed.append((old, new))
            else:
                curves[k] = GroupCurve(
                    k, old.model, new.firmware, old.source, old.points, new.detail,
                    new.learned_samples,
                )  # fmt: skip
        self.curves = tuple(curves)
        return changed

    def learned_status(self, group: int) -> LearnedCurve | NotEnough | None:
        """The last fit for the group's model and firmware (None before any)."""
        return self._learned.get(self.key(group))

    def _resolve(self, k: int) -> GroupCurve:
        g = self.groups[k]
        firmware = self._firmware_seen[k] or "unknown"
        fw = self._firmware_curve[k]
        learned = self._learned.get(self.key(k))
        samples = self.samples(k)
        config_source = CurveSource.NAMEPLATE if g.config_is_nameplate else CurveSource.CONFIG

        def use(source: CurveSource, points: Points, detail: str) -> GroupCurve:
            return GroupCurve(k, g.model, firmware, source, points, detail, samples)

        pref = g.preference
        cap = g.max_power_w
        fw_points = self._capped(k, fw)
        learned_points = self._capped(k, learned) if isinstance(learned, LearnedCurve) else ()
        wants_fw = pref in (CurvePreference.FIRMWARE, CurvePreference.AUTO)
        wants_learned = pref in (CurvePreference.LEARNED, CurvePreference.AUTO)
        if wants_fw and fw_points:
            return use(CurveSource.FIRMWARE, fw_points, self._firmware_detail[k])
        if wants_learned and isinstance(learned, LearnedCurve) and learned_points:
            return use(CurveSource.LEARNED, learned_points, _learned_detail(learned))
        reasons: list[str] = []
        if wants_fw:
            reasons.append(
                "no firmware curve" if fw is None else f"firmware states no point <= {cap:.0f} W"
            )
        if wants_learned:
            if isinstance(learned, LearnedCurve):
                reasons.append(f"learned curve has no point <= {cap:.0f} W")
            elif isinstance(learned, NotEnough):
                reasons.append(f"not learned yet: {learned.reason}")
            else:
                reasons.append(f"not learned yet: {samples} samples, no fit yet")
        return use(config_source, g.config_points, "; ".join(reasons) or "as configured")

    def _capped(self, k: int, curve: FirmwareCurve | LearnedCurve | None) -> Points:
        """The curve's points at or below the group's ``max_power_w`` (empty if none)."""
        if curve is None:
            return ()
        cap = self.groups[k].max_power_w
        return tuple(p for p in curve.points if cap is None or p[1] <= cap)

    # --- the fleet ------------------------------------------------------------------------

    def fleet(self) -> FleetSpec:
        """The fleet as the curves in use describe it, one row per miner in miner order."""
        grouped = build_fleet(
            [
                (g.model, g.count, list(c.points))
                for g, c in zip(self.groups, self.curves, strict=True)
            ],
            group_names([g.model for g in self.groups], [g.firmware for g in self.groups]),
        )
        # build_fleet lays groups out one after another; miner i is the next row of its group
        rows = np.argsort(np.argsort(self.group_of, kind="stable"), kind="stable")
        if np.array_equal(rows, np.arange(rows.size)):
            return grouped
        return FleetSpec(
            hashrate_th=grouped.hashrate_th[rows],
            power_w=grouped.power_w[rows],
            valid=grouped.valid[rows],
            model_index=grouped.model_index[rows],
            model_names=grouped.model_names,
            groups=grouped.group_of[rows],
            group_names=grouped.group_names,
        )


def _learned_detail(curve: LearnedCurve) -> str:
    return f"{curve.samples_used} samples, {curve.samples_rejected} rejected"
