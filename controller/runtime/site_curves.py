"""A site's curves at run time: firmware curves at start, learning between cycles, re-planning.

The book (``controller.curves.book``) decides which curve each group uses; this wires it to the
site's driver and loop. At start, after discovery, firmware curves are read if any group
may use them and the fleet is rebuilt from the curves in use. After each cycle the
driver's steady telemetry is filed as samples; when a refit changes a group's curve, the
driver and the loop adopt the new fleet. Each curve in use is logged once at start and
once per change, with its source. The learning samples are kept in
``STATE_DIR/curves/<site>.json`` after every refit, so a restart does not learn from scratch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import structlog

from controller.curves.book import CurveBook, FirmwareCurve, GroupCurve
from controller.curves.fit import FitParams
from controller.domain import EpochS, FleetSpec, FloatArray, IntArray
from controller.runtime.ports import Discovers
from controller.runtime.storage import StorageHealth

_log = structlog.get_logger("hashspark.curves")


class CurveSettings(Protocol):
    """The fit settings a reload may change (``[sites.curves]``)."""

    @property
    def refit_interval_s(self) -> float:
        """Seconds between refits."""
        ...

    @property
    def change_threshold(self) -> float:
        """Smaller moves keep the curve in use."""
        ...

    def fit_params(self) -> FitParams:
        """The fit's parameters."""
        ...


@runtime_checkable
class CurveDriver(Discovers, Protocol):
    """A driver that reads firmware curves and samples steady telemetry (pyasic does)."""

    @property
    def firmware_found(self) -> tuple[str | None, ...]:
        """Each miner's firmware as discovery found it."""
        ...

    async def read_firmware_curves(self) -> tuple[FirmwareCurve | None, ...]:
        """Each miner's firmware curve, if it states one."""
        ...

    def steady_samples(self) -> tuple[IntArray, FloatArray, FloatArray]:
        """(miner, power_w, hashrate_th) of miners running steadily at their target."""
        ...


