"""What the loop needs to know about a site: its fleet, policy and contracts."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.accounting.instruments import FixedPpa, HashrateForward, Hedge, Supply
from controller.decision.economics import hashspark_spread_usd_per_mwh
from controller.decision.pacing import PacingParams
from controller.decision.policy import PolicyParams
from controller.domain import OFF, FleetSpec, FloatArray, IntArray


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

    @property
    def forward_price_usd_per_ph_day(self) -> float | None:
        """Hashrate-weighted price of the site's forwards, if any."""
        fwds = [h for h in self.hedges if isinstance(h, HashrateForward)]
        if not fwds:
            return None
        total = sum(f.hashrate_ph for f in fwds)
        return sum(f.price_usd_per_ph_day * f.hashrate_ph for f in fwds) / total

    @property
    def spread_usd_per_mwh(self) -> float | None:
        """The hashspark spread a PPA plus a forward lock in, if the site has both."""
        k, hpf = self.ppa_price_usd_per_mwh, self.forward_price_usd_per_ph_day
        if k is None or hpf is None:
            return None
        return hashspark_spread_usd_per_mwh(
            hpf, self.params.pool_fee, self.fleet_efficiency_j_per_th, k
        )
