"""What a site is doing right now: the snapshot metrics and the status topic read from."""

from __future__ import annotations

from dataclasses import dataclass

from controller.decision.explain import GroupState, Reason
from controller.decision.overrides import Override
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
class PacingStatus:
    """Actuation pacing: miners held now, miners backing off, commands held since start."""

    paced: int = 0  # miners whose wanted change waits for pacing at this cycle
    in_backoff: int = 0  # miners whose next command waits for their failures' backoff
    deferred: tuple[tuple[str, int], ...] = ()  # (reason, commands held) since start

    def as_dict(self) -> dict[str, object]:
        """The status topic's ``pacing`` object."""
        return {
            "paced": self.paced,
            "in_backoff": self.in_backoff,
            "deferred": dict(self.deferred),
        }


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
    spread_usd_per_mwh: float | None  # with the PPA and the forwards in term now
    ramp_limited: int
    grid: tuple[GridStatus, ...] = ()
    draw_mw: float | None = None  # load_mw plus what sleeping miners draw: the meter's view
    state: str = "running"  # "stopped": the last status, as shutdown left the miners
    groups: tuple[GroupState, ...] = ()  # per config group, as the miners report
    reason: Reason | None = None  # the rule that decided the plan
    commands: tuple[Override, ...] = ()  # operator and grid commands not yet over
    hedged_share: float | None = None  # forwards' PH/s in term over the fleet's nominal
    margin_floor_usd_per_mwh: float | None = None  # the margin if unhedged hashrate earned 0
    pacing: PacingStatus = PacingStatus()
    #: The site's Bitcoin inputs at the cycle (``btc_usd``, ``difficulty``, ``fees``), where
    #: configured and read: what its Bitcoin instruments and a derived hashprice are made of.
    bitcoin: tuple[tuple[str, Reading], ...] = ()

    @property
    def curtailed_mw(self) -> float:
        """Nominal power not drawn now."""
        return max(self.nominal_mw - self.load_mw, 0.0)

    def feed_age_s(self, feed: str) -> float | None:
        """Age of the price, hashprice or a Bitcoin reading at the time of the cycle."""
        if feed in ("price", "hashprice"):
            reading = self.price if feed == "price" else self.hashprice
        else:
            reading = dict(self.bitcoin).get(feed)
        return None if reading is None else reading.age_s(self.at)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def reading_document(r: Reading | None) -> dict[str, object] | None:
    """A reading: its value, when it was observed, where it came from."""
    if r is None:
        return None
    return {"value": r.value, "observed_at": iso(r.observed_at), "source": r.source}


def group_document(g: GroupState) -> dict[str, object]:
    """One config group: counts, load, and energy hashprice, breakeven and margin (USD/MWh)
    at its nominal efficiency and at each point of its curve."""
    return {
        "group": g.group,
        "name": g.name,
        "model": g.model,
        "miners": g.miners,
        "running": g.running,
        "throttled": g.throttled,
        "curtailed": g.curtailed,
        "unreachable": g.unreachable,
        "load_mw": round(g.load_mw, 6),
        "energy_hashprice_usd_per_mwh": _round(g.energy_hashprice_usd_per_mwh),
        "breakeven_usd_per_mwh": _round(g.breakeven_usd_per_mwh),
        "margin_usd_per_mwh": _round(g.margin_usd_per_mwh),
        "points": [
            {
                "power_w": p.power_w,
                "hashrate_th": p.hashrate_th,
                "efficiency_j_per_th": round(p.efficiency_j_per_th, 4),
                "energy_hashprice_usd_per_mwh": _round(p.energy_hashprice_usd_per_mwh),
                "breakeven_usd_per_mwh": _round(p.breakeven_usd_per_mwh),
                "margin_usd_per_mwh": _round(p.margin_usd_per_mwh),
                "miners": p.miners,
            }
            for p in g.points
        ],
    }


def command_document(o: Override, now: EpochS) -> dict[str, object]:
    """An operator or grid command: who issued it, what it asks, until when."""
    return {
        "id": o.id,
        "kind": o.kind,
        "issued_by": o.issued_by,
        "active": o.active(now),
        "start": iso(o.start),
        "expires": iso(o.end),
        "max_mw": o.max_mw,
        "deadline": None if o.deadline is None else iso(o.deadline),
        "tolerance_mw": o.tolerance_mw,
    }


def decision_document(status: SiteStatus) -> dict[str, object]:
    """Why the site does what it does: the reason, the inputs, the commands, each group."""
    return {
        "reason": None if status.reason is None else status.reason.as_dict(),
        "inputs": {
            "price": reading_document(status.price),
            "hashprice": reading_document(status.hashprice),
        },
        "net_hashprice_usd_per_ph_day": status.net_hashprice_usd_per_ph_day,
        "commands": [command_document(o, status.at) for o in status.commands],
        "groups": [group_document(g) for g in status.groups],
    }


def status_document(status: SiteStatus) -> dict[str, object]:
    """The retained status topic's JSON: state, mode, last decision and why, feed ages."""
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
        "pacing": status.pacing.as_dict(),
        **decision_document(status),
    }
