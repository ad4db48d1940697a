"""``hashspark ledger restate``: append-only corrections, settled by the core, checked against
an independent arithmetic (ECONOMICS.md's settlement table in exact fractions).

The ledger is booked by the site loop's own accrual (``IntervalAccumulator``) over two days of
the recorded ERCOT HB_SOUTH prices under the shipped hedged scenario's terms (fixed PPA 3.3 MW
at 45, short call 3.0 MW at 200 with a 3.5 premium, forward 70 PH/s at 52, pool fee 0.02).
The "re-published" prices of 2024-08-20 are the recorded ones moved by a fixed rule (each
price * 1.07 + 1.13, to the cent): the test's own data, not ERCOT's.
"""

from __future__ import annotations

import csv
import sqlite3
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from adapters.ledger.sqlite import LEDGER_FILE, LedgerError, SqliteLedger
from controller.accounting.accrual import IntervalAccumulator, down_record
from controller.accounting.money import MONEY_COMPONENTS, usd_text
from controller.accounting.restatement import Amounts, Restated
from controller.app.assemble import site_model
from controller.app.cli import main
from controller.config import load_config
from controller.domain import Reading, iso
from controller.records import IntervalRecord
from tests.daemon_kit import ROOT, scenario
from tests.test_ledger import rec

RECORDINGS = ROOT / "simulators" / "recordings"
DAY1, DAY2, END = "2024-08-20T00:00:00Z", "2024-08-21T00:00:00Z", "2024-08-22T00:00:00Z"
REASON = "ERCOT re-published the 2024-08-20 RTM settlement point prices"
# The hedged scenario's terms (deploy/scenarios/ercot-hb-south-hedged.toml).
Q, K, QC, S, PREMIUM, HC, HPF, FEE = 3.3, 45, 3.0, 200, 3.5, 70, 52, 0.02


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def recording(name: str, start: str, end: str) -> list[tuple[float, float]]:
    with (RECORDINGS / name).open() as handle:
        rows = [(ts(r["timestamp"]), float(list(r.values())[1])) for r in csv.DictReader(handle)]
    return [(t, v) for t, v in rows if ts(start) <= t < ts(end)]


@pytest.fixture(scope="module")
def booked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The config and a ledger of 192 intervals booked by the site loop's accrual."""
    return book_two_days(tmp_path_factory.mktemp("restate"))


def book_two_days(tmp: Path) -> tuple[Path, Path]:
    """The hedged scenario's config over DAY1..END in ``tmp`` and its state directory, whose
    ledger holds the 192 intervals the site loop's accrual books on the recorded prices."""
    config = scenario(tmp, DAY1, END)
    loaded = load_config(config)
    model = site_model(loaded.config.sites[0])
    prices = recording("ercot_hb_south_rtm_spp_15min_2024-06_2025-03.csv", DAY1, END)
    daily = dict(recording("btc_hashprice_daily_2024-05_2025-04_with_fees.csv", DAY1, END))
    ledger = SqliteLedger.open(
        tmp / "state" / LEDGER_FILE,
        run_id="r1",
        config_version=loaded.version,
        started_at=prices[0][0],
        synchronous="normal",
    )
    acc = IntervalAccumulator(model)
    for (t, price), (t_next, _) in zip(prices, [*prices[1:], (ts(END), 0.0)], strict=True):
        day = t - t % 86_400
        # The merit order by hand: the S21s run below 120 USD/MWh, the S19j Pros below 70.
        on = np.array([price < 70, price < 120], dtype=float)
        acc.set_load(on * np.array([1.8408, 1.4]), on * np.array([62.4, 80.0]), t)
        acc.open(
            t,
            (t, day, False, False, (), ()),
            Reading(price, t, "rtm.csv"),
            Reading(daily[day], day, "hashprice.csv"),
            failsafe=None,
            opportunity_cost=price,
            running=int(on @ np.array([600, 400])),
            curtailed=int((1 - on) @ np.array([600, 400])),
        )
        record = acc.close(t_next)
        assert record is not None
        ledger.append(record)
    ledger.close()
    return config, tmp / "state"


