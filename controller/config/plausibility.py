"""Warnings, not errors: contracts that are valid but implausible for the site's fleet.

A config that says a 0.19 MW site sold a 5 MW call is well-formed, and may even be meant (a
trader's position booked on the site), so it is not refused; but it is far more often a typo
in the units. ``check-config`` prints each warning on stderr (and exits 0), and ``run`` logs
them at start-up. One line each, with the key path.

| what | warned when |
|---|---|
| a short call | its ``quantity_mw`` exceeds the fleet's nominal MW |
| a hashrate forward | its ``hashrate_ph`` exceeds the fleet's nominal PH/s |
| a fixed or capped PPA | its ``quantity_mw`` is more than ``PPA_SIZE_FACTOR`` times the fleet's |
|  | nominal MW (a smaller PPA is normal: the load above it is bought at spot) |
| a short call, a capped PPA | the strike is below the PPA's price: exercised, it takes more than |
|  | reselling the PPA's power brings |
| a capacity award | its awarded MW (the largest block or entry) exceeds the fleet's nominal |
|  | MW: the site cannot shed more than it draws |
"""

from __future__ import annotations

from controller.config.contracts import (
    CappedPpaConfig,
    FixedPpaConfig,
    HashrateForwardConfig,
    ShortCallConfig,
)
from controller.config.grid import CapacityAwardConfig
from controller.config.load import HashsparkConfig
from controller.config.site import SiteConfig

#: A PPA more than this many times the fleet's nominal MW is far
#: from the fleet's size.
PPA_SIZE_FACTOR = 2.0


def contract_warnings(config: HashsparkConfig) -> list[str]:
    """One line per implausible contract, with its key path; empty when all look sane."""
    return [line for i, site in enumerate(config.sites) for line in _site(i, site)]


def _site(i: int, site: SiteConfig) -> list[str]:
    fleet = site.fleet()
    site_mw = fleet.nominal_mw
    site_ph = float(fleet.nominal_hashrate_th.sum()) / 1000.0
    out: list[str] = []
    supply = site.supply
    ppa = supply if isinstance(supply, FixedPpaConfig | CappedPpaConfig) else None
    if ppa is not None:
        where = f"sites[{i}].supply"
        ratio = ppa.quantity_mw / site_mw
        if ratio > PPA_SIZE_FACTOR:
            out.append(
                f"{where}: a PPA of {ppa.quantity_mw:g} MW for a fleet of {site_mw:.3g} MW "
                f"nominal ({ratio:.2g} times its size)"
            )
        if isinstance(ppa, CappedPpaConfig) and ppa.strike_usd_per_mwh < ppa.price_usd_per_mwh:
            out.append(
                f"{where}: the resale cap's strike {ppa.strike_usd_per_mwh:g} $/MWh is below "
                f"the PPA's price {ppa.price_usd_per_mwh:g} $/MWh"
            )
    for k, hedge in enumerate(site.hedges):
        where = f"sites[{i}].hedges[{k}] ({hedge.id})"
        if isinstance(hedge, ShortCallConfig):
            if hedge.quantity_mw > site_mw:
                out.append(
                    f"{where}: a short call on {hedge.quantity_mw:g} MW, larger than the "
                    f"fleet's {site_mw:.3g} MW nominal"
                )
            if ppa is not None and hedge.strike_usd_per_mwh < ppa.price_usd_per_mwh:
                out.append(
                    f"{where}: the call's strike {hedge.strike_usd_per_mwh:g} $/MWh is below "
                    f"the PPA's price {ppa.price_usd_per_mwh:g} $/MWh"
                )
        elif isinstance(hedge, HashrateForwardConfig) and hedge.hashrate_ph > site_ph:
            out.append(
                f"{where}: a hashrate forward on {hedge.hashrate_ph:g} PH/s, larger than the "
                f"fleet's {site_ph:.3g} PH/s nominal"
            )
    for k, prog in enumerate(site.grid_programs):
        if isinstance(prog, CapacityAwardConfig) and _peak_mw(prog) > site_mw:
            out.append(
                f"sites[{i}].grid_programs[{k}] ({prog.id}): a capacity award of "
                f"{_peak_mw(prog):g} MW, larger than the fleet's {site_mw:.3g} MW nominal"
            )
    return out


def _peak_mw(award: CapacityAwardConfig) -> float:
    """The largest MW the award commits in any block or entry."""
    if award.shape is not None:
        return max(b.quantity_mw for b in award.shape.blocks)
    if award.schedule is not None:
        return max(e.quantity_mw for e in award.schedule)
    return award.quantity_mw or 0.0
