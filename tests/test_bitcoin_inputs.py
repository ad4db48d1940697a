"""Bitcoin inputs: the recordings, the hashprice built from them, their feeds and config,
and the Bitcoin instruments on the shipped scenarios (replay lines, compare book)."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from adapters.feeds.chain import parse_chain
from adapters.feeds.derived import DerivedHashpriceFeed, derive_recording
from adapters.feeds.payloads import Candidate, ReadingKind, default_bound
from adapters.feeds.recorded import RecordedFeed, load_recording
from controller.app.cli import main
from controller.app.replay.compare import compare
from controller.app.replay.html_report import write_report
from controller.app.replay.runner import (
    Engine,
    ReplayInputs,
    ReplayResult,
    prepare,
    replay,
    run_fast,
)
from controller.app.replay.summary import format_summary
from controller.config import ConfigError, load_config
from controller.domain import Recording

ROOT = Path(__file__).resolve().parent.parent
REC = ROOT / "simulators" / "recordings"
BTC_HEDGES = ROOT / "deploy" / "scenarios" / "ercot-hb-south-btc-hedges.toml"
HEDGED_BTC = ROOT / "deploy" / "scenarios" / "ercot-hb-south-hedged-btc.toml"
FIXTURES = ROOT / "tests" / "fixtures"


def _parts() -> tuple[Recording, Recording, Recording]:
    return (
        load_recording(REC / "btc_usd_daily_2024-05_2025-04.csv", "usd_per_btc"),
        load_recording(REC / "btc_difficulty_daily_2024-05_2025-04.csv", "difficulty_t"),
        load_recording(REC / "btc_fees_daily_2024-05_2025-04.csv", "btc_per_block"),
    )


def test_derived_hashprice_agrees_with_the_fee_inclusive_recording() -> None:
    btc, difficulty, fees = _parts()
    derived = derive_recording(btc, difficulty, fees, 3.125)
    shipped = load_recording(
        REC / "btc_hashprice_daily_2024-05_2025-04_with_fees.csv", "usd_per_ph_day"
    )
    # The same days, the same values but for the recording's 4-decimal rounding.
    assert (derived.times == shipped.times).all()
    assert np.abs(derived.values - shipped.values).max() < 1e-4
    # Its subsidy share is the subsidy-only recording, derived from the same closes.
    subsidy_only = load_recording(REC / "btc_hashprice_daily_2024-05_2025-04.csv", "usd_per_ph_day")
    held = fees.values[np.searchsorted(fees.times, derived.times, side="right") - 1]
    share = 3.125 / (3.125 + held)
    assert np.abs(derived.values * share - subsidy_only.values).max() < 1e-4


def test_the_derived_feed_reads_the_newest_of_its_parts() -> None:
    btc, difficulty, fees = (RecordedFeed(p) for p in _parts())
    feed = DerivedHashpriceFeed(btc, difficulty, fees, 3.125)
    t = datetime(2025, 2, 4, 12, tzinfo=UTC).timestamp()  # fees last sampled on the 2nd
    reading = feed.latest(t)
    assert reading is not None
    assert reading.observed_at == datetime(2025, 2, 4, tzinfo=UTC).timestamp()
    b, d, f = (p.latest(t) for p in (btc, difficulty, fees))
    assert b is not None
    assert d is not None
    assert f is not None
    expected = 86400 * 1e15 * (3.125 + f.value) * b.value / (d.value * 1e12 * 2**32)
    assert reading.value == pytest.approx(expected, rel=1e-12)
    assert feed.latest(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) is None


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (ReadingKind.BTC_USD, 93_450.0),
        (ReadingKind.DIFFICULTY, 108.52),
        (ReadingKind.FEES, 0.0931),
        (ReadingKind.HASHPRICE, 55.75),
    ],
)
def test_the_chain_feed_publishes_each_input_of_one_poll(kind: ReadingKind, value: float) -> None:
    result = parse_chain(
        (FIXTURES / "mempool_blocks.json").read_bytes(),
        (FIXTURES / "mempool_prices.json").read_bytes(),
        observed_at=1_795_300_000.0,
        source="chain:test",
        min_blocks=6,
        bound=default_bound(kind),
        kind=kind,
    )
    assert isinstance(result, Candidate)
    assert result.value == pytest.approx(value, rel=5e-4)


# --- config -----------------------------------------------------------------------------

BAD = [
    (
        'type = "btc_collar"\nid = "c"\nquantity_btc_per_day = 0.05\n'
        "put_strike_usd_per_btc = 90000\ncall_strike_usd_per_btc = 55000",
        "sites[0].hedges[6]",
        "put_strike_usd_per_btc 90000 must be below call_strike_usd_per_btc 55000",
    ),
    (
        'type = "difficulty_swap"\nid = "d"\nstrike_difficulty_t = 90\nnotional_usd_per_day = 1',
        "sites[0].hedges[6]",
        "give the term: start and end",
    ),
    (
        'type = "hashprice_volatility_swap"\nid = "v"\nstrike_pct = 40\n'
        'notional_usd_per_point = 1\nstart = "2024-06-01T00:00:00Z"',
        "sites[0].hedges[6]",
        "give the term: start and end",
    ),
    (
        'type = "btc_put"\nid = "p"\nquantity_btc_per_day = 0.05\nstrike_usd_per_btc = 5e4\n'
        'settlement = "term"',
        "sites[0].hedges[6]",
        "settlement 'term' needs the term",
    ),
]


def _errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.messages


@pytest.mark.parametrize(("hedge", "key", "reason"), BAD)
def test_bad_terms_stop_at_start_with_the_key_path(
    tmp_path: Path, hedge: str, key: str, reason: str
) -> None:
    text = BTC_HEDGES.read_text(encoding="utf-8").replace("../../", f"{ROOT.as_posix()}/")
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("[sites.policy]", f"[[sites.hedges]]\n{hedge}\n\n[sites.policy]"))
    (message,) = _errors(path)
    assert message.startswith(f"{path}: "), message
    assert key in message
    assert reason in message


def test_an_instrument_needs_its_feed_and_derived_needs_all_three(tmp_path: Path) -> None:
    text = HEDGED_BTC.read_text(encoding="utf-8").replace("../../", f"{ROOT.as_posix()}/")
    no_btc = text.replace("btc_usd_feed = {", "# btc_usd_feed = {").replace(
        "[sites.policy]",
        '[[sites.hedges]]\ntype = "btc_put"\nid = "p"\nquantity_btc_per_day = 0.05\n'
        "strike_usd_per_btc = 5e4\n\n[sites.policy]",
    )
    path = tmp_path / "no-btc.toml"
    path.write_text(no_btc)
    (message,) = _errors(path)
    assert message == f"{path}: sites[0]: hedges[2] (p) settles on bitcoin.btc_usd_feed: give it"
    derived = BTC_HEDGES.read_text(encoding="utf-8").replace("../../", f"{ROOT.as_posix()}/")
    path.write_text(derived.replace("fees_feed = {", "# fees_feed = {"))
    (message,) = _errors(path)
    assert message == f"{path}: sites[0].bitcoin: a derived hashprice needs fees_feed"


def test_check_config_prints_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In process (the console script's own path is covered by tests/test_cli_errors.py).
    text = BTC_HEDGES.read_text(encoding="utf-8").replace("../../", f"{ROOT.as_posix()}/")
    path = tmp_path / "bad.toml"
    path.write_text(
        text.replace("call_strike_usd_per_btc = 100000", "call_strike_usd_per_btc = 40000")
    )
    assert main(["check-config", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"hashspark: error: {path}: sites[0].hedges[3]: put_strike_usd_per_btc 50000 must be "
        "below call_strike_usd_per_btc 40000"
    ]


# --- the shipped scenarios ----------------------------------------------------------------


def _week(engine: Engine) -> tuple[ReplayInputs, ReplayResult, dict[tuple[str, str], float]]:
    # Eight days: a week of the weekly collar and the daily marks close; the monthly
    # strips and the swaps do not (their lines show 0).
    inputs = prepare(
        load_config(BTC_HEDGES),
        start=datetime(2024, 11, 4, tzinfo=UTC),
        end=datetime(2024, 11, 12, tzinfo=UTC),
    )
    result = replay(inputs, engine=engine)
    rows = {(r["id"], r["component"]): r["usd"] for r in result.report["per_instrument"]}
    return inputs, result, rows


def test_every_instrument_has_a_line_in_the_text_and_html_reports(tmp_path: Path) -> None:
    inputs, result, rows = _week("fast")
    closes = {
        r["timestamp"][:10]: float(r["usd_per_btc"])
        for r in csv.DictReader((REC / "btc_usd_daily_2024-05_2025-04.csv").open())
    }
    # Marked daily from the forward price (a replay starting inside the term holds the
    # position from 65,000): the marks sum to (65,000 - the last close) * 5 BTC.
    fwd = rows[("btc-fwd-dec", "btc_forward_settlement_usd")]
    assert fwd == pytest.approx((65_000.0 - closes["2024-11-11"]) * 5.0, abs=1e-6)
    # The week's mean close is inside the collar: neither leg pays.
    mean = sum(closes[f"2024-11-{d:02d}"] for d in range(4, 11)) / 7
    assert 50_000.0 < mean < 100_000.0
    assert rows[("btc-collar", "btc_put_payout_usd")] == 0.0
    assert rows[("btc-collar", "btc_call_payout_usd")] == 0.0
    assert len(rows) == 10  # six instruments; a strip books its premium and each leg
    # Financially settled: the same dispatch as the same site without them.
    bare = run_fast(replace(inputs, model=replace(inputs.model, hedges=())))
    assert (bare.inputs.running_mw == result.table.inputs.running_mw).all()
    text = format_summary(result, None)
    html = write_report(tmp_path / "report", inputs, result).html.read_text(encoding="utf-8")
    for inst, component in rows:
        assert f"{inst}.{component}" in text
        assert f"<th>{inst}</th><td>{component}</td>" in html


@pytest.mark.slow
def test_a_derived_hashprice_dispatches_as_the_recorded_one_over_the_whole_window() -> None:
    derived = prepare(load_config(BTC_HEDGES))
    recorded = prepare(load_config(HEDGED_BTC))
    a = run_fast(replace(derived, model=replace(derived.model, hedges=())))
    b = run_fast(
        replace(recorded, model=replace(recorded.model, supply=derived.model.supply, hedges=()))
    )
    assert (a.inputs.running_mw == b.inputs.running_mw).all()
    diff = a.settlement.mining_revenue_usd.sum() - b.settlement.mining_revenue_usd.sum()
    print(f"mining revenue derived - recorded: {diff:.4f} USD")
    assert abs(diff) < 1.0  # measured -0.04 USD of 2,108,334.85


@pytest.mark.slow
def test_the_site_loop_books_what_the_fast_engine_books() -> None:
    _, _, fast = _week("fast")
    _, _, loop = _week("loop")
    assert loop.keys() == fast.keys()
    for key, usd in fast.items():
        assert loop[key] == pytest.approx(usd, abs=1e-6), key


def test_the_collar_book_adds_the_collar_to_the_fully_hedged_book() -> None:
    # November 2024: one monthly period of the collar closes (put 55,000, call 90,000).
    inputs = prepare(
        load_config(HEDGED_BTC),
        start=datetime(2024, 11, 1, tzinfo=UTC),
        end=datetime(2024, 12, 1, tzinfo=UTC),
    )
    result = compare(inputs)
    names = [r.strategy.name for r in result.results]
    assert names[-1] == "hedged+btc-collar"
    net = {r.strategy.name: float(r.table.settlement.net_usd.sum()) for r in result.results}
    closes = [
        float(r["usd_per_btc"])
        for r in csv.DictReader((REC / "btc_usd_daily_2024-05_2025-04.csv").open())
        if r["timestamp"].startswith("2024-11")
    ]
    mean = sum(closes) / len(closes)
    collar = (max(55_000 - mean, 0) - max(mean - 90_000, 0)) * 0.05 * 30
    assert net["hedged+btc-collar"] - net["ppa+forward+call"] == pytest.approx(collar, abs=1e-6)
