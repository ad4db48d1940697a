"""The console script's windows, ``compare`` and ``--report``: happy paths and bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_cli_errors import HEDGED, TOTALS_KEYS, run

STRATEGY_UNKNOWN_KEY = """
[[compare.strategies]]
name = "spot"
supply = { type = "spot" }

[[compare.strategies]]
name = "call"
supply = { type = "fixed_ppa", quantity_mw = 3.3, price_usd_per_mwh = 45 }

[[compare.strategies.hedges]]
type = "short_call"
id = "c"
quantity_mw = 3
strike_usd_per_mwh = 200
premium_usd_per_mwh = 3.5
expiry = "2025-01-01"
"""

SCARCITY_START = 'start = "2024-08-20T17:00:00Z"'
QUIET_NAME = 'name = "quiet-week-2024-09-02"'


def _cases(make: Callable[..., Path]) -> dict[str, tuple[list[str | Path], list[str]]]:
    bad_strategy = make(append=STRATEGY_UNKNOWN_KEY, name="strategy.toml")
    outside = make((SCARCITY_START, 'start = "2024-05-01T00:00:00Z"'), name="outside.toml")
    dupe = make((QUIET_NAME, 'name = "scarcity-2024-08-20"'), name="dupe.toml")
    good = make(name="good.toml")
    return {
        "unknown-window": (
            [good, "--window", "evening"],
            [str(good), "no window 'evening'", "scarcity-2024-08-20, quiet-week-2024-09-02"],
        ),
        "window-and-from": (
            [good, "--window", "scarcity-2024-08-20", "--from", "2024-08-20"],
            ["--window and --from/--to exclude each other"],
        ),
        "window-outside-scenario": (
            [outside],
            [str(outside), "scenario: window 'scarcity-2024-08-20' is not inside"],
        ),
        "duplicate-window": (
            [dupe],
            [str(dupe), "scenario: window names must be unique: scarcity-2024-08-20"],
        ),
        "strategy-unknown-key": (
            [bad_strategy],
            [str(bad_strategy), "compare.strategies[1].hedges[0].expiry: unknown key"],
        ),
    }


# Config errors take the same path for both commands; the window flags are each command's.
CASES = [
    ("compare", "unknown-window"),
    ("compare", "window-and-from"),
    ("compare", "window-outside-scenario"),
    ("compare", "duplicate-window"),
    ("compare", "strategy-unknown-key"),
    ("replay", "unknown-window"),
    ("replay", "window-and-from"),
]


@pytest.mark.parametrize(("command", "name"), CASES)
def test_bad_input_is_one_line_and_exit_2(
    make_scenario: Callable[..., Path], tmp_path: Path, command: str, name: str
) -> None:
    args, names = _cases(make_scenario)[name]
    out = tmp_path / "out"
    proc = run(command, *args, "--report", out, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("hashspark: error: "), line
    for text in names:
        assert text in line, (text, line)
    assert proc.stdout == ""
    assert not out.exists(), "a failed run writes no report"


def test_replay_window_writes_the_html_report(repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = run("replay", HEDGED, "--window", "scarcity-2024-08-20", "--report", out, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr
    assert f"html report {out / 'report.html'}" in proc.stdout
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["window"] == {"from": "2024-08-20T17:00:00Z", "to": "2024-08-22T05:00:00Z"}
    assert set(data["totals"]) == TOTALS_KEYS
    assert data["totals"]["hours"] == pytest.approx(36.0)
    assert sorted(p.name for p in out.iterdir()) == [
        "cumulative-pnl.png",
        "price-vs-energy-hashprice.png",
        "report.html",
        "report.json",
    ]


def test_replay_without_report_says_where_one_would_go(repo_root: Path) -> None:
    proc = run("replay", HEDGED, "--window", "quiet-week-2024-09-02", cwd=repo_root)
    assert proc.returncode == 0, proc.stderr
    assert "2024-09-02T00:00:00Z .. 2024-09-09T00:00:00Z" in proc.stdout
    assert "add --report DIR" in proc.stdout


def test_compare_prints_every_book(repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    proc = run(
        "compare", HEDGED, "--window", "quiet-week-2024-09-02", "--report", out, cwd=repo_root
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert data["strategies_source"] == "built-in"
    assert data["window"] == {"from": "2024-09-02T00:00:00Z", "to": "2024-09-09T00:00:00Z"}
    for row in data["strategies"]:
        assert set(row["totals"]) == TOTALS_KEYS
        assert row["days_counted"] == 7
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(f"  {row['name']} "))
        assert f"{row['totals']['net_usd']:,.2f}" in line
        assert f"{row['daily_net_std_usd']:,.2f}" in line
    assert (out / "report.html").is_file()
