"""Options on the ERCOT recording: issue 17's figures for one call on four settlement bases,
both replay engines agreeing, and the option's flows in the ledger, metrics and report."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from adapters.ledger.sqlite import SqliteLedger
from adapters.metrics.book import PnlBook
from controller.accounting.accrual import IntervalAccumulator
from controller.accounting.instruments import SpotSupply
from controller.accounting.options import Basis, Option
from controller.accounting.report import TOTAL_KEYS
from controller.app.replay.compare import run_book, run_strategy, strategies_from_config
from controller.app.replay.runner import ReplayError, ReplayInputs, prepare, replay
from controller.app.replay.summary import format_summary
from controller.config import load_config
from controller.decision.policy import PolicyParams
from controller.domain import FleetSpec, Reading
from controller.site_model import SiteModel
from tests.metrics_kit import metrics_text

ROOT = Path(__file__).resolve().parents[1]
DA_CALL = ROOT / "deploy/scenarios/ercot-hb-south-da-call.toml"
LONG_CALL = ROOT / "deploy/scenarios/ercot-hb-south-long-call-spot.toml"
CENTRAL = ZoneInfo("America/Chicago")


def _call(basis: Basis) -> Option:
    # Issue 17's call: 3.0 MW (the hedged scenario's quantity) at a 200 strike, 7x24, the
    # whole recording; daily averages over Central-time days, as ERCOT's trading days.
    return Option("call", "power", "long", "call", 200.0, 3.0, basis, tz=CENTRAL)


@pytest.fixture(scope="module")
def whole() -> ReplayInputs:
    return prepare(load_config(DA_CALL))


@pytest.mark.parametrize(
    ("basis", "usd"),
    [
        ("interval", 33_163.69),  # issue 17: 33.2k on 15-minute real-time prices
        ("day_ahead", 11_137.47),  # 11.1k on hourly day-ahead prices
        ("daily", 2_233.79),  # 2.2k on daily averages
        ("hourly", 29_506.25),  # hourly averages of real-time prices (not in the issue)
    ],
)
def test_the_same_call_pays_what_issue_17_measured_on_each_basis(
    whole: ReplayInputs, basis: Basis, usd: float
) -> None:
    table = run_book(whole, SpotSupply(), (_call(basis),))
    flows = {(i, c): v.sum() for i, c, v in table.settlement.by_instrument}
    assert round(flows[("call", "option_payout_usd")], 2) == usd
    assert round(-table.settlement.call_payout_usd.sum(), 2) == usd


def test_the_day_ahead_column_is_the_shared_files_beside_the_real_time_one(
    whole: ReplayInputs,
) -> None:
    da = whole.day_ahead
    assert da is not None
    np.testing.assert_array_equal(da.times, whole.price.times)
    # ERCOT's day-ahead price is hourly: repeated on its four quarter hours except where the
    # source's author gap-filled (25 local hours, see the SOURCE file).
    hour = np.floor(da.times / 3600.0)
    varies = {h for h in np.unique(hour) if np.unique(da.values[hour == h]).size > 1}
    assert 0 < len(varies) <= 25


@pytest.mark.parametrize("basis", ["interval", "hourly", "daily", "day_ahead"])
def test_loop_and_fast_engines_agree_on_each_basis(basis: Basis) -> None:
    inputs = prepare(
        load_config(DA_CALL),
        start=datetime(2024, 8, 19, 5, tzinfo=UTC),
        end=datetime(2024, 8, 23, 5, tzinfo=UTC),
    )
    option = replace(_call(basis), side="short", premium_per_unit=0.5)
    inputs = replace(inputs, model=replace(inputs.model, hedges=(option,)))
    fast = replay(inputs, engine="fast").table
    loop = replay(inputs, engine="loop").table
    np.testing.assert_array_equal(fast.inputs.start, loop.inputs.start)
    for key in TOTAL_KEYS:
        if key in ("intervals", "hours"):
            continue
        np.testing.assert_allclose(
            getattr(fast.settlement, key), getattr(loop.settlement, key), atol=1e-6, err_msg=key
        )
    assert fast.settlement.call_payout_usd.sum() > 0  # the scarcity days pay on every basis


def test_the_long_call_has_report_lines_on_both_engines() -> None:
    inputs = prepare(
        load_config(LONG_CALL),
        start=datetime(2024, 6, 1, 5, tzinfo=UTC),
        end=datetime(2024, 6, 2, 5, tzinfo=UTC),
    )
    for engine in ("fast", "loop"):
        result = replay(inputs, engine=engine)
        rows = {(r["id"], r["component"]): r["usd"] for r in result.report["per_instrument"]}
        assert rows[("long-call-200", "option_premium_usd")] == -30_000.0  # paid at the start
        assert rows[("long-call-200", "option_payout_usd")] == 0.0  # a calm day
        text = format_summary(result, None)
        assert "long-call-200.option_premium_usd" in text
        assert "long-call-200.option_payout_usd" in text


def test_an_hourly_option_books_on_the_hours_close_in_the_ledger_and_metrics(
    tmp_path: Path,
) -> None:
    h = np.array([[0.0, 200.0]])
    w = np.array([[0.0, 3500.0]])
    fleet = FleetSpec(h, w, np.ones((1, 2), bool), np.zeros(1, dtype=np.int64), ("S21",))
    option = Option("cap", "power", "long", "call", 200.0, 2.0, "hourly", premium_per_unit=1.0)
    site = SiteModel("s", fleet, PolicyParams(supply=SpotSupply()), SpotSupply(), (option,))
    acc = IntervalAccumulator(site)
    acc.set_load(np.array([0.0]), np.array([0.0]), 0.0)
    records = []
    for k, price in enumerate((100.0, 300.0, 500.0, 100.0)):  # the hour averages 250
        t = 900.0 * k
        acc.open(
            t,
            (t, 0.0, False, False, (), ()),
            Reading(price, t, "t"),
            Reading(50.0, 0.0, "t"),
            failsafe=None,
            opportunity_cost=price,
            running=0,
            curtailed=1,
        )
        record = acc.close(t + 900.0)
        assert record is not None
        records.append(record)
    payouts = [
        {(i, c): u for i, c, u in r.instruments}[("cap", "option_payout_usd")] for r in records
    ]
    assert payouts == [0.0, 0.0, 0.0, 100.0]  # (250 - 200) * 2 MW * 1 h when the hour closes

    ledger = SqliteLedger.open(
        tmp_path / "ledger.sqlite3", run_id="r", config_version="v", started_at=0.0
    )
    for record in records:
        ledger.append(record)
    totals = ledger.instrument_totals("s")
    assert totals[("cap", "option_payout_usd")] == 100.0
    assert totals[("cap", "option_premium_usd")] == pytest.approx(-2.0)  # 1 USD/MWh * 2 MWh
    book = PnlBook()
    book.seed(ledger.records("s"))
    ledger.close()
    text = metrics_text(book)
    assert (
        'hashspark_instrument_option_payout_usd_total{direction="in",instrument="cap",site="s"}'
        " 100.0" in text
    )
    assert (
        'hashspark_instrument_option_premium_usd_total{direction="out",instrument="cap",site="s"}'
        " 2.0" in text
    )


def test_compare_shows_the_same_call_on_each_basis(whole: ReplayInputs) -> None:
    compare = whole.loaded.config.compare
    assert compare is not None
    strategies = strategies_from_config(compare)
    net = {s.name: run_strategy(whole, s).table.settlement.net_usd.sum() for s in strategies}
    # Same supply, same premium: the books differ by what the call paid out on each basis.
    assert round(net["ppa+call-daily"] - net["ppa+call-rt"], 2) == round(33_163.69 - 2_233.79, 2)
    assert round(net["ppa+call-da"] - net["ppa+call-rt"], 2) == round(33_163.69 - 11_137.47, 2)
    assert "on day-ahead prices" in {s.name: s.description for s in strategies}["ppa+call-da"]


def test_a_day_ahead_book_without_day_ahead_prices_is_one_line(whole: ReplayInputs) -> None:
    bare = replace(whole, day_ahead=None)
    with pytest.raises(ReplayError, match="call settles on day-ahead prices: the site has no"):
        run_book(bare, SpotSupply(), (_call("day_ahead"),))
