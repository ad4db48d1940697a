"""A site's curves at run time: firmware curves at start, learning between cycles, re-planning.

The book (``controller.curves``) decides which curve each group uses; this wires it to the
site's driver and loop. At start, after discovery, firmware curves are read if any group
may use them and the fleet is rebuilt from the curves in use. After each cycle the
driver's steady telemetry is filed as samples; when a refit changes a group's curve, the
driver and the loop adopt the new fleet. Each curve in use is logged once at start and
once per change, with its source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from controller.curves import CurveBook, FirmwareCurve, GroupCurve
from controller.domain import EpochS, FleetSpec, FloatArray, IntArray

_log = structlog.get_logger("hashspark.curves")


class CurveDriver(Protocol):
    """What a driver offers for curves (the pyasic driver does)."""

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

    def adopt_fleet(self, fleet: FleetSpec) -> None:
        """Use new curves for the same miners."""
        ...

    def restrict_to_capabilities(self) -> FleetSpec:
        """The fleet with the points each miner cannot reach removed, adopted."""
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
    ) -> None:
        self.site_id = site_id
        self.book = book
        self.driver = driver
        self._on_change = on_change

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
            self.book.set_firmware(found, curves)
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

    def after_cycle(self, now: EpochS) -> FleetSpec | None:
        """File this cycle's samples; a new fleet when some group's curve changed."""
        if self.driver is None or not self.book.wants_learning:
            return None
        miner, power_w, hashrate_th = self.driver.steady_samples()
        self.book.add_samples(miner, power_w, hashrate_th)
        changed = self.book.refresh(now)
        if not changed:
            return None
        for old, new in changed:
            self._log_curve("curve_changed", new, was=old.source.value)
        self._notify()
        return self.fleet()

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
