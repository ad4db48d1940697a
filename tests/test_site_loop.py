"""The site loop on a simulated clock against the fast path, and its own behaviour."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.accounting.report import TOTAL_KEYS
from controller.app.replay.runner import ReplayError, prepare, replay
from controller.config import load_config
from controller.runtime.clocks.system import SystemClock
from tests.scenario_kit import T0, write_scenario

ROOT = Path(__file__).resolve().parents[1]
HEDGED = ROOT / "deploy/scenarios/ercot-hb-south-hedged.toml"


def _close(a: float, b: float, rel: float = 1e-6) -> bool:
    """Relative agreement, with an absolute floor for totals that are zero up to float noise."""
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-9


def test_loop_and_fast_path_agree_over_seven_days_of_the_hedged_scenario() -> None:
    # 2024-08-17 .. 2024-08-24 holds the 2024-08-20 scarcity evening (4,857 USD/MWh).
    inputs = prepare(
        load_config(HEDGED),
        start=datetime(2024, 8, 17, tzinfo=UTC),
        end=datetime(2024, 8, 24, tzinfo=UTC),
    )
    fast = replay(inputs, engine="fast").report
    loop = replay(inputs, engine="loop").report
    assert fast["engine"] == "fast"
    assert loop["engine"] == "loop"
    assert fast["totals"]["intervals"] == 7 * 96
    assert fast["totals"]["call_payout_usd"] > 0  # the window does exercise the call
    for key in TOTAL_KEYS:
        assert _close(fast["totals"][key], loop["totals"][key]), key
    for day_f, day_l in zip(fast["per_day"], loop["per_day"], strict=True):
        assert day_f["date"] == day_l["date"]
        assert _close(day_f["net_usd"], day_l["net_usd"])
    for mf, ml in zip(fast["per_model"], loop["per_model"], strict=True):
        assert _close(mf["mined_mwh"], ml["mined_mwh"])
        assert _close(mf["curtailed_hours"], ml["curtailed_hours"])


def _prices(values: list[float], step: float = 900.0) -> list[tuple[float, float]]:
    return [(T0 + i * step, v) for i, v in enumerate(values)]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prices=st.lists(st.floats(-100, 400, allow_nan=False), min_size=2, max_size=12),
    hashprice=st.floats(30, 80),
    supply=st.sampled_from(
        [
            'type = "spot"',
            'type = "fixed_ppa"\nquantity_mw = 0.03\nprice_usd_per_mwh = 45',
            'type = "capped_ppa"\nquantity_mw = 0.03\nprice_usd_per_mwh = 45\n'
            "strike_usd_per_mwh = 90",
        ]
    ),
)
def test_fast_path_equals_the_loop_for_any_prices(
    tmp_path: Path, prices: list[float], hashprice: float, supply: str
) -> None:
    miners = (
        '[[sites.miners]]\nmodel = "tuned"\ncount = 3\n'
        "curve = [{ hashrate_th = 70, power_w = 1750 }, { hashrate_th = 90, power_w = 2430 },"
        " { hashrate_th = 104, power_w = 3068 }]\n\n"
        '[[sites.miners]]\nmodel = "Antminer S21"\ncount = 2\n'
    )
    hedges = (
        '[[sites.hedges]]\ntype = "short_call"\nid = "c"\nquantity_mw = 0.01\n'
        "strike_usd_per_mwh = 150\npremium_usd_per_mwh = 2\n"
    )
    path = write_scenario(
        tmp_path,
        _prices(prices),
        [(T0 - 3600, hashprice)],
        supply=supply,
        miners=miners,
        hedges=hedges,
    )
    inputs = prepare(load_config(path))
    fast = replay(inputs, engine="fast").report["totals"]
    loop = replay(inputs, engine="loop").report["totals"]
    for key in TOTAL_KEYS:
        assert _close(fast[key], loop[key], 1e-9), key


def test_stale_price_trips_the_failsafe_in_both_engines(tmp_path: Path) -> None:
    # A 2-hour hole after the fourth price; max age 30 min; curtail on stale input.
    rows = [*_prices([20.0] * 4), (T0 + 3 * 900 + 7200, 20.0), (T0 + 3 * 900 + 8100, 20.0)]
    path = write_scenario(
        tmp_path,
        rows,
        [(T0 - 3600, 50.0)],
        failsafe='price_max_age_s = 1800\naction = "curtail"',
    )
    inputs = prepare(load_config(path))
    fast = replay(inputs, engine="fast").report
    loop = replay(inputs, engine="loop").report
    # Stale from 30 min after the fourth reading until the next one: 1.5 h, fleet off.
    assert fast["summary"]["failsafe_hours"] == pytest.approx(1.5)
    assert loop["summary"]["failsafe_hours"] == pytest.approx(1.5)
    assert fast["summary"]["fully_curtailed_hours"] == pytest.approx(1.5)
    for key in TOTAL_KEYS:
        assert _close(fast["totals"][key], loop["totals"][key]), key


def test_hold_failsafe_runs_on_the_loop_and_keeps_the_fleet_where_it_is(tmp_path: Path) -> None:
    # High price (fleet curtailed), then the feed goes silent: hold keeps it curtailed.
    rows = [(T0, 5000.0), (T0 + 900, 5000.0), (T0 + 900 + 7200, 20.0)]
    path = write_scenario(
        tmp_path, rows, [(T0 - 3600, 50.0)], failsafe='price_max_age_s = 1800\naction = "hold"'
    )
    inputs = prepare(load_config(path))
    with pytest.raises(ReplayError, match="hold"):
        replay(inputs, engine="fast")
    result = replay(inputs, engine="auto")
    assert result.engine == "loop"
    s = result.report["summary"]
    assert s["failsafe_hours"] == pytest.approx(1.5)
    assert s["fully_curtailed_hours"] == pytest.approx(0.25 + 0.5 + 1.5)


def test_policies_with_memory_run_on_the_loop(tmp_path: Path) -> None:
    # Price flips every 15 minutes; with a 30-minute resume delay the fleet stays off
    # after the first spike instead of flapping.
    flips = [20.0, 500.0] * 4
    path = write_scenario(
        tmp_path, _prices(flips), [(T0 - 3600, 50.0)], policy="resume_delay_s = 1800"
    )
    inputs = prepare(load_config(path))
    (tmp_path / "pure").mkdir()
    pure_path = write_scenario(tmp_path / "pure", _prices(flips), [(T0 - 3600, 50.0)])
    pure = replay(prepare(load_config(pure_path)), engine="fast").report["summary"]
    delayed = replay(inputs).report
    assert delayed["engine"] == "loop"
    assert pure["fully_curtailed_hours"] == pytest.approx(1.0)
    assert delayed["summary"]["fully_curtailed_hours"] == pytest.approx(1.75)


def test_ramp_limit_staggers_the_restart(tmp_path: Path) -> None:
    # Ten miners (~32 kW) off at a spike, then cheap power with a ramp of 3.5 kW/min:
    # the restart takes about nine minutes instead of one cycle.
    path = write_scenario(
        tmp_path,
        _prices([5000.0, 20.0, 20.0]),
        [(T0 - 3600, 50.0)],
        policy="ramp_up_mw_per_min = 0.0035",
    )
    ramped = replay(prepare(load_config(path))).report
    assert ramped["engine"] == "loop"
    t = ramped["totals"]
    nominal = ramped["summary"]["nominal_mw"]
    unramped_curtailed = nominal * 0.25
    assert t["curtailed_mwh"] > unramped_curtailed * 1.2
    assert t["mined_mwh"] + t["curtailed_mwh"] == pytest.approx(nominal * 0.75)


def test_window_before_the_recording_is_refused(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, _prices([20.0, 30.0]), [(T0, 50.0)])
    with pytest.raises(ReplayError, match="before its first observation"):
        prepare(load_config(path), start=datetime(2024, 5, 1, tzinfo=UTC))


async def test_system_clock_sleeps_until_the_deadline() -> None:
    clock = SystemClock()
    t = clock.now() + 0.05
    await clock.sleep_until(t)
    assert clock.now() >= t
    before = clock.now()
    await clock.sleep_until(before - 10)  # a deadline in the past returns at once
    assert clock.now() - before < 0.05
