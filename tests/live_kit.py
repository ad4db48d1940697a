"""Shared pieces of the live-path tests: scenarios, expectations from the recordings, the meter."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.app.replay.runner import ReplayInputs, prepare, with_fleet_size
from controller.config import load_config
from controller.decision.economics import energy_hashprice_usd_per_mwh
from controller.decision.policy import Plan

ROOT = Path(__file__).resolve().parents[1]
HEDGED = ROOT / "deploy" / "scenarios" / "ercot-hb-south-hedged.toml"
NO_RAMP_LIMIT = "# ramp_up_mw_per_min unset: no ramp limit"

#: Address blocks of the live-path tests (this work's share of loopback: 127.50/16, 127.51/16).
DEFAULT_SUITE_IPS = (
    "127.50.10.1",
    "127.50.20.1",
    "127.50.30.1",
    "127.50.40.1",
    "127.50.80.1",
)
SLOW_SUITE_IPS = ("127.51.0.1", "127.51.8.1", "127.51.12.1")


def scenario(tmp_path: Path, *, ramp_up_mw_per_min: float | None = None) -> Path:
    """The hedged scenario, optionally with a ramp limit, written where the test owns it."""
    text = HEDGED.read_text().replace(
        "../../simulators/recordings/", f"{ROOT / 'simulators' / 'recordings'}/"
    )
    assert NO_RAMP_LIMIT in text
    if ramp_up_mw_per_min is not None:
        text = text.replace(NO_RAMP_LIMIT, f"ramp_up_mw_per_min = {ramp_up_mw_per_min}")
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


def inputs_for(
    path: Path,
    miners: int,
    *,
    window: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> ReplayInputs:
    """Prepared replay inputs for a scenario file, a window and a fleet size."""
    loaded = load_config(path)
    return with_fleet_size(
        prepare(
            loaded,
            window=window,
            start=None if start is None else datetime.fromisoformat(start).astimezone(UTC),
            end=None if end is None else datetime.fromisoformat(end).astimezone(UTC),
        ),
        miners,
    )


def energy_hashprice_at(inputs: ReplayInputs, t: float) -> dict[str, float]:
    """Each model's energy hashprice (after the pool fee) at ``t``, from the recording."""
    hp = inputs.hashprice
    k = int((hp.times <= t).sum()) - 1
    hpn = float(hp.values[k]) * (1 - inputs.model.params.pool_fee)
    fleet = inputs.model.fleet
    out = {}
    for m, name in enumerate(fleet.model_names):
        members = fleet.model_index == m
        eff = float(fleet.nominal_power_w[members].sum() / fleet.nominal_hashrate_th[members].sum())
        out[name] = float(energy_hashprice_usd_per_mwh(hpn, eff))
    return out


def price_intervals(inputs: ReplayInputs) -> list[tuple[float, float, float]]:
    """(start, end, price) of every recorded price interval inside the window."""
    pr = inputs.price
    times = [float(t) for t in pr.times]
    out = []
    for i, t in enumerate(times):
        end = times[i + 1] if i + 1 < len(times) else t + 900.0
        lo, hi = max(t, inputs.start), min(end, inputs.end)
        if lo < hi:
            out.append((lo, hi, float(pr.values[i])))
    return out


@dataclass
class MeterLog:
    """The meter's reading after every cycle: (decision time, reading time, reading)."""

    rows: list[tuple[float, float, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, plan: Plan, reading: dict[str, Any]) -> None:
        self.rows.append((plan.now, float(reading["observed_at"]), reading))


def demo_commands() -> list[list[str]]:
    """The ``hashspark`` command lines of the Makefile's ``demo`` recipe, in order, as argv
    lists after ``hashspark`` (Makefile variables of the form ``NAME := value`` expanded)."""
    text = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*:=\s*(.*)$", text, re.M))
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.M)
    assert recipe is not None, "the Makefile has no demo target"
    commands = []
    for line in recipe.group(1).splitlines():
        expanded = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), line)
        argv = shlex.split(expanded)
        if argv and argv[0].endswith("/hashspark"):
            commands.append(argv[1:])
    return commands
