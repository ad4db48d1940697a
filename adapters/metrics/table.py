"""The metric table: every metric the daemon exports, declared once (name, kind, labels, help).

Over 300 lines: it is one table, a row per metric; its length is the number of metrics.

P&L counters are cumulative since the ledger began: they are seeded from the ledger at
start-up, so a restart loses no totals. A P&L component can change sign (resale is negative
when the site buys excess power at spot; a forward pays either way), and a Prometheus
counter must never fall, so every component is a counter with a ``direction`` label: ``in``
for money the site receives, ``out`` for money it pays. A component's net is
``sum(x{direction="in"}) - sum(x{direction="out"})``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from controller.accounting.bitcoin import BITCOIN_COMPONENTS
from controller.records import COMPONENTS

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: name (without ``_total``), kind, labels and help text."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str


#: The money components of an interval (the rest are energy and counts).
MONEY = tuple(c for c in COMPONENTS if c.endswith("_usd"))
INSTRUMENT_COMPONENTS = (
    "call_premium_usd",
    "call_payout_usd",
    "forward_settlement_usd",
    # A supply stack's tranches (and ``spot`` above them) and virtual PPAs.
    "contract_energy_usd",
    "resale_revenue_usd",
    "spot_energy_usd",
    "swap_settlement_usd",
    # A fixed pool payout delivered on hashrate.
    "pool_fixed_rate_usd",
    "pool_shortfall_charge_usd",
    "option_premium_usd",
    "option_payout_usd",
    # Grid programs (controller.accounting.grid_revenue.GRID_COMPONENTS).
    "capacity_payment_usd",
    "deployment_energy_usd",
    "nonperformance_penalty_usd",
    "avoided_transmission_usd",
    # Bitcoin instruments (controller.accounting.bitcoin.BITCOIN_COMPONENTS).
    *BITCOIN_COMPONENTS,
)

METRICS: tuple[MetricSpec, ...] = (
    # P&L and energy, cumulative since the ledger began (seeded from it on start).
    *(
        MetricSpec(
            f"hashspark_{c}",
            "counter",
            ("site", "direction"),
            f"Cumulative {c.removesuffix('_usd').replace('_', ' ')} (USD), by direction of money.",
        )
        for c in MONEY
    ),
    *(
        MetricSpec(
            f"hashspark_instrument_{c}",
            "counter",
            ("site", "instrument", "direction"),
            f"Cumulative {c.removesuffix('_usd').replace('_', ' ')} (USD) per hedge instrument"
            " or supply tranche.",
        )
        for c in INSTRUMENT_COMPONENTS
    ),
    MetricSpec("hashspark_mined_mwh", "counter", ("site",), "Energy burnt mining (MWh)."),
    MetricSpec("hashspark_curtailed_mwh", "counter", ("site",), "Nominal energy not burnt (MWh)."),
    MetricSpec(
        "hashspark_settled_intervals", "counter", ("site",), "Settled intervals in the ledger."
    ),
    # The latest cycle.
    MetricSpec(
        "hashspark_spot_price_usd_per_mwh", "gauge", ("site",), "Latest real-time power price."
    ),
    MetricSpec("hashspark_hashprice_usd_per_ph_day", "gauge", ("site",), "Latest hashprice index."),
    # The site's Bitcoin inputs ([sites.bitcoin]), where configured.
    MetricSpec(
        "hashspark_btc_price_usd_per_btc",
        "gauge",
        ("site",),
        "Latest BTC/USD price (what the site's BTC instruments settle on).",
    ),
    MetricSpec(
        "hashspark_bitcoin_difficulty",
        "gauge",
        ("site",),
        "Latest network difficulty (the whole figure; strikes are in units of 1e12).",
    ),
    MetricSpec(
        "hashspark_bitcoin_fees_btc_per_block",
        "gauge",
        ("site",),
        "Latest mean transaction fees per block (BTC).",
    ),
    MetricSpec(
        "hashspark_opportunity_cost_usd_per_mwh",
        "gauge",
        ("site",),
        "Value of a MWh not burnt under the site's supply contract (with contract tranches:"
        " the next MW above the load's).",
    ),
    MetricSpec(
        "hashspark_energy_hashprice_usd_per_mwh",
        "gauge",
        ("site", "model"),
        "Revenue per MWh mined at the model's nameplate efficiency.",
    ),
    MetricSpec(
        "hashspark_breakeven_usd_per_mwh",
        "gauge",
        ("site", "model"),
        "Energy hashprice less consumption adders.",
    ),
    MetricSpec(
        "hashspark_point_breakeven_usd_per_mwh",
        "gauge",
        ("site", "group", "power_w"),
        "Breakeven power price of each operating point of a config group's curve (EHP at the"
        " point's efficiency less consumption adders).",
    ),
    MetricSpec(
        "hashspark_spread_usd_per_mwh",
        "gauge",
        ("site",),
        "Hashspark spread locked in by the PPA and the hashrate forwards in term.",
    ),
    MetricSpec(
        "hashspark_hedged_share",
        "gauge",
        ("site",),
        "Share of the fleet's nominal hashrate sold forward by the forwards in term.",
    ),
    MetricSpec(
        "hashspark_margin_floor_usd_per_mwh",
        "gauge",
        ("site",),
        "Margin per MWh at nominal if the unhedged hashrate earned nothing.",
    ),
    MetricSpec("hashspark_load_mw", "gauge", ("site",), "Power the fleet draws."),
    MetricSpec(
        "hashspark_draw_mw",
        "gauge",
        ("site",),
        "Power the fleet draws, sleeping miners included: what grid programs are measured on.",
    ),
    MetricSpec("hashspark_curtailed_mw", "gauge", ("site",), "Nominal power not drawn."),
    MetricSpec("hashspark_nominal_mw", "gauge", ("site",), "The fleet's full power."),
    MetricSpec(
        "hashspark_miners",
        "gauge",
        ("site", "model", "state"),
        "Miners by state (running, throttled, curtailed, unreachable).",
    ),
    MetricSpec(
        "hashspark_feed_age_seconds",
        "gauge",
        ("site", "feed"),
        "Age of the latest reading at the last cycle (price, hashprice; btc_usd, difficulty"
        " and fees where the site has them).",
    ),
    MetricSpec(
        "hashspark_failsafe_active",
        "gauge",
        ("site", "action"),
        "1 while a fail-safe decides the site.",
    ),
    MetricSpec(
        "hashspark_ramp_limited_miners", "gauge", ("site",), "Miners waiting for ramp budget."
    ),
    MetricSpec(
        "hashspark_paced_miners",
        "gauge",
        ("site",),
        "Miners whose wanted resume or raise waits for actuation pacing.",
    ),
    MetricSpec(
        "hashspark_miners_in_backoff",
        "gauge",
        ("site",),
        "Miners whose next command waits for the backoff after failed commands.",
    ),
    MetricSpec(
        "hashspark_last_cycle_timestamp_seconds",
        "gauge",
        ("site",),
        "When the last cycle ran (the site's clock).",
    ),
    # Events.
    MetricSpec("hashspark_commands", "counter", ("site", "outcome"), "Miner commands by outcome."),
    MetricSpec(
        "hashspark_miner_commands_deferred",
        "counter",
        ("site", "reason"),
        "Miner commands held by pacing (resume_interval, curtail_repeat, backoff).",
    ),
    MetricSpec(
        "hashspark_decisions", "counter", ("site", "reason"), "Cycles by what decided them."
    ),
    MetricSpec(
        "hashspark_ledger_write_errors",
        "counter",
        ("site",),
        "Settled intervals the ledger refused (kept and retried).",
    ),
    MetricSpec(
        "hashspark_ledger_unwritten_intervals",
        "gauge",
        ("site",),
        "Settled intervals held in memory because the ledger cannot take them yet.",
    ),
    MetricSpec(
        "hashspark_ledger_intervals_dropped",
        "counter",
        ("site",),
        "Settled intervals dropped: the ledger could not take them and the memory bound was full.",
    ),
    MetricSpec(
        "hashspark_storage_failures",
        "counter",
        ("what",),
        "Failed writes to the state directory, by what was written (the site stays controlled).",
    ),
    MetricSpec(
        "hashspark_storage_ok",
        "gauge",
        ("what",),
        "1 while the last write of this kind to the state directory went through, 0 if it failed.",
    ),
    MetricSpec(
        "hashspark_grid_target_mw",
        "gauge",
        ("site", "program"),
        "Active grid program's MW target or cap.",
    ),
    MetricSpec(
        "hashspark_grid_compliant",
        "gauge",
        ("site", "program"),
        "1 when the fleet meets the active grid program, 0 when not.",
    ),
    MetricSpec(
        "hashspark_curve_info",
        "gauge",
        ("site", "group", "model", "firmware", "source"),
        "The curve source of each miner group (config, nameplate, firmware, learned): 1.",
    ),
    MetricSpec(
        "hashspark_curve_point_power_watts",
        "gauge",
        ("site", "group", "point"),
        "Power of each point of the group's curve in use (point 1 is the lowest).",
    ),
    MetricSpec(
        "hashspark_curve_point_hashrate_terahashes",
        "gauge",
        ("site", "group", "point"),
        "Hashrate (TH/s) of each point of the group's curve in use.",
    ),
    MetricSpec(
        "hashspark_curve_learning_samples",
        "gauge",
        ("site", "group"),
        "Telemetry samples kept for learning the group's model and firmware curve.",
    ),
    MetricSpec(
        "hashspark_site_currency_info",
        "gauge",
        ("site", "currency", "price_currency", "exchange_rate"),
        "1 per site: the currency its money metrics and ledger are in (every *_usd metric is "
        "in it), what its price feed quotes, and the exchange rate's source (empty: none).",
    ),
    MetricSpec(
        "hashspark_exchange_rate",
        "gauge",
        ("site", "pair"),
        "The exchange rate (quote per base of the pair) applied to the site's newest price.",
    ),
    MetricSpec("hashspark_feed_readings_accepted", "counter", ("feed",), "Live readings accepted."),
    MetricSpec(
        "hashspark_feed_readings_rejected",
        "counter",
        ("feed", "reason"),
        "Live payloads or readings refused, by reason.",
    ),
    MetricSpec(
        "hashspark_operator_commands",
        "counter",
        ("site", "status", "code"),
        "Operator and grid commands received, by status (accepted, rejected, duplicate, "
        "ignored) and refusal code.",
    ),
    MetricSpec(
        "hashspark_feed_up", "gauge", ("feed",), "1 while a live feed's link or poll works."
    ),
    MetricSpec(
        "hashspark_feed_outages", "counter", ("feed",), "Outages of a live feed since start."
    ),
    MetricSpec(
        "hashspark_shard_managed",
        "gauge",
        ("site", "shard"),
        "1 while a shard's worker is online and answering plans (sharded sites).",
    ),
    MetricSpec(
        "hashspark_shard_unmanaged_miners",
        "gauge",
        ("site",),
        "Miners in shards without a working worker: read as unreachable, never commanded.",
    ),
    MetricSpec(
        "hashspark_shard_unmanaged_events",
        "counter",
        ("site", "shard"),
        "Times a managed shard became unmanaged (last will, stop, or no report in time).",
    ),
    MetricSpec(
        "hashspark_cycle_duration_seconds",
        "histogram",
        ("site",),
        "Wall time of one reconciliation cycle.",
    ),
    MetricSpec(
        "hashspark_command_confirmation_seconds",
        "histogram",
        ("site",),
        "Command to telemetry confirmation latency.",
    ),
)

#: Each metric by name.
SPEC = {m.name: m for m in METRICS}
