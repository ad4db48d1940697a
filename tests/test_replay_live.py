"""The live-path replay: simulated ASICs through pyasic, recorded feeds through a live adapter.

Small fleets and short windows (the default suite); the 200- and 1,000-miner acceptance
runs are in ``test_replay_live_slow.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from controller.app.cli import main
from controller.app.replay import live as live_module
from controller.app.replay.html_report import live_path_section
from controller.app.replay.live import (
    LiveOptions,
    live_driver_config,
    miner_specs,
    privileged_port_allowed,
    replay_live,
    resolve_family,
)
from controller.app.replay.runner import ReplayInputs, replay
from controller.records import COMPONENTS, IntervalTable
from controller.runtime.clocks.replay import LoopClock, ReplayClock
from simulators.miners.faults import FaultKind
from simulators.miners.fleet_file import FaultConfig
from tests.live_kit import (
    DEFAULT_SUITE_IPS,
    HEDGED,
    ROOT,
    MeterLog,
    demo_commands,
    energy_hashprice_at,
    inputs_for,
    price_intervals,
    scenario,
)

T0 = 1_724_000_000.0
#: Small fleets read in a fraction of a second: a faster clock keeps these tests short.
FAST = 30.0

# --- the clock ----------------------------------------------------------------------------


async def test_clock_jumps_over_idle_time_to_the_next_event() -> None:
    clock = ReplayClock(T0, speed=10.0)
    published: list[float] = []

    async def publish() -> bool:
        published.append(clock.now())
        return False  # nobody woke: the sleep goes on to its own end

    clock.schedule(T0 + 600, publish)
    loop_clock = LoopClock(clock)
    await asyncio.wait_for(loop_clock.sleep_until(T0 + 900), timeout=5)
    assert len(published) == 1
    assert published[0] == pytest.approx(T0 + 600, abs=1.0)
    assert clock.now() == pytest.approx(T0 + 900, abs=1.0)
    assert clock.skipped_s == pytest.approx(900, abs=1.0)


async def test_a_delivered_reading_stops_the_skipping_until_the_loop_wakes() -> None:
    clock = ReplayClock(T0, speed=10.0)
    woke = asyncio.Event()

    async def publish() -> bool:
        woke.set()  # what a feed's event does for the site loop
        return True

    clock.schedule(T0 + 300, publish)
    sleeper = asyncio.ensure_future(LoopClock(clock).sleep_until(T0 + 900))
    await asyncio.wait_for(woke.wait(), timeout=5)
    await asyncio.sleep(0.05)
    assert not sleeper.done()  # parked, running time: it does not jump on to T0 + 900
    assert clock.now() == pytest.approx(T0 + 300, abs=5.0)
    sleeper.cancel()


async def test_time_runs_at_the_speed_while_nothing_sleeps_and_passive_sleepers_wake() -> None:
    clock = ReplayClock(T0, speed=100.0)
    await asyncio.sleep(0.1)
    assert 5.0 <= clock.now() - T0 <= 60.0  # about 10 s: wall time scaled
    woken: list[float] = []

    async def reboot_comes_back() -> None:  # a miner's reboot, sleeping on the clock
        await clock.sleep_until(T0 + 3600)
        woken.append(clock.now())

    task = asyncio.ensure_future(reboot_comes_back())
    await asyncio.sleep(0)
    await asyncio.wait_for(LoopClock(clock).sleep_until(T0 + 7200), timeout=5)
    await asyncio.wait_for(task, timeout=5)
    assert woken[0] == pytest.approx(T0 + 3600, abs=5.0)  # the jump stopped there first


# --- agreement with the fast path ----------------------------------------------------------


def _assert_totals_agree(live: dict[str, Any], fast: dict[str, Any], rel: float) -> None:
    assert set(live) == set(fast)
    assert live["intervals"] == fast["intervals"]
    for key in COMPONENTS:
        assert math.isclose(live[key], fast[key], rel_tol=rel, abs_tol=1e-6), (
            key,
            live[key],
            fast[key],
        )


def _shape(value: Any) -> Any:
    """The keys of a JSON value, all the way down (lists by their first element)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def expected_ramp_ph_hours(table: IntervalTable, ramp_s: float) -> float:
    """Hashing a linear ramp holds back: half of every resumed PH/s for ``ramp_s``.

    Read from the ledger, independently of the simulator's own integral: each increase of
    a model's running PH/s from one interval to the next is miners resuming.
    """
    running = table.model_running_ph  # (intervals, models)
    rises = (running[1:] - running[:-1]).clip(min=0).sum()
    return float(rises) * ramp_s / 2 / 3600


#: 8 h of the first scarcity evening: both models curtail and resume.
WINDOW = ("2024-08-20T20:00:00+00:00", "2024-08-21T04:00:00+00:00")


