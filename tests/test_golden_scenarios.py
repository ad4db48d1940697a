"""The three shipped scenarios against an independent, plain-Python computation.

``tests/golden/independent.py`` was written separately from the numpy core, from
ECONOMICS.md alone, with per-interval loops and the standard library only.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from controller.accounting.report import TOTAL_KEYS
from controller.app.replay.runner import prepare, replay
from controller.config import load_config
from tests.golden.independent import compute_totals

ROOT = Path(__file__).resolve().parents[1]
#: The three scenarios over one-point (nameplate) fleets that the independent code covers.
SCENARIOS = [
    ROOT / "deploy" / "scenarios" / f"ercot-hb-south-{name}.toml"
    for name in ("capped", "hedged", "spot")
]


def _independent_args(path: Path) -> dict[str, Any]:
    """Read the scenario's TOML directly (not through our config models)."""
    raw = tomllib.loads(path.read_text())
    site = raw["sites"][0]
    fleet = []
    for group in site["miners"]:
        (point,) = group["curve"]
        fleet.append((group["count"], point["hashrate_th"], point["power_w"]))
    supply = dict(site["supply"].items())
    call = forward = None
    for hedge in site.get("hedges", []):
        if hedge["type"] == "short_call":
            call = {
                k: hedge[k] for k in ("quantity_mw", "strike_usd_per_mwh", "premium_usd_per_mwh")
            }
        elif hedge["type"] == "hashrate_forward":
            forward = {k: hedge[k] for k in ("hashrate_ph", "price_usd_per_ph_day")}
    base = path.parent
    return {
        "price_csv": str((base / site["price_feed"]["path"]).resolve()),
        "hashprice_csv": str((base / site["hashprice_feed"]["path"]).resolve()),
        "fleet": fleet,
        "pool_fee": site["pool_fee"],
        "supply": supply,
        "call": call,
        "forward": forward,
        "start": datetime.fromisoformat(raw["scenario"]["start"]),
        "end": datetime.fromisoformat(raw["scenario"]["end"]),
    }


def test_three_scenarios_are_shipped() -> None:
    assert all(p.is_file() for p in SCENARIOS)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_totals_match_the_independent_computation(path: Path) -> None:
    result = replay(prepare(load_config(path)), engine="fast")
    totals = result.report["totals"]
    assert tuple(totals) == TOTAL_KEYS
    expected = compute_totals(**_independent_args(path))
    assert set(expected) == set(totals)
    for key in TOTAL_KEYS:
        assert totals[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-6), key


def test_hedged_scenario_headline_figures() -> None:
    """Pinned so that a change to the data or the core cannot pass unnoticed."""
    report = replay(
        prepare(load_config(ROOT / "deploy/scenarios/ercot-hb-south-hedged.toml"))
    ).report
    t = report["totals"]
    assert t["intervals"] == 28_796
    assert t["hours"] == pytest.approx(7_200.0)
    assert t["mined_mwh"] + t["curtailed_mwh"] == pytest.approx(3.2408 * 7_200)
    assert t["call_premium_usd"] == pytest.approx(3.5 * 3.0 * 7_200)
    # The fee-inclusive recording; tests/golden/independent.py's compute_totals gives the
    # same 1,210,907.74 (1,177,575.34 on the subsidy-only recording, before issue 17).
    assert round(t["net_usd"], 2) == 1_210_907.74
    assert report["summary"]["hashspark_spread_usd_per_mwh"] == pytest.approx(
        52 * 0.98 * 1000 / (24 * (3_240_800 / 142_400)) - 45
    )


def test_report_breakdowns_add_up_to_the_totals() -> None:
    report = replay(
        prepare(load_config(ROOT / "deploy/scenarios/ercot-hb-south-hedged.toml"))
    ).report
    t = report["totals"]
    days = report["per_day"]
    assert len(days) == 301  # 2024-06-01 05:00Z .. 2025-03-28 05:00Z touches 301 UTC days
    for key in TOTAL_KEYS:
        assert sum(d[key] for d in days) == pytest.approx(t[key], rel=1e-9), key
    models = report["per_model"]
    assert [m["model"] for m in models] == ["Antminer S19j Pro", "Antminer S21"]
    assert sum(m["mined_mwh"] for m in models) == pytest.approx(t["mined_mwh"])
    assert sum(m["mining_revenue_usd"] for m in models) == pytest.approx(t["mining_revenue_usd"])
    # The least efficient model curtails at least as long as the most efficient one.
    assert models[0]["curtailed_hours"] >= models[1]["curtailed_hours"] > 0
