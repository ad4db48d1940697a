"""Bitcoin instruments: each worked example of docs/economics.md ("Bitcoin instruments"),
settled by the core and by the site loop's accumulator one interval at a time, booked in
the ledger's instrument flows and exported as metrics."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from adapters.ledger.sqlite import SqliteLedger
from adapters.metrics.book import PnlBook
from controller.accounting.accrual import IntervalAccumulator
from controller.accounting.bitcoin import (
    BitcoinHedge,
    BtcForward,
    BtcOptionStrip,
    DifficultySwap,
    VolatilitySwap,
)
from controller.accounting.instruments import SpotSupply
from controller.accounting.settlement import IntervalInputs, settle
from controller.decision.policy import PolicyParams
from controller.domain import FleetSpec, Reading
from controller.site_model import SiteModel
from tests.metrics_kit import metrics_text

DAY = 86_400.0
T0 = datetime(2025, 1, 6, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
# The BTC closes of docs/economics.md's examples, one a day.
BTC = (57_000.0, 58_000.0, 59_000.0, 62_000.0)


def _days(values: tuple[float, ...], start: float = T0) -> tuple[np.ndarray, np.ndarray]:
    t0 = start + DAY * np.arange(len(values))
    return t0, t0 + DAY


def _inputs(
    btc: tuple[float, ...] | None = None,
    hashprice: tuple[float, ...] | None = None,
    difficulty: tuple[float, ...] | None = None,
    *,
    start: float = T0,
) -> IntervalInputs:
    n = len(btc or hashprice or difficulty or ())
    t0, t1 = _days(tuple(range(n)), start)
    zeros = np.zeros(n)
    return IntervalInputs(
        start=t0,
        end=t1,
        price_usd_per_mwh=zeros,
        hashprice_usd_per_ph_day=np.asarray(hashprice or [50.0] * n, dtype=np.float64),
        running_mw=zeros,
        running_ph=zeros,
        nominal_mw=0.0,
        btc_usd_per_btc=None if btc is None else np.asarray(btc),
        difficulty_t=None if difficulty is None else np.asarray(difficulty),
    )


def _flows(hedge: BitcoinHedge, inputs: IntervalInputs) -> dict[str, float]:
    result = settle(inputs, supply=SpotSupply(), hedges=(hedge,), pool_fee=0.0)
    return {c: float(v.sum()) for _, c, v in result.by_instrument}


PUT = BtcOptionStrip("put", 0.1, 60_000.0, None, put_premium_usd_per_btc=400.0)
CALL = BtcOptionStrip("call", 0.1, None, 60_000.0, call_premium_usd_per_btc=300.0)
TERM = (T0, T0 + 4 * DAY)

# (hedge, inputs, expected USD per component): the hand computations of docs/economics.md.
CASES: list[tuple[BitcoinHedge, IntervalInputs, dict[str, float]]] = [
    # Short 2 BTC at 60,000 marked daily on 61,000 / 58,500 / 59,000:
    # -2,000 + 5,000 - 1,000 = 2,000 = (60,000 - 59,000) * 2.
    (
        BtcForward("fwd", 2.0, 60_000.0, T0, T0 + 3 * DAY),
        _inputs(btc=(61_000.0, 58_500.0, 59_000.0)),
        {"btc_forward_settlement_usd": 2_000.0},
    ),
    # Long put 0.1 BTC/day at 60,000, premium 400/BTC, on the term's mean close 59,000:
    # payout 1,000 * 0.1 * 4 = 400, premium -400 * 0.1 * 4 = -160.
    (
        BtcOptionStrip(
            "put",
            0.1,
            60_000.0,
            None,
            put_premium_usd_per_btc=400.0,
            settlement="term",
            start=TERM[0],
            end=TERM[1],
        ),
        _inputs(btc=BTC),
        {"btc_option_premium_usd": -160.0, "btc_put_payout_usd": 400.0},
    ),
    # The same put settled daily: 300 + 200 + 100 + 0 = 600.
    (
        BtcOptionStrip(
            "put", 0.1, 60_000.0, None, put_premium_usd_per_btc=400.0, settlement="daily"
        ),
        _inputs(btc=BTC),
        {"btc_option_premium_usd": -160.0, "btc_put_payout_usd": 600.0},
    ),
    # Short call at 60,000, premium 300/BTC, daily: premium +120, payout -(2,000 * 0.1).
    (
        BtcOptionStrip(
            "call", 0.1, None, 60_000.0, call_premium_usd_per_btc=300.0, settlement="daily"
        ),
        _inputs(btc=BTC),
        {"btc_option_premium_usd": 120.0, "btc_call_payout_usd": -200.0},
    ),
    # Zero-cost collar 58,000 / 61,000, daily: the put pays 100 on day 1, the call takes
    # 100 on day 4.
    (
        BtcOptionStrip("collar", 0.1, 58_000.0, 61_000.0, settlement="daily"),
        _inputs(btc=BTC),
        {"btc_option_premium_usd": 0.0, "btc_put_payout_usd": 100.0, "btc_call_payout_usd": -100.0},
    ),
    # Long difficulty swap, strike 100e12, 1,000 USD/day, monthly over January 2025
    # (31 days): 16 days at 100, 15 at 115.5 -> mean 107.5, 1,000 * 0.075 * 31 = 2,325.
    (
        DifficultySwap("diff", "long", 100.0, 1_000.0, "monthly"),
        _inputs(
            difficulty=(100.0,) * 16 + (115.5,) * 15,
            start=datetime(2025, 1, 1, tzinfo=UTC).timestamp(),
        ),
        {"difficulty_swap_usd": 2_325.0},
    ),
    # Hashprice 50, 52, 49, 51, 50 over a 5-day term: sigma = 80.2749 points;
    # long 1,000 USD/point against a 60 volatility strike: 20,274.87.
    (
        VolatilitySwap("vol", "long", "volatility", 60.0, 1_000.0, T0, T0 + 5 * DAY),
        _inputs(hashprice=(50.0, 52.0, 49.0, 51.0, 50.0)),
        {"volatility_swap_usd": 20_274.87},
    ),
    # The same against a variance strike 60 (3,600), 10 USD per variance point: 28,440.55.
    (
        VolatilitySwap("var", "long", "variance", 60.0, 10.0, T0, T0 + 5 * DAY),
        _inputs(hashprice=(50.0, 52.0, 49.0, 51.0, 50.0)),
        {"volatility_swap_usd": 28_440.55},
    ),
]


@pytest.mark.parametrize(("hedge", "inputs", "expected"), CASES, ids=lambda c: None)
def test_worked_examples_settle_as_computed_by_hand(
    hedge: BitcoinHedge, inputs: IntervalInputs, expected: dict[str, float]
) -> None:
    flows = _flows(hedge, inputs)
    assert flows.keys() == expected.keys()
    for component, usd in expected.items():
        assert flows[component] == pytest.approx(usd, abs=0.005), component


def test_realised_volatility_is_computed_independently() -> None:
    hp = [50.0, 52.0, 49.0, 51.0, 50.0]
    returns = [math.log(b / a) for a, b in itertools.pairwise(hp)]
    sigma = 100 * math.sqrt(365 / len(returns) * sum(r * r for r in returns))
    flows = _flows(CASES[6][0], CASES[6][1])
    assert flows["volatility_swap_usd"] == pytest.approx(1_000.0 * (sigma - 60.0), rel=1e-12)


def test_a_short_swap_is_the_long_reversed() -> None:
    long = VolatilitySwap("vol", "long", "volatility", 60.0, 1_000.0, T0, T0 + 5 * DAY)
    short = VolatilitySwap("vol", "short", "volatility", 60.0, 1_000.0, T0, T0 + 5 * DAY)
    inputs = _inputs(hashprice=(50.0, 52.0, 49.0, 51.0, 50.0))
    assert _flows(short, inputs)["volatility_swap_usd"] == pytest.approx(
        -_flows(long, inputs)["volatility_swap_usd"]
    )


def test_nothing_is_booked_before_a_period_closes() -> None:
    # A monthly put over four January days: the month has not closed, so no payout yet,
    # while the premium accrues over the delivered time.
    flows = _flows(PUT, _inputs(btc=BTC))
    assert flows == {"btc_option_premium_usd": pytest.approx(-160.0), "btc_put_payout_usd": 0.0}


def test_a_btc_instrument_never_changes_the_settled_energy() -> None:
    inputs = _inputs(btc=BTC)
    plain = settle(inputs, supply=SpotSupply(), hedges=(), pool_fee=0.0)
    hedged = settle(inputs, supply=SpotSupply(), hedges=(CALL,), pool_fee=0.0)
    assert (plain.mined_mwh == hedged.mined_mwh).all()
    assert (plain.mining_revenue_usd == hedged.mining_revenue_usd).all()


def _site(hedges: tuple[BitcoinHedge, ...]) -> SiteModel:
    h = np.array([[0.0, 200.0]])
    w = np.array([[0.0, 3500.0]])
    fleet = FleetSpec(h, w, np.ones((1, 2), bool), np.zeros(1, dtype=np.int64), ("S21",))
    return SiteModel("s", fleet, PolicyParams(supply=SpotSupply()), SpotSupply(), hedges)


@pytest.mark.parametrize("case", [0, 2, 3, 4, 6])
def test_one_interval_at_a_time_books_the_same_as_all_at_once(case: int) -> None:
    """The site loop's accumulator carries the periods and marks across intervals."""
    hedge, inputs, expected = CASES[case]
    acc = IntervalAccumulator(_site((hedge,)))
    acc.set_load(np.array([0.0]), np.array([0.0]), float(inputs.start[0]))
    booked: dict[str, float] = {}
    btc = inputs.btc_usd_per_btc
    for i in range(inputs.start.size):
        t = float(inputs.start[i])
        hp = float(inputs.hashprice_usd_per_ph_day[i])
        acc.open(
            t,
            (t, 0.0, False, False, (), ()),
            Reading(0.0, t, "t"),
            Reading(hp, t, "t"),
            failsafe=None,
            opportunity_cost=0.0,
            running=0,
            curtailed=1,
            bitcoin=(None if btc is None else float(btc[i]), None),
        )
        record = acc.close(float(inputs.end[i]))
        assert record is not None
        for _, component, usd in record.instruments:
            booked[component] = booked.get(component, 0.0) + usd
    for component, usd in expected.items():
        assert booked[component] == pytest.approx(usd, abs=0.005), component


