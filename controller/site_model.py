"""What the loop needs to know about a site: its fleet, policy and contracts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from controller.accounting.grid_revenue import GridProgram
from controller.accounting.instruments import (
    FixedPpa,
    HashrateForward,
    Hedge,
    Supply,
    active_fraction,
)
from controller.decision.economics import hashspark_spread_usd_per_mwh
from controller.decision.pacing import PacingParams
from controller.decision.policy import PolicyParams
from controller.domain import OFF, EpochS, FleetSpec, FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class SiteModel:
    """A site as plain values for the core."""

    site_id: str
    fleet: FleetSpec
    params: PolicyParams
    supply: Supply
    hedges: tuple[Hedge, ...]
    # Each miner's draw asleep (W); None: not known, taken as 0. Only the measured draw
    # (grid compliance, ``draw_mw``) counts it: the plans and the P&L take off as 0 W.
    sleep_w: FloatArray | None = field(default=None, compare=False)
    # How often one miner may be commanded, and backoff after failures (paced by default).
    pacing: PacingParams = field(default_factory=PacingParams)
    # Capacity awards and 4CP credits: settled, never deciding (docs/economics.md).
    grid: tuple[GridProgram, ...] = ()

    def draw_mw(self, point: IntArray) -> float:
        """What the fleet draws at ``point`` (MW), sleeping miners' draw included: what the
        site's meter reads, and what a grid program is measured against."""
        running = float(self.fleet.power_at(point).sum())
        if self.sleep_w is None:
            return running / 1e6
        return (running + float(self.sleep_w[point == OFF].sum())) / 1e6

    @property
    def fleet_efficiency_j_per_th(self) -> float:
        """Nominal fleet efficiency: sum of power over sum of hashrate."""
        return float(self.fleet.nominal_power_w.sum() / self.fleet.nominal_hashrate_th.sum())

    @property
    def ppa_price_usd_per_mwh(self) -> float | None:
        """The fixed PPA's price, if the site has one."""
        return self.supply.price_usd_per_mwh if isinstance(self.supply, FixedPpa) else None

    def forwards_in_term(self, start: EpochS, end: EpochS) -> tuple[float | None, float]:
        """The forwards in term over ``[start, end)``: their price weighted by hashrate and
        time in term (None: no forward in term), and the share of the fleet's nominal
        hashrate they sell, averaged over the span (ECONOMICS.md, "Hashspark spread")."""
        fwds = [h for h in self.hedges if isinstance(h, HashrateForward)]
        weights = [f.hashrate_ph * _in_term(f, start, end) for f in fwds]
        sold = sum(weights)
        nominal_ph = float(self.fleet.nominal_hashrate_th.sum()) / 1e3
        if sold <= 0:
            return None, 0.0
        price = sum(f.price_usd_per_ph_day * w for f, w in zip(fwds, weights, strict=True)) / sold
        return price, sold / nominal_ph if nominal_ph > 0 else 0.0

    def spread(self, start: EpochS, end: EpochS | None = None) -> Spread | None:
        """The hashspark spread the PPA and the forwards in term lock in at ``start`` (or over
        ``[start, end)``), on the share of hashrate they hedge; None without both."""
        k = self.ppa_price_usd_per_mwh
        hpf, share = self.forwards_in_term(start, start if end is None else end)
        if k is None or hpf is None:
            return None
        value = hashspark_spread_usd_per_mwh(
            hpf, self.params.pool_fee, self.fleet_efficiency_j_per_th, k
        )
        return Spread(value, share, share * (value + k) - k)


def _in_term(forward: HashrateForward, start: EpochS, end: EpochS) -> float:
    """Share of ``[start, end)`` inside the forward's term; at an instant, 1 or 0."""
    if end > start:
        return float(
            active_fraction(forward.start, forward.end, np.array([start]), np.array([end]))[0]
        )
    after_start = forward.start is None or forward.start <= start
    return 1.0 if after_start and (forward.end is None or start < forward.end) else 0.0


@dataclass(frozen=True, slots=True)
class Spread:
    """The hashspark spread and what it covers.

    ``margin_floor_usd_per_mwh``: the fleet's margin per MWh at nominal if the unhedged
    hashrate earned nothing: ``hedged_share * (spread + K) - K``.
    """

    usd_per_mwh: float
    hedged_share: float  # forwards' PH/s in term over the fleet's nominal PH/s
    margin_floor_usd_per_mwh: float
