"""Strategy comparison: each book's totals are a single replay's, and the volatility is right."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from controller.accounting.instruments import FixedPpa, ShortCall
from controller.app.replay.compare import Comparison, StrategyResult, compare
from controller.app.replay.runner import ReplayError, prepare, replay
from controller.config import ConfigError, load_config
from controller.records import COMPONENTS

SCENARIOS = Path(__file__).resolve().parents[1] / "deploy" / "scenarios"
HEDGED = SCENARIOS / "ercot-hb-south-hedged.toml"
SPOT = SCENARIOS / "ercot-hb-south-spot.toml"

MONTH = (datetime(2024, 8, 1, tzinfo=UTC), datetime(2024, 9, 1, tzinfo=UTC))

# Books written once, rendered both as [[compare.strategies]] and as a site's own contracts.
BOOKS: dict[str, tuple[str, list[str]]] = {
    "capped-fwd": (
        'type = "capped_ppa"\nquantity_mw = 3.3\nprice_usd_per_mwh = 45\nstrike_usd_per_mwh = 100',
        ['type = "hashrate_forward"\nid = "f"\nhashrate_ph = 70\nprice_usd_per_ph_day = 52'],
    ),
    "spot-fwd": (
        'type = "spot"',
        ['type = "hashrate_forward"\nid = "f"\nhashrate_ph = 100\nprice_usd_per_ph_day = 50'],
    ),
    "ppa-call-term": (
        'type = "fixed_ppa"\nquantity_mw = 2.5\nprice_usd_per_mwh = 40',
        [
            'type = "short_call"\nid = "c"\nquantity_mw = 2\nstrike_usd_per_mwh = 150\n'
            'premium_usd_per_mwh = 4\nstart = "2024-08-15T00:00:00Z"\nend = "2024-08-25T00:00:00Z"'
        ],
    ),
}


def _strategies_toml() -> str:
    out = []
    for name, (supply, hedges) in BOOKS.items():
        out.append(f'\n[[compare.strategies]]\nname = "{name}"\n')
        out.append(f"[compare.strategies.supply]\n{supply}\n")
        out.extend(f"[[compare.strategies.hedges]]\n{h}\n" for h in hedges)
    return "".join(out)


def _site_with_book(baseline: str, name: str) -> str:
    """The baseline scenario with the site's supply and hedges replaced by ``name``'s."""
    supply, hedges = BOOKS[name]
    head, rest = baseline.split("[sites.supply]", 1)
    _, tail = rest.split("[sites.policy]", 1)
    book = f"[sites.supply]\n{supply}\n\n" + "".join(f"[[sites.hedges]]\n{h}\n\n" for h in hedges)
    return head + book + "[sites.policy]" + tail


def _row(c: Comparison, name: str) -> StrategyResult:
    (found,) = [r for r in c.results if r.strategy.name == name]
    return found


def _assert_same_totals(a: dict[str, float], b: dict[str, float]) -> None:
    assert set(a) == set(b) == {"intervals", "hours", *COMPONENTS}
    for key, value in a.items():
        assert value == pytest.approx(b[key], rel=1e-12, abs=1e-9), key


@pytest.fixture(scope="module")
def hedged_whole() -> Comparison:
    """The built-in books on the hedged scenario over the whole recording."""
    return compare(prepare(load_config(HEDGED)))


def test_builtin_books_are_the_five_kinds(hedged_whole: Comparison) -> None:
    assert hedged_whole.builtin
    names = [r.strategy.name for r in hedged_whole.results]
    assert names == ["spot", "ppa", "ppa+call", "capped-ppa", "ppa+forward", "ppa+forward+call"]
    # Derived from the scenario's own contracts: PPA 3.3 MW at 45, call-200, fwd-70ph.
    full = _row(hedged_whole, "ppa+forward+call").strategy
    assert [h.id for h in full.hedges] == ["fwd-70ph", "call-200"]
    capped_book = _row(hedged_whole, "capped-ppa")
    capped = capped_book.strategy.supply
    assert isinstance(capped, FixedPpa)
    # A cap buys a lower price: by default the break-even concession, the cap's mean payout
    # over the window (issue 17: the built-in capped book kept the uncapped price).
    window = _row(hedged_whole, "spot").table.inputs
    payout = float(
        (np.maximum(window.price_usd_per_mwh - 200.0, 0.0) * window.dt_h).sum() / window.dt_h.sum()
    )
    assert capped == type(capped)(3.3, round(45.0 - payout, 2), resale_cap_usd_per_mwh=200.0)
    assert f"break-even concession {payout:.2f}" in capped_book.strategy.description


def test_the_builtin_books_take_a_configured_concession_and_premium(
    baseline_toml: str, tmp_path: Path
) -> None:
    spot_toml = baseline_toml.replace(
        'type = "fixed_ppa"\nquantity_mw = 3.3\nprice_usd_per_mwh = 45', 'type = "spot"'
    )
    start = spot_toml.index("[[sites.hedges]]")
    end = spot_toml.index("[sites.policy]")
    spot_toml = spot_toml[:start] + spot_toml[end:]  # no call of its own: the default one
    path = tmp_path / "s.toml"
    knobs = "\n[compare]\ncapped_ppa_concession_usd_per_mwh = 4\ncall_premium_usd_per_mwh = 2.5\n"
    path.write_text(spot_toml + knobs, encoding="utf-8")
    week = (datetime(2024, 8, 17, tzinfo=UTC), datetime(2024, 8, 24, tzinfo=UTC))
    c = compare(prepare(load_config(path), start=week[0], end=week[1]))
    assert c.builtin
    ppa = _row(c, "ppa").strategy.supply
    capped = _row(c, "capped-ppa").strategy
    assert isinstance(ppa, FixedPpa)
    assert isinstance(capped.supply, FixedPpa)
    assert capped.supply.price_usd_per_mwh == pytest.approx(ppa.price_usd_per_mwh - 4.0)
    assert capped.description.endswith("(configured concession)")
    call = _row(c, "ppa+call").strategy
    assert [h.premium_usd_per_mwh for h in call.hedges if isinstance(h, ShortCall)] == [2.5]
    assert "break-even premium" not in call.description
    # Without the knobs the premium is named for what it is.
    path.write_text(spot_toml, encoding="utf-8")
    c = compare(prepare(load_config(path), start=week[0], end=week[1]))
    assert "(break-even premium: the window's mean payout, hindsight)" in (
        _row(c, "ppa+call").strategy.description
    )


def test_fully_hedged_daily_cash_flow_is_steadier_than_spot(hedged_whole: Comparison) -> None:
    spot = _row(hedged_whole, "spot").daily
    hedged = _row(hedged_whole, "ppa+forward+call").daily
    assert spot.std_usd is not None
    assert hedged.std_usd is not None
    assert hedged.std_usd < 0.6 * spot.std_usd
    assert hedged.worst_usd > spot.worst_usd  # and its worst whole day is better


def test_builtin_books_equal_the_shipped_single_replays(hedged_whole: Comparison) -> None:
    # The spot book is the spot scenario's, the fully hedged one the hedged scenario's.
    spot = replay(prepare(load_config(SPOT)))
    hedged = replay(prepare(load_config(HEDGED)))
    _assert_same_totals(_row(hedged_whole, "spot").report["totals"], spot.report["totals"])
    _assert_same_totals(
        _row(hedged_whole, "ppa+forward+call").report["totals"], hedged.report["totals"]
    )
    assert _row(hedged_whole, "spot").row()["curtailed_hours"] == pytest.approx(
        spot.report["summary"]["curtailed_hours"]
    )


def test_daily_std_and_worst_day_computed_independently(hedged_whole: Comparison) -> None:
    for result in hedged_whole.results:
        inputs, net = result.table.inputs, result.table.settlement.net_usd
        by_day: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for t0, dt_h, usd in zip(inputs.start, inputs.dt_h, net, strict=True):
            day = datetime.fromtimestamp(float(t0), UTC).date().isoformat()
            by_day[day][0] += float(usd)
            by_day[day][1] += float(dt_h)
        whole = {d: v[0] for d, v in by_day.items() if abs(v[1] - 24.0) < 1e-6}
        assert len(whole) == len(by_day) - 2  # the recording starts and ends at 05:00Z
        row = result.row()
        assert row["days_counted"] == len(whole)
        assert row["daily_net_std_usd"] == pytest.approx(statistics.pstdev(whole.values()))
        assert row["daily_net_mean_usd"] == pytest.approx(statistics.fmean(whole.values()))
        worst = min(whole, key=whole.__getitem__)
        assert row["worst_day"] == {"date": worst, "net_usd": pytest.approx(whole[worst])}


def test_configured_books_equal_single_replays_of_the_same_books(
    baseline_toml: str, tmp_path: Path
) -> None:
    path = tmp_path / "compare.toml"
    path.write_text(baseline_toml + _strategies_toml(), encoding="utf-8")
    c = compare(prepare(load_config(path), start=MONTH[0], end=MONTH[1]))
    assert not c.builtin
    assert [r.strategy.name for r in c.results] == list(BOOKS)
    for name in BOOKS:
        single = tmp_path / f"{name}.toml"
        single.write_text(_site_with_book(baseline_toml, name), encoding="utf-8")
        alone = replay(prepare(load_config(single), start=MONTH[0], end=MONTH[1]))
        _assert_same_totals(_row(c, name).report["totals"], alone.report["totals"])
        assert _row(c, name).report["summary"] == alone.report["summary"]


def test_a_capped_book_dispatches_on_its_cap_like_the_site_loop(
    baseline_toml: str, tmp_path: Path
) -> None:
    """The daemon's own loop with the capped book as the site's agrees with compare's fast path."""
    week = (datetime(2024, 8, 18, tzinfo=UTC), datetime(2024, 8, 25, tzinfo=UTC))
    path = tmp_path / "compare.toml"
    path.write_text(baseline_toml + _strategies_toml(), encoding="utf-8")
    c = compare(prepare(load_config(path), start=week[0], end=week[1]))
    single = tmp_path / "capped.toml"
    single.write_text(_site_with_book(baseline_toml, "capped-fwd"), encoding="utf-8")
    loop = replay(prepare(load_config(single), start=week[0], end=week[1]), engine="loop")
    ours = _row(c, "capped-fwd").report["totals"]
    for key, value in loop.report["totals"].items():
        assert ours[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
    # The cap at 100 keeps the S21s (EHP above 100) mining through spikes the spot book sits out.
    spot_like = replay(prepare(load_config(HEDGED), start=week[0], end=week[1]))
    assert ours["mined_mwh"] > spot_like.report["totals"]["mined_mwh"]


def test_builtin_ppa_without_one_is_priced_at_the_mean_spot(recordings_dir: Path) -> None:
    """The spot scenario has no PPA: the built-in one is at the window's time-weighted mean."""
    inputs = prepare(load_config(SPOT))
    c = compare(inputs)
    ppa = _row(c, "ppa").strategy.supply
    assert isinstance(ppa, FixedPpa)
    rows = list(
        csv.reader((recordings_dir / "ercot_hb_south_rtm_spp_15min_2024-06_2025-03.csv").open())
    )[1:]
    times = [datetime.fromisoformat(t).timestamp() for t, _ in rows] + [inputs.end]
    weighted = hours = 0.0
    for (t, value), t_next in zip(rows, times[1:], strict=True):
        t0 = max(datetime.fromisoformat(t).timestamp(), inputs.start)
        t1 = min(t_next, inputs.end)
        if t1 > t0:
            weighted += float(value) * (t1 - t0)
            hours += t1 - t0
    assert ppa == type(ppa)(3.3, round(weighted / hours, 2))  # 3.2408 MW rounded up


def test_strategy_with_unknown_key_names_it(baseline_toml: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        baseline_toml
        + '\n[[compare.strategies]]\nname = "x"\nsupply = { type = "spot" }\nleverage = 3\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.messages == [f"{path}: compare.strategies[0].leverage: unknown key"]


def test_duplicate_strategy_names_are_refused(baseline_toml: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    book = '\n[[compare.strategies]]\nname = "x"\nsupply = { type = "spot" }\n'
    path.write_text(baseline_toml + book + book, encoding="utf-8")
    with pytest.raises(ConfigError, match="strategy names must be unique: x"):
        load_config(path)


def test_compare_refuses_a_policy_with_memory(make_scenario: Callable[..., Path]) -> None:
    path = make_scenario(("hysteresis_usd_per_mwh = 0", "hysteresis_usd_per_mwh = 5"))
    with pytest.raises(ReplayError, match="compare runs on the fast path only"):
        compare(prepare(load_config(path), start=MONTH[0], end=MONTH[1]))


def test_the_docs_strategy_example_loads(baseline_toml: str, tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "docs/replay.md").read_text(encoding="utf-8")
    (example,) = [
        block for block in text.split("```toml\n")[1:] if block.startswith("[[compare.strategies]]")
    ]
    path = tmp_path / "docs-example.toml"
    path.write_text(baseline_toml + "\n" + example.split("```")[0], encoding="utf-8")
    compare_cfg = load_config(path).config.compare
    assert compare_cfg is not None
    (strategy,) = compare_cfg.strategies
    assert strategy.name == "capped+forward"
    assert [h.id for h in strategy.hedges] == ["fwd"]
