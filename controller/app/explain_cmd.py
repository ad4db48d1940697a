"""``hashspark explain CONFIG [--price X] [--hashprice Y] [--site ID]``: what the site would
do and why, per config group and per operating point. Commands nothing.

The computation is the core's ``explain()``, which runs the daemon's own ``decide()``;
the timing rules (delays, minimum run and off times, the ramp) are set aside, so it
shows where the site goes once they have run their course.

Where the inputs come from, in this order:

1. the running daemon: ``GET http://<daemon.metrics_host>:<daemon.metrics_port>/healthz``
   (or ``--healthz URL``, for a daemon started with ``--metrics-port``) gives the latest
   price and hashprice readings, the commands not yet over, how many miners of each group
   are at each point, and the time of its latest cycle (the time explained);
2. without a daemon: the config, at the current time, every miner assumed at its top
   point; the price and hashprice are the last ones the daemon recorded
   (``<state_dir>/recordings/<site>/{price,hashprice}/<day>.csv``) if any.

``--price`` and ``--hashprice`` replace what either source gives ("what would curtail at
120 USD/MWh"); without a daemon and without recordings they are required.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from controller.app.assemble import site_model
from controller.config import ConfigError, HashsparkConfig, SiteConfig, load_config
from controller.decision.explain import Explanation, assumed_points, explain, settled
from controller.decision.overrides import Override
from controller.decision.policy import PolicyParams, Snapshot
from controller.domain import EpochS, FleetSpec, Reading, iso, to_epoch
from controller.site_model import SiteModel
from controller.status import command_document, group_document, reading_document

EXIT_OK = 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``hashspark explain``."""
    p = sub.add_parser(
        "explain",
        help="what the site would do and why, per group and operating point (commands nothing)",
        description="Asks the running daemon (its /healthz) for the latest inputs, commands "
        "and fleet state, else uses the config; --price and --hashprice replace the inputs.",
    )
    p.add_argument("config", type=Path, help="the daemon's config")
    p.add_argument("--price", type=float, metavar="USD_PER_MWH", help="spot power price")
    p.add_argument("--hashprice", type=float, metavar="USD_PER_PH_DAY", help="gross hashprice")
    p.add_argument("--site", help="site id, when the config has several")
    p.add_argument(
        "--healthz",
        metavar="URL",
        help="the daemon's /healthz (default: from [daemon] metrics_host and metrics_port)",
    )
    p.add_argument("--no-daemon", action="store_true", help="explain from the config only")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the explanation is computed on, and where each part came from."""

    now: EpochS
    price: Reading | None
    hashprice: Reading | None
    overrides: tuple[Override, ...]
    observed: np.ndarray
    reachable: np.ndarray
    origin: str  # "daemon <url>" or "config"


def run(args: argparse.Namespace) -> int:
    """Print the explanation."""
    loaded = load_config(args.config)
    cfg = loaded.config
    sites = [s for s in cfg.sites if args.site in (None, s.id)]
    if len(sites) != 1:
        raise ConfigError(
            [f"{args.config}: choose one site with --site ({', '.join(s.id for s in cfg.sites)})"]
        )
    site = sites[0]
    model = site_model(site)
    url = args.healthz or f"http://{cfg.daemon.metrics_host}:{cfg.daemon.metrics_port}/healthz"
    daemon = None if args.no_daemon or cfg.daemon.metrics_port == 0 else _ask(url, site.id)
    if daemon is not None:
        inputs = _from_daemon(daemon, model.fleet, url)
    else:
        inputs = _from_config(cfg, site, model.fleet)
    price, hashprice = inputs.price, inputs.hashprice
    if args.price is not None:
        price = Reading(args.price, inputs.now, "--price")
    if args.hashprice is not None:
        hashprice = Reading(args.hashprice, inputs.now, "--hashprice")
    missing = [flag for flag, r in (("--price", price), ("--hashprice", hashprice)) if r is None]
    if missing:
        where = "the daemon" if daemon is not None else f"no daemon at {url}, no recordings"
        names = " or ".join(m[2:] for m in missing)
        raise ConfigError([f"{where}: no {names} reading: give {' and '.join(missing)}"])
    i = inputs
    snapshot = Snapshot(i.now, price, hashprice, i.observed, i.reachable, i.overrides)
    doc = document(model, explain(model.fleet, settled(model.params), snapshot), snapshot, i.origin)
    print(json.dumps(doc, indent=2) if args.json else text(doc, model.params))
    return EXIT_OK


# --- where the inputs come from -------------------------------------------------------------


def _ask(url: str, site_id: str) -> dict[str, Any] | None:
    """The site's entry in the daemon's /healthz, or None when no daemon answers."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError([f"--healthz {url}: not an http(s) URL"])
    try:
        with urllib.request.urlopen(url, timeout=3.0) as response:  # noqa: S310 (checked above)
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 while a loop is stuck: still a document
        body = json.loads(exc.read())
    except (OSError, ValueError):
        return None
    site = body.get("sites", {}).get(site_id) if isinstance(body, dict) else None
    return site if isinstance(site, dict) and site.get("at") else None


