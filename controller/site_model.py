"""What the loop needs to know about a site: its fleet, policy and contracts."""

from __future__ import annotations

from dataclasses import dataclass

from controller.accounting.instruments import FixedPpa, HashrateForward, Hedge, Supply
from controller.decision.economics import hashspark_spread_usd_per_mwh
from controller.decision.policy import PolicyParams
from controller.domain import FleetSpec


@dataclass(frozen=True, slots=True)
class SiteModel:
    """A site as plain values for the core."""

    site_id: str
    fleet: FleetSpec
    params: PolicyParams
    supply: Supply
    hedges: tuple[Hedge, ...]

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