def exact_amounts(r: IntervalRecord, price: float, hashprice: float) -> dict[str, Fraction]:
    """ECONOMICS.md's settlement table for this site, in exact arithmetic."""
    dt_h = Fraction(r.end - r.start) / 3600
    p, hp = Fraction(price), Fraction(hashprice)
    q, h = Fraction(r.running_mw), Fraction(r.running_ph)
    amounts: dict[str, Fraction] = {
        "mining_revenue_usd": hp * (1 - Fraction(FEE)) * h * dt_h / 24,
        "power_cost_usd": K * Fraction(Q) * dt_h,
        "resale_revenue_usd": (Fraction(Q) - q) * p * dt_h,
        "call_premium_usd": Fraction(PREMIUM) * Fraction(QC) * dt_h,
        "call_payout_usd": max(p - S, Fraction(0)) * Fraction(QC) * dt_h,
        "forward_settlement_usd": (HPF - hp) * HC * dt_h / 24,
    }
    amounts["net_usd"] = (
        amounts["mining_revenue_usd"]
        + amounts["resale_revenue_usd"]
        + amounts["call_premium_usd"]
        - amounts["call_payout_usd"]
        + amounts["forward_settlement_usd"]
        - amounts["power_cost_usd"]
    )
    return amounts


def micro(x: Fraction) -> int:
    return round(x * 1_000_000)


def write_corrections(path: Path, rows: list[tuple[str, str]], column: str = "usd_per_mwh") -> Path:
    path.write_text("\n".join([f"timestamp,{column}", *(f"{t},{v}" for t, v in rows)]) + "\n")
    return path


def republished(start: str, end: str) -> list[tuple[str, str]]:
    rows = recording("ercot_hb_south_rtm_spp_15min_2024-06_2025-03.csv", start, end)
    return [(iso(t), f"{round(p * 1.07 + 1.13, 2):.2f}") for t, p in rows]