def _reading(doc: Any) -> Reading | None:
    if not isinstance(doc, dict):
        return None
    return Reading(float(doc["value"]), _epoch(doc["observed_at"]), str(doc["source"]))


def _epoch(text: str) -> EpochS:
    return to_epoch(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _override(doc: dict[str, Any]) -> Override:
    return Override(
        id=str(doc["id"]),
        kind=doc["kind"],
        start=_epoch(doc["start"]),
        end=_epoch(doc["expires"]),
        max_mw=doc.get("max_mw"),
        issued_by=str(doc.get("issued_by", "operator")),
        deadline=None if doc.get("deadline") is None else _epoch(doc["deadline"]),
        tolerance_mw=float(doc.get("tolerance_mw", 0.0)),
    )


def _from_daemon(site: dict[str, Any], fleet: FleetSpec, url: str) -> Inputs:
    """The daemon's latest cycle: its time, inputs, commands and where its miners are."""
    inputs = site.get("inputs", {})
    levels: dict[int, list[tuple[float, int]]] = {}
    unreachable: dict[int, int] = {}
    for g in site.get("groups", []):
        levels[int(g["group"])] = [(float(p["power_w"]), int(p["miners"])) for p in g["points"]]
        unreachable[int(g["group"])] = int(g["unreachable"])
    observed = assumed_points(fleet, levels)
    reachable = np.ones(fleet.size, dtype=bool)
    for g, n in unreachable.items():
        rows = np.flatnonzero(fleet.group_of == g)
        reachable[rows[rows.size - n :] if n else rows[:0]] = False
    return Inputs(
        now=_epoch(site["at"]),
        price=_reading(inputs.get("price")),
        hashprice=_reading(inputs.get("hashprice")),
        overrides=tuple(_override(o) for o in site.get("commands", [])),
        observed=observed,
        reachable=reachable,
        origin=f"daemon {url}",
    )


def _from_config(cfg: HashsparkConfig, site: SiteConfig, fleet: FleetSpec) -> Inputs:
    """Now, every miner at its top point, no command, and the last readings the daemon
    recorded."""
    now = time.time()
    record_dir = cfg.daemon.state_dir / "recordings" / site.id
    return Inputs(
        now=now,
        price=_last_recorded(record_dir / "price", now),
        hashprice=_last_recorded(record_dir / "hashprice", now),
        overrides=(),  # commands reach a running daemon only (over MQTT)
        observed=fleet.top_point.copy(),
        reachable=np.ones(fleet.size, dtype=bool),
        origin="config",
    )


def _last_recorded(directory: Path, now: EpochS) -> Reading | None:
    """The newest row of the newest daily recording, taken as holding now (its own time is
    in its source, so the output says how old it is)."""
    try:
        files = sorted(directory.glob("*.csv"))
    except OSError:
        return None
    for path in reversed(files):
        try:
            rows = [line for line in path.read_text().splitlines()[1:] if line.strip()]
        except OSError:
            continue
        for line in reversed(rows):
            stamp, _, value = line.partition(",")
            try:
                return Reading(float(value), now, f"recorded {stamp} in {path}")
            except ValueError:
                continue
    return None


# --- output ---------------------------------------------------------------------------------


def document(
    model: SiteModel, result: Explanation, snapshot: Snapshot, origin: str
) -> dict[str, object]:
    """The explanation as JSON: inputs, reason, commands, and each group with its points."""
    plan = result.plan
    return {
        "site": model.site_id,
        "at": iso(snapshot.now),
        "from": origin,
        "inputs": {
            "price": reading_document(snapshot.price),
            "hashprice": reading_document(snapshot.hashprice),
        },
        "pool_fee": model.params.pool_fee,
        "net_hashprice_usd_per_ph_day": plan.net_hashprice_usd_per_ph_day,
        "opportunity_cost_usd_per_mwh": plan.opportunity_cost_usd_per_mwh,
        "reason": result.reason.as_dict(),
        "load_mw": round(float(model.fleet.power_at(plan.point).sum()) / 1e6, 6),
        "commands": [command_document(o, snapshot.now) for o in snapshot.overrides],
        "groups": [group_document(g) for g in result.groups],
    }


def _money(x: object) -> str:
    return "-" if not isinstance(x, int | float) else f"{x:.2f}"


def text(doc: dict[str, Any], params: PolicyParams) -> str:
    """The explanation for a terminal."""
    lines = [f"site {doc['site']} at {doc['at']}, from the {doc['from']}"]
    for name, unit in (("price", "USD/MWh"), ("hashprice", "USD/PH/day")):
        r = doc["inputs"][name]
        lines.append(f"  {name}: {r['value']:g} {unit} ({r['source']}, {r['observed_at']})")
    lines.append(
        f"  net hashprice {_money(doc['net_hashprice_usd_per_ph_day'])} USD/PH/day "
        f"(pool fee {doc['pool_fee']:g}), opportunity cost "
        f"{_money(doc['opportunity_cost_usd_per_mwh'])} USD/MWh"
    )
    reason = doc["reason"]
    lines.append(f"decided by: {reason['rule']}: {reason['detail']}")
    for c in doc["commands"]:
        state = "active" if c["active"] else f"from {c['start']}"
        cap = "" if c["max_mw"] is None else f", {c['max_mw']:g} MW"
        lines.append(
            f"  command {c['id']} ({c['kind']}{cap}) by {c['issued_by']}, {state}, "
            f"expires {c['expires']}"
        )
    lines.append(f"site load {doc['load_mw']:g} MW")
    lines.append("")
    header = f"{'group':<28}{'miners':>7}{'run':>6}{'thr':>6}{'off':>6}"
    lines.append(header + f"{'EHP':>10}{'breakeven':>11}{'margin':>10}  (USD/MWh)")
    for g in doc["groups"]:
        lines.append(
            f"{g['name']:<28}{g['miners']:>7}{g['running']:>6}{g['throttled']:>6}"
            f"{g['curtailed']:>6}{_money(g['energy_hashprice_usd_per_mwh']):>10}"
            f"{_money(g['breakeven_usd_per_mwh']):>11}{_money(g['margin_usd_per_mwh']):>10}"
        )
        if len(g["points"]) > 1:
            lines.extend(
                f"  {p['power_w']:>7.0f} W {p['hashrate_th']:>7.1f} TH/s"
                f" {p['efficiency_j_per_th']:>6.2f} J/TH {p['miners']:>6} miners"
                f"{_money(p['energy_hashprice_usd_per_mwh']):>10}"
                f"{_money(p['breakeven_usd_per_mwh']):>11}{_money(p['margin_usd_per_mwh']):>10}"
                for p in g["points"]
            )
    timing = {
        "curtail_delay_s": params.curtail_delay_s,
        "resume_delay_s": params.resume_delay_s,
        "min_run_s": params.min_run_s,
        "min_off_s": params.min_off_s,
        "ramp_up_mw_per_min": params.ramp_up_mw_per_min or 0.0,
    }
    if any(timing.values()):
        rules = ", ".join(f"{k} {v:g}" for k, v in timing.items() if v)
        lines += ["", f"where the site settles: its timing rules ({rules}) take time to get there"]
    return "\n".join(lines)
