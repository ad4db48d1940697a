"""Saying why: per-group decision lines, the status's reason and economics, ``hashspark explain``.

The site loop is driven in-process (the loop replay); the daemon path runs the real daemon.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from controller.accounting.instruments import SpotSupply
from controller.app.assemble import site_model
from controller.app.replay.runner import prepare, replay
from controller.config import load_config
from controller.decision.explain import explain, settled
from controller.decision.overrides import Override
from controller.decision.policy import PolicyParams, Snapshot
from controller.domain import Reading, build_fleet, group_names
from controller.status import SiteStatus, status_document
from tests.daemon_kit import EXE, free_port, healthz, start_daemon, wait_for
from tests.scenario_kit import T0, write_scenario

# Two groups of one model (stock and LuxOS with a lower power target), and S21s.
# At HP 50 and a 2 % pool fee: S19j Pro 69.21 USD/MWh at 3068 W, 81.67 at 1750 W; S21 116.67.
MINERS = """
[[sites.miners]]
model = "Antminer S19j Pro"
count = 6
curve = [{ hashrate_th = 104, power_w = 3068 }]

[[sites.miners]]
model = "Antminer S19j Pro"
firmware = "luxos"
count = 3
curve = [{ hashrate_th = 70, power_w = 1750 }, { hashrate_th = 104, power_w = 3068 }]

[[sites.miners]]
model = "Antminer S21"
count = 4
curve = [{ hashrate_th = 200, power_w = 3500 }]
"""
STOCK, LUXOS, S21 = "Antminer S19j Pro #0", "Antminer S19j Pro (luxos)", "Antminer S21"


def _scenario(tmp: Path, prices: list[tuple[float, float]], events: str = "") -> Path:
    path = write_scenario(
        tmp, prices, [(T0 - 3600, 50.0)], miners=MINERS, end=T0 + 2700, daemon="cycle_s = 60"
    )
    path.write_text(path.read_text().replace("[daemon]", events + "\n[daemon]", 1))
    return path


def _decisions(path: Path) -> list[dict[str, Any]]:
    with capture_logs() as logs:
        replay(prepare(load_config(path)), engine="loop")
    return [dict(e) for e in logs if e["event"] == "decision"]


def _counts(groups: Any) -> dict[str, tuple[int, int, int]]:
    if isinstance(groups, dict):  # the decision line: {name: {...}}
        return {k: (g["running"], g["throttled"], g["curtailed"]) for k, g in groups.items()}
    return {g["name"]: (g["running"], g["throttled"], g["curtailed"]) for g in groups}


def test_groups_are_the_configs_not_the_models() -> None:
    assert group_names(["a", "a", "b"], ["luxos", "stock", None]) == ("a (luxos)", "a (stock)", "b")
    assert group_names(["a", "a"], [None, None]) == ("a #0", "a #1")
    fleet = build_fleet([("a", 2, [(1.0, 10.0)]), ("a", 1, [(1.0, 10.0)])])
    assert fleet.group_of.tolist() == [0, 0, 1]
    assert fleet.model_index.tolist() == [0, 0, 0]
    assert fleet.class_rows.size == 1  # groups label the fleet; the optimiser's classes ignore them


def test_a_price_event_leaves_one_decision_line_per_change_naming_groups_prices_and_rule(
    tmp_path: Path,
) -> None:
    prices = [(T0, 20.0), (T0 + 900, 75.0), (T0 + 1800, 20.0)]
    lines = _decisions(_scenario(tmp_path, prices))
    assert [line["price_usd_per_mwh"] for line in lines] == [20.0, 75.0, 20.0]  # not per cycle
    assert all(line["rule"] == "economics" for line in lines)
    spike = lines[1]
    assert spike["opportunity_cost_usd_per_mwh"] == 75.0
    assert spike["changed"] == {
        STOCK: "running 6->0, curtailed 0->6",
        LUXOS: "running 3->0, throttled 0->3",
    }
    assert _counts(spike["groups"]) == {STOCK: (0, 0, 6), LUXOS: (0, 3, 0), S21: (4, 0, 0)}
    assert spike["groups"][STOCK]["energy_hashprice_usd_per_mwh"] == 69.21
    assert spike["groups"][STOCK]["margin_usd_per_mwh"] == round(69.2090 - 75.0, 2)
    assert spike["groups"][S21]["margin_usd_per_mwh"] == round(116.6667 - 75.0, 2)
    assert "75.00 USD/MWh" in spike["reason"]


def test_a_demand_response_event_names_its_override_and_the_release(tmp_path: Path) -> None:
    events = """
