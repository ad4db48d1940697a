"""Totals, per-day and per-model breakdowns of settled intervals (the replay's JSON report).

The tables are the frozen dataclasses of ``report_types``.
"""

from __future__ import annotations

import numpy as np

from controller.accounting.report_types import (
    TOTAL_KEYS,
    DayRow,
    GridEventResult,
    InstrumentRow,
    ModelRow,
    Report,
    Summary,
    Totals,
    Window,
)
from controller.decision.economics import (
    energy_hashprice_usd_per_mwh,
    hashspark_spread_usd_per_mwh,
    net_hashprice,
)
from controller.decision.overrides import Override
from controller.domain import FleetSpec, FloatArray, iso
from controller.records import COMPONENTS, IntervalTable

__all__ = ["TOTAL_KEYS", "build_report", "grid_compliance", "per_instrument", "totals"]

#: Running below this share of nominal power counts as curtailed (float noise aside).
_CURTAILED_TOLERANCE = 1e-9


def totals(table: IntervalTable, mask: np.ndarray | None = None) -> Totals:
    """Sum every component over the intervals selected by ``mask`` (all by default)."""
    sel = slice(None) if mask is None else mask
    dt_h = table.inputs.dt_h[sel]
    components = {name: float(getattr(table.settlement, name)[sel].sum()) for name in COMPONENTS}
    return Totals(intervals=int(dt_h.size), hours=float(dt_h.sum()), **components)


def per_instrument(table: IntervalTable) -> tuple[InstrumentRow, ...]:
    """Each instrument's and supply tranche's flows summed over the window, in book order."""
    sums: dict[tuple[str, str], float] = {}
    for inst, component, usd in table.settlement.by_instrument:
        sums[inst, component] = sums.get((inst, component), 0.0) + float(usd.sum())
    return tuple(InstrumentRow(i, c, usd) for (i, c), usd in sums.items())


def _curtailed(table: IntervalTable) -> np.ndarray:
    nominal = table.inputs.nominal_mw
    return np.asarray(table.inputs.running_mw < nominal * (1 - _CURTAILED_TOLERANCE))


def build_report(
    table: IntervalTable,
    fleet: FleetSpec,
    *,
    pool_fee: float,
    ppa_price_usd_per_mwh: float | None,
    forward_usd_per_ph_day: float | None,
    hedged_share: float | None = None,
) -> Report:
    """The replay report: metadata, ``totals``, a summary, per-day and per-model tables.

    ``forward_usd_per_ph_day`` is the forwards' price in term over the window and
    ``hedged_share`` the share of the fleet's hashrate they sell (``SiteModel.spread``).
    """
    inputs = table.inputs
    dt_h = inputs.dt_h
    total = totals(table)
    curtailed = _curtailed(table)
    fully = inputs.running_mw <= 0.0
    fleet_eff = float(fleet.nominal_power_w.sum() / fleet.nominal_hashrate_th.sum())
    spread = floor = None
    if ppa_price_usd_per_mwh is not None and forward_usd_per_ph_day is not None:
        spread = hashspark_spread_usd_per_mwh(
            forward_usd_per_ph_day, pool_fee, fleet_eff, ppa_price_usd_per_mwh
        )
        if hedged_share is not None:
            floor = hedged_share * (spread + ppa_price_usd_per_mwh) - ppa_price_usd_per_mwh
    mined = total.mined_mwh
    summary = Summary(
        nominal_mw=fleet.nominal_mw,
        miners=fleet.size,
        fleet_efficiency_j_per_th=fleet_eff,
        curtailed_hours=float(dt_h[curtailed].sum()),
        fully_curtailed_hours=float(dt_h[fully].sum()),
        curtailed_intervals=int(curtailed.sum()),
        failsafe_hours=float(dt_h[table.failsafe].sum()),
        net_margin_usd_per_mwh=total.net_usd / mined if mined > 0 else None,
        hashspark_spread_usd_per_mwh=spread,
        hedged_share=hedged_share if spread is not None else None,
        margin_floor_usd_per_mwh=floor,
    )
    return Report(
        window=Window(iso(float(inputs.start[0])), iso(float(inputs.end[-1]))),
        totals=total,
        summary=summary,
        per_day=_per_day(table),
        per_model=_per_model(table, fleet, pool_fee),
    )


