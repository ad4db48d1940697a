"""``compare --capital`` and ``stress`` through the real parser: the figures, the
assumptions printed beside them, reproducible bootstraps and one-line usage errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.app.cli import main
from controller.app.replay.capital_view import CapitalInputs, capital_view
from controller.app.replay.compare import compare
from controller.app.replay.runner import prepare
from controller.config import load_config

ROOT = Path(__file__).resolve().parents[1]
HEDGED = ROOT / "deploy/scenarios/ercot-hb-south-hedged.toml"
SUBSIDY = ROOT / "simulators/recordings/btc_hashprice_daily_2024-05_2025-04.csv"
#: Two whole months (July and August 2024): quick, and enough to resample.
WINDOW = ["--from", "2024-07-01", "--to", "2024-09-01"]


def test_compare_capital_prints_figures_and_assumptions(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--capital", "--coverage-ratio", "1.6", "--capex", "Antminer S21=3400"]
    args += ["--book-discount-rate", "ppa+forward+call=0.08"]
    assert main(["compare", str(HEDGED), *WINDOW, *args]) == 0
    out = capsys.readouterr().out
    assert "coverage ratio 1.6 on CFaR = the 10th percentile of monthly net over 2 whole" in out
    assert "Antminer S21            400 x  3,400.00 USD (given)" in out
    assert "Antminer S19j Pro       600 x  1,560.00 USD (default 15 USD/TH x 104 TH/s)" in out
    inputs = prepare(
        load_config(HEDGED),
        start=datetime(2024, 7, 1, tzinfo=UTC),
        end=datetime(2024, 9, 1, tzinfo=UTC),
    )
    view = capital_view(
        compare(inputs),
        inputs.model.fleet,
        CapitalInputs(
            coverage_ratio=1.6,
            capex_usd_per_miner={"Antminer S21": 3400.0},
            discount_rates={"ppa+forward+call": 0.08},
        ),
    )
    lines = {
        line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()
    }
    for name, f in view.books:
        assert f.debt_capacity_usd is not None
        assert f"{f.debt_capacity_usd:,.0f}" in lines[name], name
        assert f"{f.pv_usd:,.0f}" in lines[name], name
    assert " 8.0% " in lines["ppa+forward+call"]
    assert " 15.0% " in lines["ppa"]


def _stress(tmp_path: Path, name: str, seed: str) -> dict[str, Any]:
    path = tmp_path / name
    args = ["stress", str(HEDGED), *WINDOW, "--draws", "300", "--seed", seed, "--json", str(path)]
    args += ["--hashprice-scale", "0.8", "--fee-scale", "0", "--subsidy-hashprice", str(SUBSIDY)]
    args += ["--spike", "2024-07-15T20:00Z/3@5000", "--power-shift", "5"]
    assert main(args) == 0
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.slow  # three stressed replays and bootstraps (about 7 s); tests/test_capital.py
# checks the bootstrap's seed in the default suite
def test_stress_bootstrap_is_reproducible_from_its_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _stress(tmp_path, "one.json", "7")
    err = capsys.readouterr().err
    assert "stress: book 6/6 ppa+forward+call" in err
    assert "bootstrap: 300/300 draws" in err
    two = _stress(tmp_path, "two.json", "7")
    other = _stress(tmp_path, "other.json", "8")
    assert one == two  # every figure of every draw's summary, to the last digit
    assert one["distribution"] != other["distribution"]
    assert one["capital"] == other["capital"]  # the stressed replay does not depend on the seed
    books = [b["book"] for b in one["distribution"]]
    assert len(books) == 6
    base = one["base_net_usd"]
    stressed = {b["name"]: b["net_usd"] for b in one["capital"]["books"]}
    assert all(stressed[b] != base[b] for b in books)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["compare", "--capital", "--capex", "Antminer S9=100"],
            "--capex: no miner model 'Antminer S9'",
        ),
        (["compare", "--book-discount-rate", "nope=0.1"], "--book-discount-rate: no book 'nope'"),
        (["stress", "--fee-scale", "0"], "--fee-scale needs --subsidy-hashprice"),
        (["stress", "--spike", "2025-06-01T00:00Z/2@900"], "is not inside the window"),
        (["stress", "--window", "quiet-week-2024-09-02"], "bootstrap: the window has no whole"),
    ],
)
def test_bad_assumptions_stop_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command, *rest = args
    window = [] if "--window" in rest else WINDOW
    assert main([command, str(HEDGED), *window, *rest]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hashspark: error: ")
    assert message in err[-1]
    assert "Traceback" not in "\n".join(err)
