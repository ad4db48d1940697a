"""Settlement intervals in the site loop: integrate the fleet's load, settle on close.

An interval is a span over which the inputs hold. The loop reports the load after each
cycle's actuation; the accumulator integrates it over time, so a change between two price
observations is accounted for exactly as long as it lasted.

No time goes unbooked: new settlement terms (a reload) continue the open interval, or split
it at the instant they apply, and the span from where the ledger ended to the first interval
a run opens is booked as a ``down`` interval (``settle_down``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from controller.accounting.bitcoin import BitcoinCarry
from controller.accounting.options import OptionCarry
from controller.accounting.settlement import IntervalInputs, Settlement, settle, settle_down
from controller.decision.overrides import Override
from controller.domain import EpochS, FloatArray, Reading
from controller.records import IntervalRecord
from controller.site_model import SiteModel

#: (price observed_at, hashprice observed_at, price stale, hashprice stale, active overrides,
#: contract tranches' quantities)
IntervalKey = tuple[float, float, bool, bool, tuple[str, ...], tuple[float, ...]]


def settlement_terms(site: SiteModel) -> tuple[object, ...]:
    """What settling an interval reads from the site model: equal terms settle alike."""
    return (
        site.site_id,
        site.supply,
        site.hedges,
        site.params.pool_fee,
        site.params.adders_usd_per_mwh,
        site.fleet.nominal_mw,
        site.grid,
    )


def settle_on_site(
    inputs: IntervalInputs,
    site: SiteModel,
    *,
    option_carry: OptionCarry = (),
    bitcoin_carry: tuple[tuple[str, BitcoinCarry], ...] = (),
    events: tuple[Override, ...] = (),
    metered_mw: FloatArray | None = None,
) -> Settlement:
    """``settle`` on ``site``'s terms (its supply, hedges, pool fee, adders and grid programs):
    the one call the site loop books an interval with and a restatement re-runs."""
    return settle(
        inputs,
        supply=site.supply,
        hedges=site.hedges,
        pool_fee=site.params.pool_fee,
        adders_usd_per_mwh=site.params.adders_usd_per_mwh,
        option_carry=option_carry,
        bitcoin_carry=bitcoin_carry,
        grid=site.grid,
        events=events,
        metered_mw=metered_mw,
    )


def down_record(site: SiteModel, start: EpochS, end: EpochS) -> IntervalRecord:
    """The ``down`` interval ``[start, end)``: fixed costs and premiums booked, the rest unknown
    (held as 0, the row says ``down``: see docs/ledger-and-metrics.md)."""
    result = settle_down(np.array([start]), np.array([end]), supply=site.supply, hedges=site.hedges)
    n_models = len(site.fleet.model_names)
    return IntervalRecord(
        site_id=site.site_id,
        start=start,
        end=end,
        price_usd_per_mwh=0.0,
        price_source="unknown",
        hashprice_usd_per_ph_day=0.0,
        hashprice_source="unknown",
        running_mw=0.0,
        running_ph=0.0,
        nominal_mw=site.fleet.nominal_mw,
        model_running_mw=(0.0,) * n_models,
        model_running_ph=(0.0,) * n_models,
        failsafe=None,
        components=tuple(float(getattr(result, name)[0]) for name in result.component_names()),
        instruments=tuple((i, c, float(v[0])) for i, c, v in result.by_instrument),
        kind="down",
    )


def _optional(value: float | None) -> FloatArray:
    """One interval's value, NaN when the feed has not been heard (it settles nothing)."""
    return np.array([np.nan if value is None else value])


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
    day_ahead: float | None = None
    bitcoin: tuple[float | None, float | None] = (None, None)  # BTC/USD, difficulty (1e12)
    model_mwh: FloatArray = field(default_factory=lambda: np.zeros(0))
    model_ph_h: FloatArray = field(default_factory=lambda: np.zeros(0))
    overrides: tuple[Override, ...] = ()  # in force at the open: deployments, 4CP windows
    metered_mwh: float = 0.0  # what the meter saw: running load plus sleeping miners' draw


