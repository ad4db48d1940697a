"""Settlement intervals in the site loop: integrate the fleet's load, settle on close.

An interval is a span over which the inputs hold. The loop reports the load after each
cycle's actuation; the accumulator integrates it over time, so a change between two price
observations is accounted for exactly as long as it lasted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from controller.accounting.settlement import IntervalInputs, settle
from controller.domain import EpochS, FloatArray, Reading
from controller.records import IntervalRecord
from controller.site_model import SiteModel

#: (price observed_at, hashprice observed_at, price stale, hashprice stale, active overrides)
IntervalKey = tuple[float, float, bool, bool, tuple[str, ...]]


@dataclass(slots=True)
class _Open:
    start: EpochS
    key: IntervalKey
    price: Reading
    hashprice: Reading
    failsafe: str | None
    opportunity_cost: float | None
    running: int
    curtailed: int
    model_mwh: FloatArray = field(default_factory=lambda: np.zeros(0))
    model_ph_h: FloatArray = field(default_factory=lambda: np.zeros(0))


class IntervalAccumulator:
    """Tracks the open interval and the fleet's load; produces settled records."""

    def __init__(self, site: SiteModel) -> None:
        self.site = site
        n_models = len(site.fleet.model_names)
        self._load_mw = np.zeros(n_models)
        self._load_ph = np.zeros(n_models)
        self._load_since: EpochS | None = None
        self._open: _Open | None = None

    @property
    def open_key(self) -> IntervalKey | None:
        """Identity of the open interval's inputs, or None."""
        return None if self._open is None else self._open.key

    def set_load(self, model_mw: FloatArray, model_ph: FloatArray, now: EpochS) -> None:
        """The fleet's load from ``now`` on, per model (MW, PH/s)."""
        self.accrue(now)
        self._load_mw = model_mw
        self._load_ph = model_ph
        self._load_since = now

    def accrue(self, now: EpochS) -> None:
        """Integrate the current load up to ``now`` into the open interval."""
        if self._load_since is None or now <= self._load_since:
            return
        if self._open is not None:
            dt_h = (now - self._load_since) / 3600.0
            self._open.model_mwh = self._open.model_mwh + self._load_mw * dt_h
            self._open.model_ph_h = self._open.model_ph_h + self._load_ph * dt_h
        self._load_since = now

    def open(
        self,
        now: EpochS,
        key: IntervalKey,
        price: Reading,
        hashprice: Reading,
        *,
        failsafe: str | None,
        opportunity_cost: float | None,
        running: int,
        curtailed: int,
    ) -> None:
        """Start an interval at ``now`` (the load must already be set from ``now``)."""
        self._open = _Open(
            now,
            key,
            price,
            hashprice,
            failsafe,
            opportunity_cost,
            running,
            curtailed,
            model_mwh=np.zeros_like(self._load_mw),
            model_ph_h=np.zeros_like(self._load_ph),
        )

    def close(self, end: EpochS) -> IntervalRecord | None:
        """Settle the open interval up to ``end``; None if there was none (or it is empty)."""
        self.accrue(end)
        interval, self._open = self._open, None
        if interval is None or end <= interval.start:
            return None
        dt_h = (end - interval.start) / 3600.0
        model_mw = interval.model_mwh / dt_h
        model_ph = interval.model_ph_h / dt_h
        site = self.site
        inputs = IntervalInputs(
            start=np.array([interval.start]),
            end=np.array([end]),
            price_usd_per_mwh=np.array([interval.price.value]),
            hashprice_usd_per_ph_day=np.array([interval.hashprice.value]),
            running_mw=np.array([model_mw.sum()]),
            running_ph=np.array([model_ph.sum()]),
            nominal_mw=site.fleet.nominal_mw,
        )
        result = settle(
            inputs,
            supply=site.supply,
            hedges=site.hedges,
            pool_fee=site.params.pool_fee,
            adders_usd_per_mwh=site.params.adders_usd_per_mwh,
        )
        return IntervalRecord(
            site_id=site.site_id,
            start=interval.start,
            end=end,
            price_usd_per_mwh=interval.price.value,
            price_source=interval.price.source,
            hashprice_usd_per_ph_day=interval.hashprice.value,
            hashprice_source=interval.hashprice.source,
            running_mw=float(inputs.running_mw[0]),
            running_ph=float(inputs.running_ph[0]),
            nominal_mw=inputs.nominal_mw,
            model_running_mw=tuple(float(x) for x in model_mw),
            model_running_ph=tuple(float(x) for x in model_ph),
            failsafe=interval.failsafe,
            components=tuple(float(getattr(result, name)[0]) for name in result.component_names()),
            instruments=tuple((i, c, float(v[0])) for i, c, v in result.by_instrument),
            opportunity_cost_usd_per_mwh=interval.opportunity_cost,
            miners_running=interval.running,
            miners_curtailed=interval.curtailed,
        )
