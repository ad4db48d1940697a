"""Per-interval settlement of mining, supply and hedges (ECONOMICS.md, "Settlement per interval").

One function serves a single live interval and a whole replay at once: every input is an
array over intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from controller.accounting.grid_revenue import GridProgram, grid_net_usd, settle_grid
from controller.accounting.instruments import (
    HashrateForward,
    Hedge,
    ShortCall,
    Supply,
    VirtualPpa,
    active_fraction,
    as_stack,
)
from controller.accounting.supply_stack import (
    SPOT_ID,
    SupplyStack,
    mean_quantity_mw,
    settle_stack,
)
from controller.decision.overrides import Override
from controller.domain import FloatArray


@dataclass(frozen=True, slots=True)
class IntervalInputs:
    """What happened in each interval: its span, the prices that held, and what the fleet did."""

    start: FloatArray  # epoch s
    end: FloatArray  # epoch s
    price_usd_per_mwh: FloatArray
    hashprice_usd_per_ph_day: FloatArray
    running_mw: FloatArray  # time-averaged over the interval
    running_ph: FloatArray  # time-averaged over the interval
    nominal_mw: float

    @property
    def dt_h(self) -> FloatArray:
        """Interval lengths in hours."""
        return np.asarray((self.end - self.start) / 3600.0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Settlement:
    """Each settlement component per interval (USD, MWh); ``net_usd`` per ECONOMICS.md."""

    mined_mwh: FloatArray
    curtailed_mwh: FloatArray
    mining_revenue_usd: FloatArray
    power_cost_usd: FloatArray
    resale_revenue_usd: FloatArray
    call_premium_usd: FloatArray
    call_payout_usd: FloatArray
    forward_settlement_usd: FloatArray
    net_usd: FloatArray
    #: Per instrument: (instrument id, component name, USD per interval).
    by_instrument: tuple[tuple[str, str, FloatArray], ...] = ()

    def component_names(self) -> tuple[str, ...]:
        """Component field names in table order."""
        return tuple(f.name for f in fields(self) if f.name != "by_instrument")


def settle(
    inputs: IntervalInputs,
    *,
    supply: Supply,
    hedges: tuple[Hedge, ...],
    pool_fee: float,
    adders_usd_per_mwh: float = 0.0,
    grid: tuple[GridProgram, ...] = (),
    events: tuple[Override, ...] = (),
    metered_mw: FloatArray | None = None,
) -> Settlement:
    """Settle every interval. Pure; vectorised over intervals.

    ``grid`` are the site's grid programs and ``events`` the overrides in force (their
    deployments and 4CP windows): their flows go to ``by_instrument`` and into ``net_usd``
    (``controller.accounting.grid_revenue``), measured on ``metered_mw`` (what the site's
    meter read, sleeping miners included; by default the running load).
    """
    dt_h = inputs.dt_h
    price = inputs.price_usd_per_mwh
    q = inputs.running_mw
    zeros = np.zeros_like(dt_h)

    mined_mwh = q * dt_h
    curtailed_mwh = (inputs.nominal_mw - q) * dt_h
    mining = inputs.hashprice_usd_per_ph_day * (1.0 - pool_fee) * inputs.running_ph * dt_h / 24.0
    # Adders are charges on consumption, paid on every MWh burnt whatever the supply.
    adders = adders_usd_per_mwh * mined_mwh

    by_instrument: list[tuple[str, str, FloatArray]] = []
    stack = as_stack(supply)
    if not stack.tranches:  # spot supply
        cost = price * mined_mwh + adders
        resale = zeros
    else:
        # ECONOMICS.md's table: the contracts' K * Q * dt_h is the power cost; spare power
        # resold adds to the resale, load above the tranches (bought at spot) subtracts.
        flows = settle_stack(stack, inputs.start, inputs.end, price, q)
        cost = flows.contract_energy_usd.sum(axis=1) + adders
        resale = flows.resale_usd.sum(axis=1) - flows.spot_energy_usd
        if isinstance(supply, SupplyStack):
            for i, tranche in enumerate(stack.tranches):
                by_instrument += [
                    (tranche.id, "contract_energy_usd", flows.contract_energy_usd[:, i]),
                    (tranche.id, "resale_revenue_usd", flows.resale_usd[:, i]),
                ]
            by_instrument.append((SPOT_ID, "spot_energy_usd", flows.spot_energy_usd))

    premium = zeros.copy()
    payout = zeros.copy()
    forward = zeros.copy()
    for hedge in hedges:
        share = active_fraction(hedge.start, hedge.end, inputs.start, inputs.end)
        match hedge:
            case ShortCall(quantity_mw=qc, strike_usd_per_mwh=strike, premium_usd_per_mwh=prem):
                p_in = prem * qc * dt_h * share
                p_out = np.maximum(price - strike, 0.0) * qc * dt_h * share
                premium += p_in
                payout += p_out
                by_instrument += [
                    (hedge.id, "call_premium_usd", p_in),
                    (hedge.id, "call_payout_usd", p_out),
                ]
            case HashrateForward(hashrate_ph=hc, price_usd_per_ph_day=hpf):
                f = (hpf - inputs.hashprice_usd_per_ph_day) * hc * dt_h / 24.0 * share
                forward += f
                by_instrument.append((hedge.id, "forward_settlement_usd", f))
            case VirtualPpa(quantity=qty, price_usd_per_mwh=k):
                # A swap fixes the price of power: booked against the power cost.
                swap = (price - k) * mean_quantity_mw(qty, inputs.start, inputs.end) * dt_h * share
                cost = cost - swap
                by_instrument.append((hedge.id, "swap_settlement_usd", swap))

    grid_flows = settle_grid(
        grid,
        events,
        start=inputs.start,
        end=inputs.end,
        running_mw=q if metered_mw is None else metered_mw,
        nominal_mw=inputs.nominal_mw,
    )
    by_instrument += grid_flows
    net = mining + resale + premium - payout + forward - cost + grid_net_usd(grid_flows, q.size)
    return Settlement(
        mined_mwh=mined_mwh,
        curtailed_mwh=curtailed_mwh,
        mining_revenue_usd=mining,
        power_cost_usd=np.asarray(cost, dtype=np.float64),
        resale_revenue_usd=np.asarray(resale, dtype=np.float64),
        call_premium_usd=premium,
        call_payout_usd=payout,
        forward_settlement_usd=forward,
        net_usd=np.asarray(net, dtype=np.float64),
        by_instrument=tuple(by_instrument),
    )


def settle_down(
    start: FloatArray, end: FloatArray, *, supply: Supply, hedges: tuple[Hedge, ...]
) -> Settlement:
    """Settle spans in which the daemon settled nothing (down intervals). Pure; vectorised.

    What accrues whether or not the daemon runs is booked: each tranche's ``K * Q * dt_h``
    (``Q`` its time-weighted mean over the span)
    and each short call's premium over its term. What depends on what the miners did or on
    prices nobody observed is not known, and not booked (0 here; the ledger flags the row
    ``down``): energy, mining revenue, spot power cost, consumption adders, resale, call
    payouts, forward settlements. ``net_usd`` is the net of what is booked.
    """
    dt_h = np.asarray((end - start) / 3600.0, dtype=np.float64)
    zeros = np.zeros_like(dt_h)
    stack = as_stack(supply)
    by_instrument: list[tuple[str, str, FloatArray]] = []
    cost = zeros.copy()
    for tranche in stack.tranches:
        fixed = tranche.price_usd_per_mwh * mean_quantity_mw(tranche.quantity, start, end) * dt_h
        cost = cost + fixed
        if isinstance(supply, SupplyStack):
            by_instrument.append((tranche.id, "contract_energy_usd", fixed))
    premium = zeros.copy()
    for hedge in hedges:
        if isinstance(hedge, ShortCall):
            share = active_fraction(hedge.start, hedge.end, start, end)
            p_in = hedge.premium_usd_per_mwh * hedge.quantity_mw * dt_h * share
            premium += p_in
            by_instrument.append((hedge.id, "call_premium_usd", p_in))
    return Settlement(
        mined_mwh=zeros,
        curtailed_mwh=zeros,
        mining_revenue_usd=zeros,
        power_cost_usd=np.asarray(cost, dtype=np.float64),
        resale_revenue_usd=zeros,
        call_premium_usd=premium,
        call_payout_usd=zeros,
        forward_settlement_usd=zeros,
        net_usd=np.asarray(premium - cost, dtype=np.float64),
        by_instrument=tuple(by_instrument),
    )
