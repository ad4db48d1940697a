"""Per-interval settlement of mining, supply and hedges (ECONOMICS.md, "Settlement per interval").

One function serves a single live interval and a whole replay at once: every input is an
array over intervals.

Over 300 lines: every hedge kind's booking into the settlement's totals sits in one match,
so the net's composition is one place to read.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from controller.accounting.bitcoin import (
    BTC_CALL_PAYOUT,
    BTC_FORWARD,
    BTC_OPTION_PREMIUM,
    BTC_PUT_PAYOUT,
    BitcoinCarry,
    BitcoinHedge,
    BtcForward,
    BtcOptionStrip,
    DifficultySwap,
    References,
    VolatilitySwap,
    settle_bitcoin,
)
from controller.accounting.grid_revenue import GridProgram, grid_net_usd, settle_grid
from controller.accounting.instruments import (
    HashrateForward,
    Hedge,
    PoolPayout,
    ShortCall,
    Supply,
    VirtualPpa,
    active_fraction,
    as_stack,
)
from controller.accounting.options import Option, OptionCarry, option_premium, settle_option
from controller.accounting.pool_payout import FIXED_RATE, SHORTFALL_CHARGE, settle_pool
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
    #: The day-ahead price that holds in each interval, where a day-ahead feed is configured.
    day_ahead_usd_per_mwh: FloatArray | None = None
    #: The BTC/USD price and the difficulty (units of 1e12) that hold in each interval,
    #: where the site has those feeds (Bitcoin instruments settle on them).
    btc_usd_per_btc: FloatArray | None = None
    difficulty_t: FloatArray | None = None

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
    #: Averaging periods of options still open after the last interval (carried forward).
    option_carry: OptionCarry = ()
    #: Bitcoin instruments' state after the last interval (carried forward), by id.
    bitcoin_carry: tuple[tuple[str, BitcoinCarry], ...] = ()

    def component_names(self) -> tuple[str, ...]:
        """Component field names in table order."""
        return tuple(f.name for f in fields(self) if f.name not in _NOT_COMPONENTS)


_NOT_COMPONENTS = frozenset({"by_instrument", "option_carry", "bitcoin_carry"})


def _supply_flows(
    inputs: IntervalInputs, supply: Supply, mined_mwh: FloatArray, adders: FloatArray
) -> tuple[FloatArray, FloatArray, list[tuple[str, str, FloatArray]]]:
    """The power cost, the resale and each tranche's flows of ``supply``."""
    price = inputs.price_usd_per_mwh
    by_instrument: list[tuple[str, str, FloatArray]] = []
    stack = as_stack(supply)
    if not stack.tranches:  # spot supply
        return price * mined_mwh + adders, np.zeros_like(inputs.dt_h), by_instrument
    # ECONOMICS.md's table: the contracts' K * Q * dt_h is the power cost; spare power
    # resold adds to the resale, load above the tranches (bought at spot) subtracts.
    flows = settle_stack(stack, inputs.start, inputs.end, price, inputs.running_mw)
    cost = flows.contract_energy_usd.sum(axis=1) + adders
    resale = flows.resale_usd.sum(axis=1) - flows.spot_energy_usd
    if isinstance(supply, SupplyStack):
        for i, tranche in enumerate(stack.tranches):
            by_instrument += [
                (tranche.id, "contract_energy_usd", flows.contract_energy_usd[:, i]),
                (tranche.id, "resale_revenue_usd", flows.resale_usd[:, i]),
            ]
        by_instrument.append((SPOT_ID, "spot_energy_usd", flows.spot_energy_usd))
    return cost, resale, by_instrument