@pytest.mark.parametrize("ramp_s", [0.0, 90.0])
async def test_live_path_agrees_with_the_fast_path_and_measures_ramp_losses(
    ramp_s: float,
) -> None:
    inputs = inputs_for(HEDGED, 16, start=WINDOW[0], end=WINDOW[1])
    ip = DEFAULT_SUITE_IPS[0] if ramp_s else DEFAULT_SUITE_IPS[1]
    live = await replay_live(inputs, LiveOptions(ip_start=ip, resume_ramp_s=ramp_s, speed=FAST))
    fast = replay(inputs, engine="fast")
    assert live.engine == "live"
    assert fast.engine == "fast"
    _assert_totals_agree(live.report["totals"], fast.report["totals"], rel=0.01)
    assert set(live.report) - set(fast.report) <= {"live_path"}
    for key in ("summary", "per_day", "per_model", "window", "feeds"):
        assert _shape(live.report[key]) == _shape(fast.report[key]), key

    lp = live.report["live_path"]
    assert lp["miners"] == 16
    assert lp["commands"]["sent"] == lp["commands"]["applied"] > 0
    assert lp["late_readings"] == 0
    losses = lp["ramp_losses"]
    expected = expected_ramp_ph_hours(live.table, ramp_s)
    if ramp_s == 0:
        assert losses["ph_hours_not_hashed"] == 0
        assert losses["mwh_not_drawn"] == 0
        assert losses["net_usd"] == 0
    else:
        assert expected > 0
        assert losses["ph_hours_not_hashed"] == pytest.approx(expected, rel=0.02)
        assert losses["mining_revenue_usd"] > 0
        assert losses["mwh_not_drawn"] > 0
        assert lp["net_usd_after_ramp_losses"] == pytest.approx(
            live.report["totals"]["net_usd"] + losses["net_usd"]
        )
        html = live_path_section(live.typed_report)
        assert "ramp losses" in html
        assert f"{losses['ph_hours_not_hashed']:,.4f}" in html


# --- the scarcity evening: curtail in time, resume under the ramp --------------------------


def assert_curtails_in_time_and_resumes_under_the_ramp(
    inputs: ReplayInputs, log: MeterLog, ramp_mw_per_min: float
) -> None:
    """From the meter: off before the first interval above the energy hashprice ends; back
    under the ramp limit afterwards."""
    fleet = inputs.model.fleet
    nominal_w = {
        name: float(fleet.nominal_power_w[fleet.model_index == m][0])
        for m, name in enumerate(fleet.model_names)
    }
    intervals = price_intervals(inputs)
    assert log.rows, "no cycle ran"

    def asleep(reading: dict[str, Any], model: str | None = None) -> bool:
        return all(
            m["mode"] == "sleep" and m["hashrate_th"] <= 0.02 * 200
            for m in reading["miners"]
            if model is None or m["model"] == model
        )

    # Each model: asleep on the meter within the first interval its EHP is below the price.
    firsts = []
    for name in fleet.model_names:
        s, e, _ = next(iv for iv in intervals if iv[2] > energy_hashprice_at(inputs, iv[0])[name])
        rows = [r for r in log.rows if s <= r[0] < e]
        assert rows, f"no cycle in the first interval above {name}'s energy hashprice"
        assert rows[0][1] < e, "the curtailment read finished after the interval ended"
        assert asleep(rows[0][2], name), f"{name} still hashing at {rows[0][1]}"
        firsts.append(s)
    # The whole fleet: off before the first interval above every model's EHP ends.
    s_all = max(firsts)
    e_all = next(e for s, e, _ in intervals if s == s_all)
    assert any(s_all <= d < e_all and asleep(r) for d, _, r in log.rows)

    # Resume: newly admitted nameplate power per cycle within the core's ramp budget.
    def admitted_w(reading: dict[str, Any]) -> float:
        return sum(nominal_w[m["model"]] for m in reading["miners"] if m["mode"] == "normal")

    steps = []
    for (d0, _, r0), (d1, _, r1) in itertools.pairwise(log.rows):
        rise = admitted_w(r1) - admitted_w(r0)
        budget = ramp_mw_per_min * 1e6 * (d1 - d0) / 60
        assert rise <= budget + 1e-6, (rise, budget, d1)
        steps.append(rise)
    # It did resume after the fleet was off, in more than one step, and all of it came back.
    after = [r for d, _, r in log.rows if d >= e_all]
    counts = [sum(m["mode"] == "normal" for m in r["miners"]) for r in after]
    assert counts[-1] == fleet.size, counts
    partial = [c for c in counts if 0 < c < fleet.size]
    assert partial, "the resume was not staggered by the ramp limit"


SCARCITY_PART = ("2024-08-20T20:00:00+00:00", "2024-08-21T03:00:00+00:00")