[[scenario.events]]
type = "demand_response"
id = "ers-7"
start = "2024-06-01T05:05:00Z"
deadline = "2024-06-01T05:06:00Z"
end = "2024-06-01T05:15:00Z"
max_mw = 0.0
"""
    prices = [(T0 + 600 * i, 20.0 + i) for i in range(5)]  # fresh, and no plan change
    lines = _decisions(_scenario(tmp_path, prices, events))
    rules = [(line["rule"], line["override"], line["override_kind"]) for line in lines]
    assert rules == [
        ("economics", None, None),
        ("override", "ers-7", "demand_response"),
        ("economics", None, None),
    ]
    dr = lines[1]
    assert dr["price_usd_per_mwh"] == 20.0  # the price at 05:05
    assert set(dr["changed"]) == {STOCK, LUXOS, S21}
    assert _counts(dr["groups"]) == {STOCK: (0, 0, 6), LUXOS: (0, 0, 3), S21: (0, 0, 4)}
    assert "demand_response ers-7 overrides the economics" in dr["reason"]


def test_explain_matches_what_the_loop_then_does_per_group(tmp_path: Path) -> None:
    path = _scenario(tmp_path, [(T0, 75.0)])
    model = site_model(load_config(path).config.sites[0])
    fleet = model.fleet
    snapshot = Snapshot(
        T0,
        Reading(75.0, T0, "t"),
        Reading(50.0, T0, "t"),
        fleet.top_point.copy(),
        np.ones(fleet.size, dtype=bool),
    )
    said = explain(fleet, settled(model.params), snapshot)
    assert said.reason.rule == "economics"
    luxos = said.groups[1]
    assert [(p.power_w, p.miners) for p in luxos.points] == [(1750.0, 3), (3068.0, 0)]
    assert round(luxos.points[0].energy_hashprice_usd_per_mwh or 0.0, 2) == 81.67
    done = _decisions(path)[-1]
    assert _counts(done["groups"]) == {g.name: g.counts() for g in said.groups}


def _explain(config: Path, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [EXE, "explain", str(config), "--json", *extra], check=True, capture_output=True
    )
    return dict(json.loads(out.stdout))


# 7 s: in the slow suite; explain against the loop stays in the default suite
# (test_explain_matches_what_the_loop_then_does_per_group).
@pytest.mark.slow
def test_the_cli_explains_from_the_config_then_the_daemon_does_it_and_explains_itself(
    tmp_path: Path,
) -> None:
    path = _scenario(tmp_path, [(T0 + 600 * i, 75.0) for i in range(5)])
    port = free_port()
    before = _explain(path, "--no-daemon", "--price", "75", "--hashprice", "50")
    assert before["from"] == "config"
    assert _counts(before["groups"]) == {STOCK: (0, 0, 6), LUXOS: (0, 3, 0), S21: (4, 0, 0)}

    daemon = start_daemon(path, tmp_path / "state", port, "--stay")
    try:
        wait_for(lambda: healthz(port)["finished"], timeout=60, what="the replay's end")
        site = healthz(port)["sites"]["test-site"]
        assert _counts(site["groups"]) == _counts(before["groups"])  # explained, then done
        assert site["reason"]["rule"] == "economics"
        assert site["commands"] == []  # the daemon takes commands over MQTT only
        assert site["inputs"]["price"]["value"] == 75.0
        stock, luxos = site["groups"][0], site["groups"][1]
        assert stock["name"] == STOCK
        assert stock["energy_hashprice_usd_per_mwh"] == 69.209
        assert stock["breakeven_usd_per_mwh"] == 69.209  # no adders
        assert stock["margin_usd_per_mwh"] == round(69.20904 - 75.0, 4)
        assert [(p["power_w"], p["miners"]) for p in luxos["points"]] == [(1750, 3), (3068, 0)]

        url = f"http://127.0.0.1:{port}/healthz"
        now = _explain(path, "--healthz", url)
        assert now["from"] == f"daemon {url}"
        assert now["at"] == site["at"]
        assert now["reason"] == site["reason"]
        assert now["commands"] == site["commands"]
        assert _counts(now["groups"]) == _counts(site["groups"])
        cheap = _explain(path, "--healthz", url, "--price", "20")
        assert _counts(cheap["groups"]) == {STOCK: (6, 0, 0), LUXOS: (3, 0, 0), S21: (4, 0, 0)}
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def test_the_status_carries_the_reason_the_groups_and_the_commands_with_issuer_and_expiry() -> None:
    fleet = build_fleet([("a", 2, [(100.0, 3000.0)]), ("a", 1, [(100.0, 2000.0)])])
    dr = Override("dr-1", "demand_response", start=0.0, end=7200.0, max_mw=0.0, issued_by="ercot")
    snapshot = Snapshot(
        60.0, Reading(20.0, 0.0, "p"), Reading(50.0, 0.0, "h"), fleet.top_point.copy(),
        np.ones(fleet.size, dtype=bool), (dr,),
    )  # fmt: skip
    said = explain(fleet, PolicyParams(supply=SpotSupply()), snapshot)
    status = SiteStatus(
        site_id="s", at=60.0, price=snapshot.price, hashprice=snapshot.hashprice,
        opportunity_cost_usd_per_mwh=20.0, net_hashprice_usd_per_ph_day=50.0,
        decision_reason="demand_response", failsafe_reason=None, models=(), load_mw=0.0,
        nominal_mw=0.008, spread_usd_per_mwh=None, ramp_limited=0,
        groups=said.groups, reason=said.reason, commands=(dr,),
    )  # fmt: skip
    doc = status_document(status)
    assert doc["reason"] == {
        "rule": "override",
        "detail": "demand_response dr-1 overrides the economics",
        "override": {"id": "dr-1", "kind": "demand_response"},
        "ramp_limited": 0,
    }
    assert doc["commands"] == [
        {
            "id": "dr-1", "kind": "demand_response", "issued_by": "ercot", "active": True,
            "start": "1970-01-01T00:00:00Z", "expires": "1970-01-01T02:00:00Z",
            "max_mw": 0.0, "deadline": None, "tolerance_mw": 0.0,
        }
    ]  # fmt: skip
    groups = doc["groups"]
    assert isinstance(groups, list)
    assert [(g["name"], g["curtailed"]) for g in groups] == [("a #0", 2), ("a #1", 1)]
    assert groups[1]["energy_hashprice_usd_per_mwh"] == 104.1667  # 50 * 1000 / (24 * 20)
    assert groups[1]["margin_usd_per_mwh"] == 84.1667
