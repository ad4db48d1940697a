"""Restating a settled interval on corrected prices: the same settlement, as integer differences.

A correction never overwrites what was booked. It re-runs ``settle`` (the arithmetic the site
loop booked the interval with) on what the fleet did in the interval and the corrected price
or hashprice, and books, per money component and instrument flow, the difference between the
result and what the interval stands at now (as booked, plus any earlier corrections), in whole
micro-dollars. So original + corrections = corrected, exactly, and a second correction of the
same interval corrects the first.

Before anything is restated, the interval's booked amounts must be reproduced to the
micro-dollar by the same settlement on its booked inputs and the given site terms. An
interval that is not (settled under other terms, or on inputs the ledger does not keep: a grid
event's metered draw, an option's averaging period spanning other intervals) is not restated:
a correction computed from terms other than those it was booked with would be wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.accounting.accrual import settle_on_site
from controller.accounting.money import MONEY_COMPONENTS, to_micro_usd, usd_text
from controller.accounting.settlement import IntervalInputs
from controller.domain import EpochS
from controller.records import IntervalRecord
from controller.site_model import SiteModel

FlowKey = tuple[str, str]  # (instrument id, component)


@dataclass(frozen=True, slots=True)
class Amounts:
    """An interval's money in micro-dollars: each money component and each instrument flow."""

    components: dict[str, int]  # MONEY_COMPONENTS
    flows: dict[FlowKey, int]

    @classmethod
    def of(cls, record: IntervalRecord) -> Amounts:
        """What ``record`` books."""
        return cls(
            {c: to_micro_usd(record.component(c)) for c in MONEY_COMPONENTS},
            {(i, c): to_micro_usd(usd) for i, c, usd in record.instruments},
        )

    def plus(self, deltas: Amounts) -> Amounts:
        """These amounts corrected by ``deltas``."""
        flows = dict(self.flows)
        for key, delta in deltas.flows.items():
            flows[key] = flows.get(key, 0) + delta
        return Amounts(
            {c: v + deltas.components.get(c, 0) for c, v in self.components.items()}, flows
        )

    def minus(self, other: Amounts) -> Amounts:
        """The difference ``self - other``, component by component and flow by flow."""
        keys = list(dict.fromkeys((*self.flows, *other.flows)))
        return Amounts(
            {c: v - other.components[c] for c, v in self.components.items()},
            {k: self.flows.get(k, 0) - other.flows.get(k, 0) for k in keys},
        )

    def same_as(self, other: Amounts) -> bool:
        """Equal components and flows (a flow absent on one side counts as 0)."""
        return not any(self.minus(other).components.values()) and not any(
            self.minus(other).flows.values()
        )


@dataclass(frozen=True, slots=True)
class Restated:
    """One interval's correction: the inputs it now settles on and the differences."""

    site_id: str
    start: EpochS
    end: EpochS
    price_usd_per_mwh: float
    hashprice_usd_per_ph_day: float
    deltas: Amounts


@dataclass(frozen=True, slots=True)
class NotReproduced:
    """The interval's booked amounts are not what the settlement gives on its booked inputs."""

    component: str
    booked_micro_usd: int
    resettled_micro_usd: int

    @property
    def reason(self) -> str:
        """One line: which amount differs, by how much."""
        return (
            f"its booked {self.component} ({usd_text(self.booked_micro_usd)} USD) is not "
            f"reproduced by the settlement on its booked inputs and these terms "
            f"({usd_text(self.resettled_micro_usd)} USD)"
        )


def resettle(record: IntervalRecord, site: SiteModel, *, price: float, hashprice: float) -> Amounts:
    """``record``'s interval settled on ``price`` and ``hashprice`` under ``site``'s terms,
    with what the fleet did in it (its time-averaged load and hashrate), to the micro-dollar."""
    inputs = IntervalInputs(
        start=np.array([record.start]),
        end=np.array([record.end]),
        price_usd_per_mwh=np.array([price]),
        hashprice_usd_per_ph_day=np.array([hashprice]),
        running_mw=np.array([record.running_mw]),
        running_ph=np.array([record.running_ph]),
        nominal_mw=record.nominal_mw,
        day_ahead_usd_per_mwh=np.array([np.nan]),
    )
    result = settle_on_site(inputs, site)
    return Amounts(
        {c: to_micro_usd(float(getattr(result, c)[0])) for c in MONEY_COMPONENTS},
        {(i, c): to_micro_usd(float(v[0])) for i, c, v in result.by_instrument},
    )


def restate(
    record: IntervalRecord,
    site: SiteModel,
    now: Amounts,
    *,
    price: float,
    hashprice: float,
) -> Restated | NotReproduced:
    """The correction of ``record``'s interval, standing at ``now``, to ``price`` and
    ``hashprice``; or why it cannot be computed."""
    booked = Amounts.of(record)
    check = resettle(
        record, site, price=record.price_usd_per_mwh, hashprice=record.hashprice_usd_per_ph_day
    )
    if not check.same_as(booked):
        diff = check.minus(booked)
        for name, delta in diff.components.items():
            if delta:
                return NotReproduced(name, booked.components[name], check.components[name])
        key = next(k for k, delta in diff.flows.items() if delta)
        return NotReproduced(
            f"{key[0]} {key[1]}", booked.flows.get(key, 0), check.flows.get(key, 0)
        )
    corrected = resettle(record, site, price=price, hashprice=hashprice)
    return Restated(
        record.site_id, record.start, record.end, price, hashprice, corrected.minus(now)
    )
