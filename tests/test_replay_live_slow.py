"""The live path's acceptance runs: 200 miners over two days, 1,000 over the scarcity evening.

Slow (tens of minutes on a shared two-core machine): ``make test-slow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.app.replay.live import LiveOptions, replay_live
from controller.app.replay.runner import replay
from tests.live_kit import HEDGED, SLOW_SUITE_IPS, MeterLog, inputs_for
from tests.test_replay_live import (
    _assert_totals_agree,
    _probe_inputs,
    assert_curtails_in_time_and_resumes_under_the_ramp,
    expected_ramp_ph_hours,
)

TWO_DAYS = ("2024-08-20T00:00:00+00:00", "2024-08-22T00:00:00+00:00")


@pytest.mark.slow
@pytest.mark.parametrize("ramp_s", [0.0, 90.0])
async def test_200_miners_over_two_days_agree_with_the_fast_path(ramp_s: float) -> None:
    inputs = inputs_for(HEDGED, 200, start=TWO_DAYS[0], end=TWO_DAYS[1])
    live = await replay_live(inputs, LiveOptions(ip_start=SLOW_SUITE_IPS[1], resume_ramp_s=ramp_s))
    fast = replay(inputs, engine="fast")
    assert live.report["totals"]["intervals"] == 192
    _assert_totals_agree(live.report["totals"], fast.report["totals"], rel=0.01)
    lp = live.report["live_path"]
    assert lp["commands"]["sent"] == lp["commands"]["applied"] > 0
    losses = lp["ramp_losses"]
    if ramp_s == 0:
        assert losses["ph_hours_not_hashed"] == 0
    else:
        # The difference the ramps make, measured on the simulator, against the ledger's
        # own count of resumed hashrate.
        expected = expected_ramp_ph_hours(live.table, ramp_s)
        assert expected > 0
        assert losses["ph_hours_not_hashed"] == pytest.approx(expected, rel=0.02)
        assert losses["net_usd"] < 0 or losses["mining_revenue_usd"] > 0


@pytest.mark.slow
async def test_1000_miners_curtail_on_the_scarcity_evening_and_resume_under_the_ramp(
    tmp_path: Path,
) -> None:
    inputs, ramp = await _probe_inputs(tmp_path, 1000, window="scarcity-2024-08-20")
    log = MeterLog()
    # Speed 5: a 1,000-miner read takes seconds of wall time, and the clock runs meanwhile;
    # a slower clock keeps every cycle well inside its 15-minute interval on a busy machine.
    result = await replay_live(
        inputs, LiveOptions(ip_start=SLOW_SUITE_IPS[0], speed=5.0), meter_probe=log
    )
    assert result.report["live_path"]["late_readings"] == 0
    assert result.report["live_path"]["miners"] == 1000
    assert result.report["summary"]["fully_curtailed_hours"] > 0
    assert_curtails_in_time_and_resumes_under_the_ramp(inputs, log, ramp)