def settle(
    inputs: IntervalInputs,
    *,
    supply: Supply,
    hedges: tuple[Hedge, ...],
    pool_fee: float,
    adders_usd_per_mwh: float = 0.0,
    option_carry: OptionCarry = (),
    bitcoin_carry: tuple[tuple[str, BitcoinCarry], ...] = (),
    grid: tuple[GridProgram, ...] = (),
    events: tuple[Override, ...] = (),
    metered_mw: FloatArray | None = None,
) -> Settlement:
    """Settle every interval. Pure; vectorised over intervals.

    ``option_carry`` holds the options' averaging periods left open by the previous call
    (the site loop settles one interval at a time); the result's carries them on, as
    ``bitcoin_carry`` does for the Bitcoin instruments (``controller.accounting.bitcoin``).
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

    cost, resale, by_instrument = _supply_flows(inputs, supply, mined_mwh, adders)

    premium = zeros.copy()
    payout = zeros.copy()
    forward = zeros.copy()
    open_periods = dict(option_carry)
    btc_open = dict(bitcoin_carry)
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
            case PoolPayout():
                # Delivered: the fixed rate on delivered hashrate up to Hc, and the shortfall
                # charge, beside the floating mining revenue (ECONOMICS.md's forward row).
                hpn = inputs.hashprice_usd_per_ph_day * (1.0 - pool_fee)
                pool = settle_pool(
                    hedge,
                    start=inputs.start,
                    end=inputs.end,
                    hashprice_usd_per_ph_day=inputs.hashprice_usd_per_ph_day,
                    net_hashprice_usd_per_ph_day=hpn,
                    delivered_ph=inputs.running_ph,
                )
                forward += pool.fixed_rate_usd - pool.shortfall_charge_usd
                by_instrument += [
                    (hedge.id, FIXED_RATE, pool.fixed_rate_usd),
                    (hedge.id, SHORTFALL_CHARGE, pool.shortfall_charge_usd),
                ]
            case Option():
                # Cash to the site: booked as premium in and payout out, like the short call.
                option_flows, period = settle_option(
                    hedge,
                    inputs.start,
                    inputs.end,
                    price=price,
                    day_ahead=inputs.day_ahead_usd_per_mwh,
                    hashprice=inputs.hashprice_usd_per_ph_day,
                    carry=open_periods.pop(hedge.id, None),
                )
                if period is not None:
                    open_periods[hedge.id] = period
                premium += option_flows.premium_usd
                payout -= option_flows.payout_usd
                by_instrument += [
                    (hedge.id, "option_premium_usd", option_flows.premium_usd),
                    (hedge.id, "option_payout_usd", option_flows.payout_usd),
                ]
            case BtcForward() | BtcOptionStrip() | DifficultySwap() | VolatilitySwap():
                flows, btc_open[hedge.id] = settle_bitcoin(
                    hedge, inputs.start, inputs.end, _references(inputs), btc_open.get(hedge.id)
                )
                premium, payout, forward = _book_bitcoin(hedge, flows, premium, payout, forward)
                by_instrument += [(hedge.id, name, usd) for name, usd in flows.items()]

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
        option_carry=tuple(sorted(open_periods.items())),
        bitcoin_carry=tuple(sorted(btc_open.items())),
    )


def _references(inputs: IntervalInputs) -> References:
    return References(inputs.btc_usd_per_btc, inputs.hashprice_usd_per_ph_day, inputs.difficulty_t)


def _book_bitcoin(
    hedge: BitcoinHedge,
    flows: dict[str, FloatArray],
    premium: FloatArray,
    payout: FloatArray,
    forward: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """A Bitcoin instrument's flows in the settlement's totals: an option strip's premium
    and payouts beside the power options' (the payout column is cash out of the site);
    forwards and swaps beside the hashrate forward."""
    if isinstance(hedge, BtcOptionStrip):
        out = flows.get(BTC_PUT_PAYOUT, 0.0) + flows.get(BTC_CALL_PAYOUT, 0.0)
        return premium + flows[BTC_OPTION_PREMIUM], payout - out, forward
    name = BTC_FORWARD if isinstance(hedge, BtcForward) else next(iter(flows))
    return premium, payout, forward + flows[name]


def settle_down(
    start: FloatArray, end: FloatArray, *, supply: Supply, hedges: tuple[Hedge, ...]
) -> Settlement:
    """Settle spans in which the daemon settled nothing (down intervals). Pure; vectorised.

    What accrues whether or not the daemon runs is booked: each tranche's ``K * Q * dt_h``
    (``Q`` its time-weighted mean over the span)
    and each short call's premium over its term. What depends on what the miners did or on
    prices nobody observed is not known, and not booked (0 here; the ledger flags the row
    ``down``): energy, mining revenue, spot power cost, consumption adders, resale, call
    payouts, forward settlements, a delivered pool payout's flows (they depend on the hashrate
    delivered). ``net_usd`` is the net of what is booked.
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
        elif isinstance(hedge, Option):
            o_in = option_premium(hedge, start, end)
            premium += o_in
            by_instrument.append((hedge.id, "option_premium_usd", o_in))
        elif isinstance(hedge, BtcOptionStrip):
            # A strip's premium accrues over its term, as a power option's does.
            share = active_fraction(hedge.start, hedge.end, start, end)
            net_usd_per_btc = hedge.call_premium_usd_per_btc - hedge.put_premium_usd_per_btc
            b_in = net_usd_per_btc * hedge.quantity_btc_per_day * dt_h / 24.0 * share
            premium += b_in
            by_instrument.append((hedge.id, BTC_OPTION_PREMIUM, b_in))
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