def test_flows_reach_the_ledger_and_the_metrics(tmp_path: Path) -> None:
    hedge, inputs, _ = CASES[0]  # the forward: +2,000 over three days
    acc = IntervalAccumulator(_site((hedge,)))
    acc.set_load(np.array([0.0]), np.array([0.0]), T0)
    ledger = SqliteLedger.open(
        tmp_path / "ledger.sqlite3", run_id="r", config_version="v", started_at=0.0
    )
    assert inputs.btc_usd_per_btc is not None
    for i in range(3):
        t = T0 + i * DAY
        acc.open(
            t,
            (t, 0.0, False, False, (), ()),
            Reading(0.0, t, "t"),
            Reading(50.0, t, "t"),
            failsafe=None,
            opportunity_cost=0.0,
            running=0,
            curtailed=1,
            bitcoin=(float(inputs.btc_usd_per_btc[i]), None),
        )
        record = acc.close(t + DAY)
        assert record is not None
        ledger.append(record)
    totals = ledger.instrument_totals("s")
    assert totals[("fwd", "btc_forward_settlement_usd")] == pytest.approx(2_000.0)
    book = PnlBook()
    book.seed(ledger.records("s"))
    ledger.close()
    text = metrics_text(book)
    # By direction of money: 5,000 in, 3,000 out.
    name = "hashspark_instrument_btc_forward_settlement_usd_total"
    assert f'{name}{{direction="in",instrument="fwd",site="s"}} 5000.0' in text
    assert f'{name}{{direction="out",instrument="fwd",site="s"}} 3000.0' in text