async def test_scarcity_evening_curtails_in_time_and_resumes_under_the_ramp_40_miners(
    tmp_path: Path,
) -> None:
    probe = await _probe_inputs(tmp_path, 40, start=SCARCITY_PART[0], end=SCARCITY_PART[1])
    inputs, ramp = probe
    log = MeterLog()
    result = await replay_live(
        inputs, LiveOptions(ip_start=DEFAULT_SUITE_IPS[2], speed=FAST), meter_probe=log
    )
    assert result.report["summary"]["fully_curtailed_hours"] > 0
    assert_curtails_in_time_and_resumes_under_the_ramp(inputs, log, ramp)


async def _probe_inputs(tmp_path: Path, miners: int, **window: str) -> tuple[ReplayInputs, float]:
    """A ramp limit that resumes the whole fleet in 45 minutes (three price intervals)."""
    sized = inputs_for(HEDGED, miners, **window)
    ramp = round(sized.model.fleet.nominal_mw / 45, 6)
    return inputs_for(scenario(tmp_path, ramp_up_mw_per_min=ramp), miners, **window), ramp


# --- the command line ------------------------------------------------------------------------


def test_cli_live_path_writes_the_fast_paths_report_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "live.json"
    fast_out = tmp_path / "fast.json"
    common = [str(HEDGED), "--from", "2024-08-20T22:00:00Z", "--to", "2024-08-21T02:00:00Z"]
    code = main(
        [
            "replay",
            *common,
            "--live-path",
            "--miners",
            "6",
            "--ip-start",
            DEFAULT_SUITE_IPS[3],
            "--speed",
            "20",
            "--report-json",
            str(out),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "live engine" in captured.out
    assert "ramp losses" in captured.out
    assert "live path" in captured.err  # progress lines (stderr is not a terminal here)
    assert "sim s/s" in captured.err
    assert main(["replay", *common, "--miners", "6", "--report-json", str(fast_out)]) == 0
    live, fast = json.loads(out.read_text()), json.loads(fast_out.read_text())
    assert live["engine"] == "live"
    assert fast["engine"] == "fast"
    assert live["live_path"]["miners"] == 6
    assert live["live_path"]["speed"] == 20
    _assert_totals_agree(live["totals"], fast["totals"], rel=0.01)


def test_cli_refuses_live_options_without_live_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(HEDGED), "--speed", "10", "--quiet"]) == 2
    assert "--speed" in capsys.readouterr().err
    assert main(["replay", str(HEDGED), "--live-path", "--engine", "loop"]) == 2
    assert "exclude" in capsys.readouterr().err
    assert main(["replay", str(HEDGED), "--live-path", "--fault", '{"kind": "gremlin"}']) == 2
    assert "--fault" in capsys.readouterr().err
    assert main(["replay", str(HEDGED), "--fault", '{"kind": "liar"}', "--quiet"]) == 2
    assert "only go with --live-path" in capsys.readouterr().err
    assert main(["replay", str(HEDGED), "--decisions", "--quiet"]) == 2
    assert "--decisions only go with --live-path" in capsys.readouterr().err
    assert main(["replay", str(HEDGED), "--live-path", "--decisions", "--quiet"]) == 2
    assert "--decisions and --quiet exclude each other" in capsys.readouterr().err


def _option(argv: list[str], name: str, *values: str) -> list[str]:
    """``argv`` with option ``name`` (and its value) replaced by ``values`` (none: removed)."""
    i = argv.index(name)
    has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
    return [*argv[:i], *values, *argv[i + 1 + has_value :]]


