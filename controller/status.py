"""What a site is doing right now: the snapshot metrics and the status topic read from."""

from __future__ import annotations

from dataclasses import dataclass

from controller.domain import EpochS, Reading, iso


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """One miner model at one site."""

    model: str
    energy_hashprice_usd_per_mwh: float | None  # at the model's nameplate efficiency
    breakeven_usd_per_mwh: float | None  # energy hashprice less consumption adders
    running: int  # at the top point
    throttled: int  # at a lower power target
    curtailed: int  # off
    unreachable: int
    load_mw: float


@dataclass(frozen=True, slots=True)
class GridStatus:
    """An active grid program or operator instruction, and whether the site meets it."""

    program: str  # the override kind: demand_response, peak_window, base_point, ...
    id: str
    target_mw: float | None
    compliant: bool | None  # measured from the fleet's own telemetry; None: not measured


@dataclass(frozen=True, slots=True)
class SiteStatus:
    """The latest cycle's inputs, decision and fleet state for one site."""

    site_id: str
    at: EpochS
    price: Reading | None
    hashprice: Reading | None
    opportunity_cost_usd_per_mwh: float | None
    net_hashprice_usd_per_ph_day: float | None
    decision_reason: str  # "economics" or "failsafe_<action>"
    failsafe_reason: str | None
    models: tuple[ModelStatus, ...]
    load_mw: float
    nominal_mw: float
    spread_usd_per_mwh: float | None
    ramp_limited: int
    grid: tuple[GridStatus, ...] = ()
    draw_mw: float | None = None  # load_mw plus what sleeping miners draw: the meter's view
    state: str = "running"  # "stopped": the last status, as shutdown left the miners

    @property
    def curtailed_mw(self) -> float:
        """Nominal power not drawn now."""
        return max(self.nominal_mw - self.load_mw, 0.0)

    def feed_age_s(self, feed: str) -> float | None:
        """Age of the price or hashprice reading at the time of the cycle."""
        reading = self.price if feed == "price" else self.hashprice
        return None if reading is None else reading.age_s(self.at)


def status_document(status: SiteStatus) -> dict[str, object]:
    """The retained status topic's JSON: state, mode, last decision, feed ages."""
    return {
        "state": status.state,
        "mode": status.decision_reason,
        "at": iso(status.at),
        "failsafe": status.failsafe_reason,
        "load_mw": round(status.load_mw, 6),
        "nominal_mw": round(status.nominal_mw, 6),
        "price_usd_per_mwh": None if status.price is None else status.price.value,
        "hashprice_usd_per_ph_day": None if status.hashprice is None else status.hashprice.value,
        "opportunity_cost_usd_per_mwh": status.opportunity_cost_usd_per_mwh,
        "feed_ages_s": {
            feed: None if (age := status.feed_age_s(feed)) is None else round(age, 3)
            for feed in ("price", "hashprice")
        },
        "miners": {
            m.model: {
                "running": m.running,
                "throttled": m.throttled,
                "curtailed": m.curtailed,
                "unreachable": m.unreachable,
            }
            for m in status.models
        },
    }
