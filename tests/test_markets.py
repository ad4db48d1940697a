"""Markets beyond ERCOT: the shipped scenarios, EUR prices, day-ahead sites, the comparison."""

from __future__ import annotations

import bisect
import gzip
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from controller.accounting.report import TOTAL_KEYS
from controller.app.cli import main
from controller.app.replay.markets import compare_markets
from controller.app.replay.runner import ReplayError, prepare, replay
from controller.config import load_config
from tests.engine_kit import assert_engines_agree
from tests.golden.independent import compute_totals

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "deploy" / "scenarios"
MARKETS = (
    "spp-south-spot",
    "miso-illinois-spot",
    "nyiso-zone-j-spot",
    "isone-hub-spot",
    "de-lu-day-ahead-spot",
    "se1-day-ahead-spot",
)
DE_LU = SCENARIOS / "de-lu-day-ahead-spot.toml"
ECB = ROOT / "simulators" / "recordings" / "ecb_usd_per_eur_daily_2023-11_2025-05.csv"
#: 2024-07-18 UTC: ISO-NE has no prices 04:00..11:00Z the next day; DE-LU curtails hourly.
DAY = (datetime(2024, 7, 18, tzinfo=UTC), datetime(2024, 7, 19, tzinfo=UTC))


@pytest.mark.parametrize("name", MARKETS)
def test_loop_and_fast_engines_agree_on_each_market_over_a_day(name: str) -> None:
    inputs = prepare(load_config(SCENARIOS / f"{name}.toml"), start=DAY[0], end=DAY[1])
    fast = replay(inputs, engine="fast")
    assert fast.engine == "fast"
    assert fast.report["totals"]["mining_revenue_usd"] > 0  # the fee-inclusive hashprice ran
    assert_engines_agree(fast.table, replay(inputs, engine="loop").table)


@pytest.mark.slow
@pytest.mark.parametrize("name", MARKETS)
def test_loop_and_fast_engines_agree_on_each_markets_whole_scenario(name: str) -> None:
    inputs = prepare(load_config(SCENARIOS / f"{name}.toml"))
    assert_engines_agree(replay(inputs, engine="fast").table, replay(inputs, engine="loop").table)


def test_eur_prices_convert_at_the_ecb_rate_published_before_each_hour() -> None:
    inputs = prepare(load_config(DE_LU), start=DAY[0], end=DAY[1])
    assert inputs.price.column == "usd_per_mwh"
    assert "EUR -> USD" in inputs.price.source
    raw = {}
    path = ROOT / "simulators" / "recordings" / "de_lu_dam_hourly_2024-01_2025-09.csv.gz"
    with gzip.open(path, "rt") as f:
        text = f.read()
    for line in text.splitlines()[1:]:
        ts, value = line.split(",")
        raw[ts] = float(value)
    rates = dict(line.split(",") for line in ECB.read_text().splitlines()[1:])
    # The 2024-07-18 rate (1.0921) is published at 14:00Z; the hours before use the 17th's.
    for hour, rate_at in (
        ("2024-07-18T13:00:00Z", "2024-07-17T14:00:00Z"),
        ("2024-07-18T14:00:00Z", "2024-07-18T14:00:00Z"),
    ):
        t = datetime.fromisoformat(hour).timestamp()
        k = int(np.flatnonzero(inputs.price.times == t)[0])
        assert inputs.price.values[k] == pytest.approx(raw[hour] * float(rates[rate_at]))


def test_a_day_ahead_price_holds_for_its_hour() -> None:
    table = replay(prepare(load_config(DE_LU), start=DAY[0], end=DAY[1]), engine="fast").table
    np.testing.assert_allclose(table.inputs.dt_h, 1.0)  # 24 hourly intervals, one price each
    assert len(table.inputs.start) == 24
    assert (np.diff(table.inputs.running_mw) != 0).any()  # and the site curtails on them


def _de_lu_variant(tmp: Path, old: str, new: str) -> Path:
    text = DE_LU.read_text().replace("../../", f"{ROOT}/")
    assert old in text
    path = tmp / "variant.toml"
    path.write_text(text.replace(old, new, 1))
    return path


RATE_PATH = 'path = "' + str(ECB) + '"'


def test_a_eur_site_reports_in_eur_and_agrees_with_the_usd_site_at_the_same_rate(
    tmp_path: Path,
) -> None:
    usd = _de_lu_variant(tmp_path, RATE_PATH, "rate = 1.0842")
    eur_text = usd.read_text().replace('# currency = "USD"', 'currency = "EUR"')
    eur = tmp_path / "eur.toml"
    eur.write_text(eur_text)
    a = replay(prepare(load_config(usd), start=DAY[0], end=DAY[1])).report
    b = replay(prepare(load_config(eur), start=DAY[0], end=DAY[1])).report
    assert (a["currency"], b["currency"]) == ("USD", "EUR")
    assert "constant EUR/USD 1.0842 (assumption)" in a["exchange_rate"]
    # Decisions do not depend on the currency; every money figure scales by the rate.
    assert b["summary"]["curtailed_hours"] == a["summary"]["curtailed_hours"]
    assert b["totals"]["net_eur"] * 1.0842 == pytest.approx(a["totals"]["net_usd"], rel=1e-9)
    assert b["totals"]["mining_revenue_eur"] > 0
    assert "_usd" not in json.dumps(b)  # no figure in euros named in dollars