def restate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["ledger", "restate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def summary(capsys: pytest.CaptureFixture[str], state: Path, *args: str) -> str:
    assert main(["ledger", "summary", "--state-dir", str(state), *args]) == 0
    return capsys.readouterr().out


def column(text: str, name: str) -> list[str]:
    """The figures on the summary line of ``name``."""
    line = next(x for x in text.splitlines() if x.split() and x.split()[0] == name)
    return line.split()[1:]


def test_a_days_restatement_changes_that_day_by_the_independent_arithmetic(
    booked: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, state = booked
    ledger = SqliteLedger.open_readonly(state / LEDGER_FILE)
    before = list(ledger.records())
    ledger.close()
    assert len(before) == 192
    day1 = [r for r in before if r.start < ts(DAY2)]
    # The ledger booked what ECONOMICS.md says, to the micro-dollar.
    for r in day1:
        exact = exact_amounts(r, r.price_usd_per_mwh, r.hashprice_usd_per_ph_day)
        assert {c: micro(exact[c]) for c in MONEY_COMPONENTS} == {
            c: round(Fraction(r.component(c)) * 1_000_000) for c in MONEY_COMPONENTS
        }

    rows = republished(DAY1, DAY2)
    assert len(rows) == 96
    new_price = {ts(t): float(v) for t, v in rows}
    expected = dict.fromkeys(MONEY_COMPONENTS, 0)
    for r in day1:
        old = exact_amounts(r, r.price_usd_per_mwh, r.hashprice_usd_per_ph_day)
        new = exact_amounts(r, new_price[r.start], r.hashprice_usd_per_ph_day)
        for c in MONEY_COMPONENTS:
            expected[c] += micro(new[c]) - micro(old[c])
    assert expected["call_payout_usd"] > 0
    assert expected["resale_revenue_usd"] > 0
    assert expected["mining_revenue_usd"] == expected["power_cost_usd"] == 0

    path = write_corrections(tmp_path / "rtm_2024-08-20_republished.csv", rows)
    original = summary(capsys, state, "--from", DAY1, "--to", DAY2)
    code, out, err = restate(
        capsys, str(path), "--config", str(config), "--state-dir", str(state), "--reason", REASON
    )
    assert code == 0, err
    assert "96 intervals restated (0 unchanged, 0 down left alone)" in out
    assert column(out, "net_usd")[-1] == usd_text(expected["net_usd"], sign=True)

    day = summary(capsys, state, "--from", DAY1, "--to", DAY2)
    for c in MONEY_COMPONENTS:
        was = column(original, c)[0]
        assert column(day, c) == [
            was,
            usd_text(int(was.replace(",", "").replace(".", "")) + expected[c]),
            usd_text(expected[c], sign=True),
        ], c
    assert "corrections: 1" in day
    (line,) = [x for x in day.splitlines() if x.strip().startswith("correction ")]
    assert f"96 intervals {DAY1} .. {DAY2}" in line
    assert f"net {usd_text(expected['net_usd'], sign=True)} USD" in line
    assert f"reason: {REASON}" in line
    assert f"source: {path.name} (sha256 " in line
    # The other day is untouched, and so is every original entry.
    assert "corrections" not in summary(capsys, state, "--from", DAY2, "--to", END)
    ledger = SqliteLedger.open_readonly(state / LEDGER_FILE)
    assert list(ledger.records()) == before
    ledger.close()

    # A second correction of the same day (its hashprice) corrects the corrected intervals.
    hp_path = write_corrections(tmp_path / "hp.csv", [(DAY1, "44.0")], "usd_per_ph_day")
    code, out, err = restate(
        capsys, str(hp_path), "--config", str(config), "--state-dir", str(state),
        "--reason", "pool true-up", "--to", DAY2,
    )  # fmt: skip
    assert code == 0, err
    net = 0
    for r in day1:
        old = exact_amounts(r, r.price_usd_per_mwh, r.hashprice_usd_per_ph_day)
        new = exact_amounts(r, new_price[r.start], 44.0)
        net += micro(new["net_usd"]) - micro(old["net_usd"])
    day = summary(capsys, state, "--from", DAY1, "--to", DAY2)
    assert column(day, "net_usd")[-1] == usd_text(net, sign=True)
    assert "corrections: 2" in day
    assert "reason: pool true-up" in day
    conn = sqlite3.connect(state / LEDGER_FILE)
    assert conn.execute("SELECT COUNT(*) FROM restatements").fetchone()[0] == 192
    conn.close()


def test_rows_not_in_the_ledger_or_in_another_currency_are_refused_by_line(
    booked: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, state = booked
    conn = sqlite3.connect(state / LEDGER_FILE)
    count = conn.execute("SELECT COUNT(*) FROM restatements").fetchone()[0]
    conn.close()
    common = ["--config", str(config), "--state-dir", str(state), "--reason", "r"]

    outside = write_corrections(
        tmp_path / "outside.csv",
        [
            ("2024-08-21T23:45:00Z", "30"),
            ("2024-08-25T00:00:00Z", "31"),
            ("2024-08-25T00:15:00Z", "32"),
        ],
    )
    code, out, err = restate(capsys, str(outside), *common)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines == [
        "hashspark: error: outside.csv line 3 (2024-08-25T00:00:00Z): no interval of site "
        "hb-south starts in 2024-08-25T00:00:00Z .. 2024-08-25T00:15:00Z: not in the ledger",
        "hashspark: error: outside.csv line 4 (2024-08-25T00:15:00Z): no interval of site "
        "hb-south starts in 2024-08-25T00:15:00Z .. 2024-08-25T00:30:00Z: not in the ledger",
        "hashspark: nothing was booked",
    ]

    euros = write_corrections(tmp_path / "eur.csv", [(DAY2, "30")], "eur_per_mwh")
    code, _, err = restate(capsys, str(euros), *common, "--to", END)
    assert code == 2
    assert err.splitlines()[0] == (
        "hashspark: error: eur.csv line 1: column eur_per_mwh is in EUR, the ledger books USD: "
        "every row of it refused"
    )
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        "timestamp,usd_per_mwh,currency\n"
        "2024-08-21T00:00:00Z,30,USD\n2024-08-21T00:15:00Z,31,EUR\n2024-08-21T00:30:00Z,x,USD\n"
    )
    code, _, err = restate(capsys, str(mixed), *common)
    assert code == 2
    assert err.splitlines()[:2] == [
        "hashspark: error: mixed.csv line 3 (2024-08-21T00:15:00Z): currency EUR, the ledger "
        "books USD",
        "hashspark: error: mixed.csv line 4 (2024-08-21T00:30:00Z): usd_per_mwh 'x' is not a "
        "finite number",
    ]
    assert "Traceback" not in err
    conn = sqlite3.connect(state / LEDGER_FILE)
    assert conn.execute("SELECT COUNT(*) FROM restatements").fetchone()[0] == count


def test_terms_that_do_not_reproduce_the_booked_amounts_are_refused(
    booked: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, state = booked
    other = tmp_path / "other.toml"
    other.write_text(
        config.read_text().replace("premium_usd_per_mwh = 3.5", "premium_usd_per_mwh = 4")
    )
    path = write_corrections(tmp_path / "c.csv", [("2024-08-21T12:00:00Z", "30")])
    code, _, err = restate(
        capsys, str(path), "--config", str(other), "--state-dir", str(state), "--reason", "r",
        "--to", "2024-08-21T12:15:00Z",
    )  # fmt: skip
    assert code == 2
    assert err.splitlines()[0] == (
        "hashspark: error: c.csv line 2 (2024-08-21T12:00:00Z): interval 2024-08-21T12:00:00Z: "
        "its booked call_premium_usd (2.625000 USD) is not reproduced by the settlement on its "
        "booked inputs and these terms (3.000000 USD): not restated (was it settled under other "
        "terms?)"
    )


def test_down_time_is_left_alone_and_a_dry_run_books_nothing(
    booked: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, state = booked
    model = site_model(load_config(config).config.sites[0])
    ledger = SqliteLedger.open(state / LEDGER_FILE, run_id="r2", config_version="v", started_at=0)
    ledger.append(down_record(model, ts(END), ts(END) + 3600))  # the daemon was stopped
    ledger.close()
    path = write_corrections(
        tmp_path / "c.csv", [("2024-08-21T23:45:00Z", "25.5"), ("2024-08-22T00:00:00Z", "26")]
    )
    code, out, err = restate(
        capsys, str(path), "--config", str(config), "--state-dir", str(state),
        "--reason", "r", "--to", "2024-08-22T01:00:00Z", "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    assert "1 intervals restated (0 unchanged, 1 down left alone)" in out
    assert out.rstrip().endswith("dry run: nothing booked")
    conn = sqlite3.connect(state / LEDGER_FILE)
    assert conn.execute(
        "SELECT COUNT(*) FROM restatements WHERE start_s >= ?", (ts(DAY2),)
    ).fetchone() == (0,)


def test_corrections_computed_before_another_was_booked_are_not_booked(tmp_path: Path) -> None:
    ledger = SqliteLedger.open(tmp_path / "l.sqlite3", run_id="r", config_version="v", started_at=0)
    ledger.append(rec(ts(DAY1), ts(DAY1) + 900))
    deltas = Amounts(dict.fromkeys(MONEY_COMPONENTS, 1), {})
    one = Restated("s1", ts(DAY1), ts(DAY1) + 900, 43.0, 50.0, deltas)
    book = ledger.restatements
    planned = book.last_id()
    book.book([one], reason="a", source="s", booked_at=0, config_version="v", planned_after=planned)
    with pytest.raises(LedgerError, match="another restatement was booked while"):
        book.book(
            [one], reason="b", source="s", booked_at=0, config_version="v", planned_after=planned
        )
    assert book.totals("s1") == dict.fromkeys(MONEY_COMPONENTS, 1)
    assert [b.reason for b in book.batches("s1")] == ["a"]
