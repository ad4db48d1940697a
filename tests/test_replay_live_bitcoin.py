"""The live path feeds the site's Bitcoin recordings: its Bitcoin instruments book as fast.

The window crosses midnight UTC at the end of June 2024, a Sunday: the BTC forward's daily
mark, the collar's week, and the put's, the call's and the difficulty swap's month all
settle in it, on the references the live path published through the in-process adapter.
"""

from __future__ import annotations

import math
from typing import Any

from controller.accounting.bitcoin import BITCOIN_COMPONENTS
from controller.app.replay.live import LiveOptions, replay_live
from controller.app.replay.runner import replay
from tests.live_kit import ROOT, inputs_for

BTC_HEDGES = ROOT / "deploy" / "scenarios" / "ercot-hb-south-btc-hedges.toml"
WINDOW = ("2024-06-30T22:00:00+00:00", "2024-07-01T02:00:00+00:00")
IP_START = "127.50.90.1"
#: The live-vs-fast tolerance of ``test_replay_live.py``.
REL = 0.01


def bitcoin_flows(report: dict[str, Any]) -> dict[tuple[str, str], float]:
    """(instrument, component) -> USD of the report's Bitcoin instrument rows."""
    return {
        (row["id"], row["component"]): row["usd"]
        for row in report["per_instrument"] or ()
        if row["component"] in BITCOIN_COMPONENTS
    }


async def test_live_path_books_the_bitcoin_instruments_as_the_fast_path() -> None:
    inputs = inputs_for(BTC_HEDGES, 4, start=WINDOW[0], end=WINDOW[1])
    live = await replay_live(inputs, LiveOptions(ip_start=IP_START, speed=30.0))
    fast = replay(inputs, engine="fast")
    assert fast.engine == "fast"
    expected = bitcoin_flows(fast.report)
    assert {i for i, _ in expected} == {
        "btc-fwd-dec",
        "btc-put-55k",
        "btc-call-90k",
        "btc-collar",
        "diff-swap-90t",
        "hp-vol-swap",  # its term ends in 2025: booked as zero here
    }
    # What settles on the references the live path now publishes: without the BTC price
    # and the difficulty feeds the loop books the forward's mark and the swap as zero.
    assert expected["btc-fwd-dec", "btc_forward_settlement_usd"] > 1000
    assert expected["diff-swap-90t", "difficulty_swap_usd"] < 0  # 83.7e12 < the 90e12 strike
    got = bitcoin_flows(live.report)
    assert set(got) == set(expected)
    for key, usd in expected.items():
        assert math.isclose(got[key], usd, rel_tol=REL, abs_tol=1e-6), (key, got[key], usd)
    lp = live.report["live_path"]
    assert lp["readings_not_delivered"] == 0
    assert lp["late_readings"] == 0