class IntervalAccumulator:
    """Tracks the open interval and the fleet's load; produces settled records."""

    def __init__(self, site: SiteModel) -> None:
        self.site = site
        n_models = len(site.fleet.model_names)
        self._load_mw = np.zeros(n_models)
        self._load_ph = np.zeros(n_models)
        self._draw_mw = 0.0
        self._load_since: EpochS | None = None
        self._open: _Open | None = None
        self._down_from: EpochS | None = None
        self._option_carry: OptionCarry = ()
        self._bitcoin_carry: tuple[tuple[str, BitcoinCarry], ...] = ()

    def resume_from(self, booked_until: EpochS | None) -> None:
        """The ledger is booked up to ``booked_until``: the first interval opened (or the
        finish, if none opens) books the span from there as ``down``."""
        self._down_from = booked_until

    def rebase(self, site: SiteModel, at: EpochS) -> IntervalRecord | None:
        """Settle from ``at`` on under ``site``'s terms, losing no time.

        Same settlement terms: the open interval goes on. Other terms: it is settled up to
        ``at`` on the old ones and goes on from ``at`` on the new, with the same inputs.
        """
        old, self.site = self.site, site
        if settlement_terms(old) == settlement_terms(site) or self._open is None:
            return None
        self.site = old
        interval = self._open
        record = self.close(at)
        self.site = site
        self._open = replace(
            interval,
            start=max(at, interval.start),
            model_mwh=np.zeros_like(self._load_mw),
            model_ph_h=np.zeros_like(self._load_ph),
            metered_mwh=0.0,
        )
        return record

    @property
    def open_key(self) -> IntervalKey | None:
        """Identity of the open interval's inputs, or None."""
        return None if self._open is None else self._open.key

    def set_load(
        self, model_mw: FloatArray, model_ph: FloatArray, now: EpochS, draw_mw: float | None = None
    ) -> None:
        """The fleet's load from ``now`` on, per model (MW, PH/s); ``draw_mw`` is what the
        meter reads (sleeping miners included), by default the running load."""
        self.accrue(now)
        self._load_mw = model_mw
        self._load_ph = model_ph
        self._draw_mw = float(model_mw.sum()) if draw_mw is None else draw_mw
        self._load_since = now

    def accrue(self, now: EpochS) -> None:
        """Integrate the current load up to ``now`` into the open interval."""
        if self._load_since is None or now <= self._load_since:
            return
        if self._open is not None:
            dt_h = (now - self._load_since) / 3600.0
            self._open.model_mwh = self._open.model_mwh + self._load_mw * dt_h
            self._open.model_ph_h = self._open.model_ph_h + self._load_ph * dt_h
            self._open.metered_mwh += self._draw_mw * dt_h
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
        day_ahead: float | None = None,
        bitcoin: tuple[float | None, float | None] = (None, None),
        overrides: tuple[Override, ...] = (),
    ) -> IntervalRecord | None:
        """Start an interval at ``now`` (the load must already be set from ``now``).

        ``day_ahead`` is the day-ahead price holding at ``now`` (for options settled on it);
        the interval settles on it throughout, as the fast engine does, and so on ``bitcoin``
        (the BTC price and difficulty holding at ``now``). ``overrides`` are the
        ones active at ``now``; a change closes the interval (its key).

        Returns the ``down`` interval from where the ledger ended, on a run's first open.
        """
        down = self.take_down(now)
        self._open = _Open(
            now,
            key,
            price,
            hashprice,
            failsafe,
            opportunity_cost,
            running,
            curtailed,
            day_ahead,
            bitcoin,
            model_mwh=np.zeros_like(self._load_mw),
            model_ph_h=np.zeros_like(self._load_ph),
            overrides=overrides,
        )
        return down

    def take_down(self, end: EpochS) -> IntervalRecord | None:
        """The ``down`` interval up to ``end`` if one is owed (once), else None."""
        start, self._down_from = self._down_from, None
        if start is None or end <= start:
            return None
        return down_record(self.site, start, end)

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
            day_ahead_usd_per_mwh=np.array(
                [np.nan if interval.day_ahead is None else interval.day_ahead]
            ),
            btc_usd_per_btc=_optional(interval.bitcoin[0]),
            difficulty_t=_optional(interval.bitcoin[1]),
        )
        result = settle_on_site(
            inputs,
            site,
            option_carry=self._option_carry,
            bitcoin_carry=self._bitcoin_carry,
            events=interval.overrides,
            metered_mw=np.array([interval.metered_mwh / dt_h]),
        )
        self._option_carry = result.option_carry
        self._bitcoin_carry = result.bitcoin_carry
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
