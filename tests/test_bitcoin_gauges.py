"""The site's Bitcoin inputs as gauges: the BTC price, the difficulty and the fees per block
the site loop read at its last cycle, with their ages, as the price and hashprice are shown."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from adapters.feeds.recorded import RecordedFeed
from adapters.ledger.memory import MemoryLedger
from adapters.metrics.book import PnlBook
from adapters.metrics.collector import Metrics
from adapters.miners.simulated import InProcessFleet
from controller.app.assemble import assemble
from controller.app.replay.runner import load_bitcoin, prepare, with_fleet_size
from controller.config import load_config
from controller.domain import Reading, Recording
from controller.runtime.clocks.simulated import SimulatedClock
from controller.status import SiteStatus

ROOT = Path(__file__).resolve().parent.parent
BTC_HEDGES = ROOT / "deploy" / "scenarios" / "ercot-hb-south-btc-hedges.toml"
SITE = "hb-south"


def _holding(rec: Recording, t: float) -> tuple[float, float]:
    """The value in force at ``t`` and when it was observed."""
    k = int(np.searchsorted(rec.times, t, side="right")) - 1
    return float(rec.values[k]), float(rec.times[k])


def _samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("hashspark_")
    }


def test_the_site_loop_exports_its_bitcoin_inputs_and_their_ages() -> None:
    loaded = load_config(BTC_HEDGES)
    start = datetime(2024, 7, 2, 20, tzinfo=UTC)
    inputs = with_fleet_size(
        prepare(loaded, start=start, end=datetime(2024, 7, 3, 2, tzinfo=UTC)), 4
    )
    parts = load_bitcoin(loaded, inputs.site)
    assert parts.btc_usd is not None
    assert parts.difficulty is not None
    assert parts.fees is not None
    clock = SimulatedClock(inputs.start)
    registry = CollectorRegistry()
    metrics = Metrics(registry, PnlBook())
    loop = assemble(
        inputs.model,
        clock=clock,
        price_feed=RecordedFeed(inputs.price),
        hashprice_feed=RecordedFeed(inputs.hashprice),
        btc_usd_feed=RecordedFeed(parts.btc_usd),
        difficulty_feed=RecordedFeed(parts.difficulty),
        fees_feed=RecordedFeed(parts.fees),
        driver=InProcessFleet(inputs.model.fleet, clock),
        ledger=MemoryLedger(),
        cycle_s=inputs.cycle_s,
        observer=metrics,
    )
    asyncio.run(loop.run(until=inputs.end))
    assert loop.last_status is not None
    at = loop.last_status.at
    assert at > datetime(2024, 7, 3, tzinfo=UTC).timestamp()  # past a new day's readings
    text = generate_latest(registry)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: make test installs Debian's prometheus package")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert (lint.returncode, lint.stdout, lint.stderr) == (0, b"", b"")
    samples = _samples(text.decode())

    for feed, rec, metric, scale in (
        ("btc_usd", parts.btc_usd, "hashspark_btc_price_usd_per_btc", 1.0),
        ("difficulty", parts.difficulty, "hashspark_bitcoin_difficulty", 1e12),
        ("fees", parts.fees, "hashspark_bitcoin_fees_btc_per_block", 1.0),
    ):
        value, observed = _holding(rec, at)
        assert samples[f'{metric}{{site="{SITE}"}}'] == pytest.approx(value * scale, rel=1e-12)
        age = samples[f'hashspark_feed_age_seconds{{feed="{feed}",site="{SITE}"}}']
        assert age == pytest.approx(at - observed)
        assert observed == datetime(2024, 7, 3, tzinfo=UTC).timestamp()  # the new day's
    btc_age = samples[f'hashspark_feed_age_seconds{{feed="btc_usd",site="{SITE}"}}']
    # The derived hashprice is made of exactly these parts, so it reads as fresh as the newest.
    hp_age = samples[f'hashspark_feed_age_seconds{{feed="hashprice",site="{SITE}"}}']
    assert hp_age == pytest.approx(btc_age)


def test_a_site_without_bitcoin_inputs_exports_no_bitcoin_gauge() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, PnlBook())
    metrics.status(
        SiteStatus(
            site_id="s",
            at=1_000.0,
            price=Reading(20.0, 900.0, "t"),
            hashprice=Reading(50.0, 400.0, "t"),
            opportunity_cost_usd_per_mwh=20.0,
            net_hashprice_usd_per_ph_day=49.0,
            decision_reason="economics",
            failsafe_reason=None,
            models=(),
            load_mw=1.0,
            nominal_mw=1.0,
            spread_usd_per_mwh=None,
            ramp_limited=0,
        )
    )
    text = generate_latest(registry).decode()
    ages = {k: v for k, v in _samples(text).items() if k.startswith("hashspark_feed_age")}
    assert ages == {
        'hashspark_feed_age_seconds{feed="price",site="s"}': 100.0,
        'hashspark_feed_age_seconds{feed="hashprice",site="s"}': 600.0,
    }
    for name in ("btc_price_usd_per_btc", "bitcoin_difficulty", "bitcoin_fees_btc_per_block"):
        assert f"# TYPE hashspark_{name} gauge" in text  # declared, with no sample
        assert f"hashspark_{name}{{" not in text