def grid_compliance(
    table: IntervalTable, events: tuple[Override, ...]
) -> tuple[GridEventResult, ...]:
    """Per grid event: the fleet's load while it was in force, and whether it complied.

    Caps (demand response from its deadline, peak windows, forced curtailment) comply when
    every interval's average load is at or under the cap; a base point when every interval
    is within its tolerance of the target.
    """
    t0 = table.inputs.start
    mw = table.inputs.running_mw
    rows = []
    for e in events:
        measured_from = e.deadline if e.deadline is not None else e.start
        inside = (t0 >= measured_from) & (t0 < e.end)
        loads = mw[inside]
        target = e.cap_mw
        compliant: bool | None = None
        if loads.size and target is not None:
            if e.kind == "base_point":
                compliant = bool(np.all(np.abs(loads - target) <= e.tolerance_mw + 1e-9))
            else:
                compliant = bool(np.all(loads <= target + 1e-9))
        rows.append(
            GridEventResult(
                id=e.id,
                program=e.kind,
                start=iso(e.start),
                end=iso(e.end),
                measured_from=iso(measured_from),
                target_mw=target,
                tolerance_mw=e.tolerance_mw if e.kind == "base_point" else None,
                intervals=int(loads.size),
                max_mw=float(loads.max()) if loads.size else None,
                min_mw=float(loads.min()) if loads.size else None,
                compliant=compliant,
            )
        )
    return tuple(rows)


def _per_day(table: IntervalTable) -> tuple[DayRow, ...]:
    """Totals per UTC day of each interval's start."""
    day = np.floor(table.inputs.start / 86_400.0).astype(np.int64)
    days, inverse = np.unique(day, return_inverse=True)
    dt_h = table.inputs.dt_h
    columns: dict[str, FloatArray] = {
        "intervals": _by_day(inverse, np.ones_like(dt_h), days.size),
        "hours": _by_day(inverse, dt_h, days.size),
    }
    for name in COMPONENTS:
        columns[name] = _by_day(inverse, getattr(table.settlement, name), days.size)
    curtailed_h = np.bincount(inverse, weights=dt_h * _curtailed(table), minlength=days.size)
    return tuple(
        DayRow(
            date=iso(float(d) * 86_400.0)[:10],
            totals=Totals(
                intervals=int(columns["intervals"][i]),
                **{k: float(v[i]) for k, v in columns.items() if k != "intervals"},
            ),
            curtailed_hours=float(curtailed_h[i]),
        )
        for i, d in enumerate(days)
    )


def _by_day(inverse: np.ndarray, weights: FloatArray, n_days: int) -> FloatArray:
    return np.asarray(np.bincount(inverse, weights=weights, minlength=n_days), dtype=np.float64)


def _per_model(table: IntervalTable, fleet: FleetSpec, pool_fee: float) -> tuple[ModelRow, ...]:
    """Energy, revenue and curtailment per miner model."""
    dt_h = table.inputs.dt_h
    hpn = net_hashprice(table.inputs.hashprice_usd_per_ph_day, pool_fee)
    rows = []
    for m, name in enumerate(fleet.model_names):
        members = fleet.model_index == m
        nominal_mw = float(fleet.nominal_power_w[members].sum()) / 1e6
        nominal_th = float(fleet.nominal_hashrate_th[members].sum())
        eff = nominal_mw * 1e6 / nominal_th
        mw = table.model_running_mw[:, m]
        ph = table.model_running_ph[:, m]
        curtailed = mw < nominal_mw * (1 - _CURTAILED_TOLERANCE)
        ehp = energy_hashprice_usd_per_mwh(hpn, np.full_like(hpn, eff))
        rows.append(
            ModelRow(
                model=name,
                miners=int(members.sum()),
                nominal_mw=nominal_mw,
                efficiency_j_per_th=eff,
                mined_mwh=float((mw * dt_h).sum()),
                curtailed_mwh=float(((nominal_mw - mw) * dt_h).sum()),
                mining_revenue_usd=float((hpn * ph * dt_h / 24.0).sum()),
                curtailed_hours=float(dt_h[curtailed].sum()),
                mean_energy_hashprice_usd_per_mwh=float((ehp * dt_h).sum() / dt_h.sum()),
            )
        )
    return tuple(rows)
