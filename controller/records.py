"""A settled interval as the ledger stores it, and arrays of them for reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from controller.accounting.settlement import IntervalInputs, Settlement
from controller.domain import EpochS, FloatArray

COMPONENTS = (
    "mined_mwh",
    "curtailed_mwh",
    "mining_revenue_usd",
    "power_cost_usd",
    "resale_revenue_usd",
    "call_premium_usd",
    "call_payout_usd",
    "forward_settlement_usd",
    "net_usd",
)

#: ``settled``: the daemon settled the interval on the prices that held and what the fleet
#: did. ``down``: it settled nothing there (it was stopped, or started without both readings
#: yet): only what accrues regardless is booked, the rest is unknown (``settle_down``).
IntervalKind = Literal["settled", "down"]


@dataclass(frozen=True, slots=True)
class IntervalRecord:
    """One site's settled interval: its inputs, what the fleet did, and every component."""

    site_id: str
    start: EpochS
    end: EpochS
    price_usd_per_mwh: float
    price_source: str
    hashprice_usd_per_ph_day: float
    hashprice_source: str
    running_mw: float
    running_ph: float
    nominal_mw: float
    model_running_mw: tuple[float, ...]
    model_running_ph: tuple[float, ...]
    failsafe: str | None
    components: tuple[float, ...]  # in COMPONENTS order
    instruments: tuple[tuple[str, str, float], ...] = ()  # (instrument id, component, USD)
    opportunity_cost_usd_per_mwh: float | None = None
    miners_running: int = 0
    miners_curtailed: int = 0
    kind: IntervalKind = "settled"

    def component(self, name: str) -> float:
        """One settlement component by name."""
        return self.components[COMPONENTS.index(name)]


@dataclass(frozen=True, slots=True)
class IntervalTable:
    """Columns over many intervals: what reports and the fast path work on."""

    inputs: IntervalInputs
    settlement: Settlement
    model_running_mw: FloatArray  # (T, M)
    model_running_ph: FloatArray  # (T, M)
    failsafe: np.ndarray  # (T,) bool: a fail-safe decided the interval

    @classmethod
    def from_records(cls, records: Sequence[IntervalRecord], n_models: int) -> IntervalTable:
        """Stack ledger records into columns."""

        def col(values: list[float]) -> FloatArray:
            return np.asarray(values, dtype=np.float64)

        comps = np.asarray([r.components for r in records], dtype=np.float64).reshape(
            len(records), len(COMPONENTS)
        )
        nominal = records[0].nominal_mw if records else 0.0
        inputs = IntervalInputs(
            start=col([r.start for r in records]),
            end=col([r.end for r in records]),
            price_usd_per_mwh=col([r.price_usd_per_mwh for r in records]),
            hashprice_usd_per_ph_day=col([r.hashprice_usd_per_ph_day for r in records]),
            running_mw=col([r.running_mw for r in records]),
            running_ph=col([r.running_ph for r in records]),
            nominal_mw=nominal,
        )
        c = {name: comps[:, i] for i, name in enumerate(COMPONENTS)}
        settlement = Settlement(
            mined_mwh=c["mined_mwh"],
            curtailed_mwh=c["curtailed_mwh"],
            mining_revenue_usd=c["mining_revenue_usd"],
            power_cost_usd=c["power_cost_usd"],
            resale_revenue_usd=c["resale_revenue_usd"],
            call_premium_usd=c["call_premium_usd"],
            call_payout_usd=c["call_payout_usd"],
            forward_settlement_usd=c["forward_settlement_usd"],
            net_usd=c["net_usd"],
            by_instrument=_instrument_columns(records),
        )
        return cls(
            inputs=inputs,
            settlement=settlement,
            model_running_mw=np.asarray([r.model_running_mw for r in records]).reshape(
                -1, n_models
            ),
            model_running_ph=np.asarray([r.model_running_ph for r in records]).reshape(
                -1, n_models
            ),
            failsafe=np.asarray([r.failsafe is not None for r in records], dtype=bool),
        )


def _instrument_columns(
    records: Sequence[IntervalRecord],
) -> tuple[tuple[str, str, FloatArray], ...]:
    """Each (instrument, component) flow as a column over the records (0 where absent)."""
    keys: dict[tuple[str, str], None] = {}
    for r in records:
        for i, c, _ in r.instruments:
            keys.setdefault((i, c), None)
    index = {k: n for n, k in enumerate(keys)}
    cols = np.zeros((len(index), len(records)))
    for t, r in enumerate(records):
        for i, c, usd in r.instruments:
            cols[index[i, c], t] += usd
    return tuple((i, c, cols[n]) for (i, c), n in index.items())