class SiteCurves:
    """One site's curve book, its driver (None for the in-process model) and who to tell."""

    def __init__(
        self,
        site_id: str,
        book: CurveBook,
        driver: CurveDriver | None,
        *,
        on_change: Callable[[tuple[GroupCurve, ...]], None] | None = None,
        samples_path: Path | None = None,
        storage: StorageHealth | None = None,
    ) -> None:
        self.site_id = site_id
        self.storage = storage or StorageHealth()
        self.book = book
        self.driver = driver
        self._on_change = on_change
        self.samples_path = samples_path
        self._saved_fit: EpochS | None = None
        self._save_failed = False
        self._reread = False  # firmware curves were read again: resolve at the next cycle
        self.firmware_read_at: EpochS | None = None

    def firmware_due(self, now: EpochS, every_s: float | None) -> bool:
        """Time to read the firmware curves again (``every_s`` None: only at start)."""
        return (
            every_s is not None
            and self.firmware_read_at is not None
            and now - self.firmware_read_at >= every_s
        )

    def reconfigure(self, settings: CurveSettings) -> None:
        """New fit settings (a reload): used from the next refit on."""
        self.book.fit = settings.fit_params()
        self.book.refit_interval_s = settings.refit_interval_s
        self.book.change_threshold = settings.change_threshold

    @property
    def curves(self) -> tuple[GroupCurve, ...]:
        """Each group's curve in use."""
        return self.book.curves

    async def start(self, now: EpochS) -> FleetSpec:
        """After discovery: read firmware curves if wanted, resolve, return the fleet to plan."""
        if self.driver is not None:
            found = self.driver.firmware_found
            curves: Sequence[FirmwareCurve | None] = [None] * len(found)
            if self.book.wants_firmware:
                curves = await self.driver.read_firmware_curves()
                self.firmware_read_at = now
            self.book.set_firmware(found, curves)
        if self.samples_path is not None and self.book.wants_learning:
            self.book.load_samples(load_samples(self.samples_path, self.site_id))
        self.book.refresh(now, force=True)
        for curve in self.book.curves:
            self._log_curve("curve_in_use", curve)
        self._notify()
        return self.fleet()

    def fleet(self) -> FleetSpec:
        """The fleet from the curves in use, restricted to what each miner can do."""
        fleet = self.book.fleet()
        if self.driver is None:
            return fleet
        self.driver.adopt_fleet(fleet)
        return self.driver.restrict_to_capabilities()

    async def reread_firmware(self, now: EpochS) -> None:
        """Read the firmware curves again (new LuxOS profiles, newly tuned BOS+ targets).

        The next ``after_cycle`` resolves with them; a group none of whose miners answered
        keeps the curve it had.
        """
        if self.driver is None or not self.book.wants_firmware:
            return
        curves = await self.driver.read_firmware_curves()
        self.book.set_firmware(self.driver.firmware_found, curves, keep_unread=True)
        self.firmware_read_at = now
        self._reread = True

    def after_cycle(self, now: EpochS) -> FleetSpec | None:
        """File this cycle's samples; a new fleet when some group's curve changed."""
        if self.driver is None:
            return None
        if self.book.wants_learning:
            miner, power_w, hashrate_th = self.driver.steady_samples()
            self.book.add_samples(miner, power_w, hashrate_th)
        elif not self._reread:
            return None
        changed = self.book.refresh(now, force=self._reread)
        self._reread = False
        self._save()
        if not changed:
            return None
        for old, new in changed:
            self._log_curve("curve_changed", new, was=old.source.value)
        self._notify()
        return self.fleet()

    def _save(self) -> None:
        """Keep the samples after each refit; a failed write is logged once, learning goes on."""
        fitted = self.book.fitted_at
        if self.samples_path is None or fitted is None or fitted == self._saved_fit:
            return
        self._saved_fit = fitted
        try:
            save_samples(self.samples_path, self.book.sample_arrays())
        except OSError as exc:
            if not self._save_failed:
                _log.warning("curve_samples_not_saved", site=self.site_id, reason=str(exc))
            self._save_failed = True
            self.storage.failed("curves", exc, logged=True)
            return
        if self._save_failed:
            _log.info("curve_samples_saved_again", site=self.site_id)
        self._save_failed = False
        self.storage.succeeded("curves", logged=True)

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change(self.book.curves)

    def _log_curve(self, event: str, curve: GroupCurve, **extra: str) -> None:
        _log.info(
            event,
            site=self.site_id,
            group=curve.group,
            model=curve.model,
            firmware=curve.firmware,
            source=curve.source.value,
            points=curve.describe_points(),
            detail=curve.detail,
            **extra,
        )


def save_samples(path: Path, samples: dict[tuple[str, str], tuple[FloatArray, FloatArray]]) -> None:
    """Write learning samples as JSON, atomically (a crash leaves the old file or the new)."""
    doc = {
        "version": 1,
        "samples": [
            {
                "model": model,
                "firmware": firmware,
                "power_w": p.tolist(),
                "hashrate_th": h.tolist(),
            }
            for (model, firmware), (p, h) in sorted(samples.items())
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load_samples(path: Path, site_id: str) -> dict[tuple[str, str], tuple[FloatArray, FloatArray]]:
    """Samples an earlier run kept; a missing file is none, a damaged one is logged and none."""
    try:
        doc: Any = json.loads(path.read_text())
        out: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = {}
        for entry in doc["samples"]:
            p = np.asarray(entry["power_w"], dtype=np.float64)
            h = np.asarray(entry["hashrate_th"], dtype=np.float64)
            if p.shape != h.shape or p.ndim != 1:
                raise ValueError("power_w and hashrate_th differ in length")
            out[(str(entry["model"]), str(entry["firmware"]))] = (p, h)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _log.warning("curve_samples_unreadable", site=site_id, path=str(path), reason=str(exc))
        return {}
    _log.info("curve_samples_loaded", site=site_id, samples=sum(p.size for p, _ in out.values()))
    return out