def test_a_day_ahead_only_site_settles_day_ahead_options_on_its_own_prices(
    tmp_path: Path,
) -> None:
    call = (
        '[[sites.hedges]]\ntype = "option"\nid = "c"\nside = "short"\nkind = "call"\n'
        'strike = 100\nquantity = 2.0\npremium_per_unit = 0.5\nsettlement = "{}"\n\n'
        "[sites.policy]"
    )
    flows = {}
    for basis in ("day_ahead", "interval"):
        path = _de_lu_variant(tmp_path, "[sites.policy]", call.format(basis))
        result = replay(prepare(load_config(path), start=DAY[0], end=DAY[1]), engine="fast")
        flows[basis] = {
            (r.id, r.component): r.usd for r in result.typed_report.per_instrument or ()
        }
    assert flows["day_ahead"][("c", "option_payout_usd")] < 0  # the short call paid out
    assert flows["day_ahead"] == pytest.approx(flows["interval"])  # hourly prices: one basis


def test_a_eur_recording_on_a_usd_price_feed_stops_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _de_lu_variant(tmp_path, 'price_currency = "EUR"', "")
    rate = '[sites.exchange_rate]\npair = "EUR/USD"          # 1 EUR = rate USD\n' + RATE_PATH
    path.write_text(path.read_text().replace(rate, ""))
    assert main(["replay", str(path)]) == 2  # the console script's own entry point
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "sites[de-lu].price_currency" in lines[0]
    assert "in EUR" in lines[0]


def test_the_markets_comparison_replays_each_scenarios_book_on_the_common_window() -> None:
    names = ("miso-illinois-spot", "de-lu-day-ahead-spot", "isone-hub-spot")
    loaded = [load_config(SCENARIOS / f"{n}.toml") for n in names]
    cmp_ = compare_markets(loaded, *DAY)
    assert [r.name for r in cmp_.results] == list(names)
    for r, cfg in zip(cmp_.results, loaded, strict=True):
        own = replay(prepare(cfg, start=DAY[0], end=DAY[1]), engine="fast").report
        assert r.result.report["totals"] == pytest.approx(own["totals"])  # same fleet and book
        t = r.result.table.inputs
        mean = float((t.price_usd_per_mwh * t.dt_h).sum() / t.dt_h.sum())
        assert r.mean_price_usd_per_mwh == pytest.approx(mean)
        assert r.monthly_std_usd is None  # no whole month in a day
    row = cmp_.to_json()["markets"][1]
    assert row["market_kind"] == "day_ahead"
    assert row["price_currency"] == "EUR"


def test_the_markets_comparison_refuses_markets_without_a_common_window() -> None:
    se1 = load_config(SCENARIOS / "se1-day-ahead-spot.toml")  # ends 2024-10-04
    miso = load_config(SCENARIOS / "miso-illinois-spot.toml")
    late = datetime(2024, 11, 1, tzinfo=UTC)
    with pytest.raises(ReplayError, match=r"se1-day-ahead-spot\.toml ends 2024-10-04T22:00:00Z"):
        compare_markets([miso, se1], late, None)


@pytest.mark.slow
def test_hashspark_markets_prints_the_table_and_writes_the_charts_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(SCENARIOS / f"{n}.toml") for n in ("miso-illinois-spot", "de-lu-day-ahead-spot")]
    out = tmp_path / "report"
    args = ["markets", *paths, "--from", "2024-07-18", "--to", "2024-07-20", "--report", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "miso-illinois-spot" in text
    assert "EHP margin" in text
    data = json.loads((out / "markets.json").read_text())
    assert [m["market"] for m in data["markets"]] == ["miso-illinois-spot", "de-lu-day-ahead-spot"]
    html = (out / "markets.html").read_text()
    assert html.count("<img ") == 2 + 2 * 2  # two shared charts, two per market
    for name in ("miso-illinois-spot", "de-lu-day-ahead-spot"):
        assert (out / f"{name}-price-vs-energy-hashprice.png").stat().st_size > 1000


def _plain_usd_prices(scenario: Path, out: Path) -> Path:
    """The scenario's price recording in USD, converted here with the standard library only:
    each price times the last ECB rate stamped at or before it (none for a USD recording)."""
    raw = tomllib.loads(scenario.read_text())["sites"][0]
    path = (scenario.parent / raw["price_feed"]["path"]).resolve()
    with gzip.open(path, "rt") as f:
        rows = [line.split(",") for line in f.read().splitlines()[1:]]
    stamps, rates = [], []
    if raw.get("price_currency", "USD") == "EUR":
        for line in ECB.read_text().splitlines()[1:]:
            ts, value = line.split(",")
            stamps.append(datetime.fromisoformat(ts))
            rates.append(float(value))
    lines = ["timestamp,usd_per_mwh"]
    for ts, value in rows:
        k = bisect.bisect_right(stamps, datetime.fromisoformat(ts)) - 1
        lines.append(f"{ts},{float(value) * (rates[k] if rates else 1.0)!r}")
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.mark.parametrize("name", ["miso-illinois-spot", "de-lu-day-ahead-spot"])
def test_a_july_matches_the_independent_computation(name: str, tmp_path: Path) -> None:
    scenario = SCENARIOS / f"{name}.toml"
    july = (datetime(2024, 7, 1, tzinfo=UTC), datetime(2024, 8, 1, tzinfo=UTC))
    totals = replay(prepare(load_config(scenario), start=july[0], end=july[1]), "fast").report
    expected = compute_totals(
        str(_plain_usd_prices(scenario, tmp_path / "usd.csv")),
        str(ROOT / "simulators/recordings/btc_hashprice_daily_2024-05_2025-04_with_fees.csv"),
        fleet=[(600, 104.0, 3068.0), (400, 200.0, 3500.0)],
        pool_fee=0.02,
        supply={"type": "spot"},
        call=None,
        forward=None,
        start=july[0],
        end=july[1],
    )
    for key in TOTAL_KEYS:
        assert totals["totals"][key] == pytest.approx(expected[key], rel=1e-9, abs=1e-6), key