def test_make_demo_live_path_prints_each_decision_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's own live-path command line, on 6 miners over part of its window: the
    curtails of the scarcity evening print as they happen, with the prices that made them."""
    live_argv = demo_commands()[0]
    assert live_argv[:2] == ["replay", "deploy/scenarios/ercot-hb-south-hedged.toml"]
    assert {"--live-path", "--decisions"} <= set(live_argv)
    assert live_argv[live_argv.index("--window") + 1] == "scarcity-2024-08-20"
    assert live_argv[live_argv.index("--family") + 1] == "auto"
    window = inputs_for(HEDGED, 6, window="scarcity-2024-08-20")
    part = inputs_for(HEDGED, 6, start=SCARCITY_PART[0], end=SCARCITY_PART[1])
    assert window.start <= part.start < part.end <= window.end
    argv = _option(live_argv, "--window", "--from", SCARCITY_PART[0], "--to", SCARCITY_PART[1])
    argv = _option(argv, "--miners", "--miners", "6")
    argv = _option(argv, "--report-json", "--report-json", str(tmp_path / "live.json"))
    argv = [argv[0], str(ROOT / argv[1]), *argv[2:], "--ip-start", DEFAULT_SUITE_IPS[4]]
    assert main(argv) == 0
    out = capsys.readouterr().out

    antminers = privileged_port_allowed(DEFAULT_SUITE_IPS[4])
    families = "luxos 2, antminer 2, braiins 2" if antminers else "luxos 3, braiins 3"
    assert f"  miners      6 simulated: {families}\n" in out
    assert ("left out (port 80 needs root" in out) is not antminers
    decisions, summary = out.split("hashspark replay: ercot-hb-south-hedged", 1)
    assert "live engine" in summary
    blocks = ["  2024-" + b for b in decisions.split("\n  2024-")[1:]]
    curtails = [b for b in blocks if "\n" + " " * 24 + "curtail " in b]
    assert curtails, decisions
    # The first: the S19j Pros, because the price went above their energy hashprice.
    first = " ".join(curtails[0].split())
    assert "curtail 4 Antminer S19j Pro (" in first  # 4 of the 6 are S19j Pros
    assert "why: economics: price above the energy hashprice of Antminer S19j Pro (" in first
    at = first.split()[0]
    price = float(first.split("price ", 1)[1].split()[0].replace(",", ""))
    ehp = energy_hashprice_at(part, datetime.fromisoformat(at).timestamp())
    assert price > ehp["Antminer S19j Pro"]
    # Later every model is off: the price above both energy hashprices.
    assert any("-> 0/6 mining" in b for b in curtails)
    assert any(
        "above the energy hashprice of Antminer S19j Pro" in b and "and Antminer S21" in b
        for b in (" ".join(b.split()) for b in curtails)
    )

    report = json.loads((tmp_path / "live.json").read_text())
    assert report["engine"] == "live"
    assert report["live_path"]["family"] == ("mixed" if antminers else "luxos+braiins")
    assert "decisions" not in json.dumps(report)  # the report is what it was


@pytest.mark.parametrize("port_80", [True, False])
def test_family_auto_is_all_three_with_port_80_else_the_two_that_need_none(
    monkeypatch: pytest.MonkeyPatch, port_80: bool
) -> None:
    monkeypatch.setattr(live_module, "privileged_port_allowed", lambda ip: port_80)
    options, note = resolve_family(LiveOptions(family="auto"))
    specs = miner_specs(inputs_for(HEDGED, 6, window="scarcity-2024-08-20"), options)
    families = [s.family.value for s in specs]
    if port_80:
        assert (options.family, note) == ("mixed", None)
        assert families == ["luxos", "antminer", "braiins"] * 2
    else:
        assert options.family == "luxos+braiins"
        assert note is not None
        assert "antminer left out (port 80 needs root or CAP_NET_BIND_SERVICE)" in note
        assert families == ["luxos", "braiins"] * 3


def test_make_demo_still_writes_the_years_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's second command, as the Makefile runs it (from the repository's layout)."""
    recipe = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "\t@mkdir -p out\n" in recipe
    fast_argv = demo_commands()[1]
    assert fast_argv == [
        "replay",
        "deploy/scenarios/ercot-hb-south-hedged.toml",
        "--report-json",
        "out/demo-report.json",
    ]
    for folder in ("deploy", "simulators"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(fast_argv) == 0
    out = capsys.readouterr().out
    assert "(site hb-south, fast engine," in out
    assert "    net                           1,210,907.74\n" in out  # as README.md shows it
    report = json.loads((tmp_path / "out" / "demo-report.json").read_text())
    assert report["engine"] == "fast"
    assert report["totals"]["intervals"] == 28_796
    # tests/golden/independent.py's compute_totals gives the same on the fee-inclusive recording
    assert report["totals"]["net_usd"] == pytest.approx(1_210_907.74, abs=0.005)


# --- faults are real ---------------------------------------------------------------------------


async def test_a_lying_miner_is_unverified_and_keeps_mining_through_the_scarcity() -> None:
    inputs = inputs_for(
        HEDGED, 10, start="2024-08-20T23:30:00+00:00", end="2024-08-21T01:30:00+00:00"
    )
    liars = ("127.50.70.1", "127.50.70.7")  # an S19j Pro and an S21 (6 then 4 of them)
    live = await replay_live(
        inputs,
        LiveOptions(
            ip_start="127.50.70.1",
            speed=FAST,
            faults=(FaultConfig(kind=FaultKind.LIAR, miners=liars),),
            driver=live_driver_config().model_copy(update={"confirm_timeout_s": 0.5}),
        ),
    )
    fast = replay(inputs, engine="fast").report["totals"]
    lp = live.report["live_path"]
    assert lp["faults"] == [{"kind": "liar", "miners": list(liars)}]
    assert lp["commands"].get("unverified", 0) > 0  # re-commanded, never confirmed
    # The two liars mined through intervals the fast path curtails: the ledger shows it.
    assert live.report["totals"]["mined_mwh"] > fast["mined_mwh"] * 1.05
    assert live.report["totals"]["curtailed_mwh"] < fast["curtailed_mwh"]
