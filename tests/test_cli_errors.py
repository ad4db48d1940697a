"""The installed ``hashspark`` console script: bad input is one clear line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

HASHSPARK = Path(sys.executable).parent / "hashspark"
HEDGED = "deploy/scenarios/ercot-hb-south-hedged.toml"
PRICE_FILE = "ercot_hb_south_rtm_spp_15min_2024-06_2025-03.csv"

TOTALS_KEYS = {
    "intervals",
    "hours",
    "mined_mwh",
    "curtailed_mwh",
    "mining_revenue_usd",
    "power_cost_usd",
    "resale_revenue_usd",
    "call_premium_usd",
    "call_payout_usd",
    "forward_settlement_usd",
    "net_usd",
}


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real console script, as a user would run it."""
    assert HASHSPARK.is_file(), f"console script not installed at {HASHSPARK}"
    return subprocess.run(
        [str(HASHSPARK), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass(frozen=True)
class Case:
    """A bad input: the arguments after the command and what the error line must name."""

    args: list[str | Path]
    names: list[str]


@dataclass(frozen=True)
class Ctx:
    """What a case builder may use: a scratch directory and the scenario writer."""

    tmp: Path
    make_scenario: Callable[..., Path]
    recordings_dir: Path


Build = Callable[[Ctx], Case]


def _unknown_key(ctx: Ctx) -> Case:
    path = ctx.make_scenario(("hysteresis_usd_per_mwh = 0", "hysteresis_band = 0"))
    return Case([path], [str(path), "sites[0].policy.hysteresis_band", "unknown key"])


def _negative_count(ctx: Ctx) -> Case:
    path = ctx.make_scenario(("count = 600", "count = -5"))
    return Case([path], [str(path), "sites[0].miners[0].count", "greater than or equal to 1"])


def _missing_scenario(ctx: Ctx) -> Case:
    path = ctx.tmp / "no-such-scenario.toml"
    return Case([path], [str(path), "no such file"])


def _missing_recording(ctx: Ctx) -> Case:
    path = ctx.make_scenario((PRICE_FILE, "gone.csv"))
    missing = ctx.recordings_dir / "gone.csv"
    return Case([path], [str(path), "sites[0].price_feed.path", str(missing), "no such file"])


def _bad_csv(row: str, reason: str) -> Build:
    """A scenario whose price recording has ``row`` on line 3."""

    def build(ctx: Ctx) -> Case:
        csv = ctx.tmp / "price.csv"
        csv.write_text(
            f"timestamp,usd_per_mwh\n2024-08-20T00:00:00Z,17.5\n{row}\n2024-08-20T00:30:00Z,1\n",
            encoding="utf-8",
        )
        price = f'"{ctx.recordings_dir.as_posix()}/{PRICE_FILE}"'
        path = ctx.make_scenario((price, f'"{csv.as_posix()}"'))
        return Case([path], [f"{csv}:3: ", reason])

    return build


def _window_before_recording(ctx: Ctx) -> Case:
    path = ctx.make_scenario()
    return Case(
        [path, "--from", "2024-01-01", "--to", "2024-01-02"],
        [PRICE_FILE, "2024-01-01T00:00:00Z", "before its first observation"],
    )


CASES: dict[str, Build] = {
    "unknown-key": _unknown_key,
    "negative-miner-count": _negative_count,
    "missing-scenario": _missing_scenario,
    "missing-recording": _missing_recording,
    "csv-malformed-row": _bad_csv("2024-08-20T00:15:00Z,1.0,2.0", "expected 2 fields, found 3"),
    "csv-nan": _bad_csv("2024-08-20T00:15:00Z,NaN", "value is not finite"),
    "csv-inf": _bad_csv("2024-08-20T00:15:00Z,inf", "value is not finite"),
    "csv-empty-price": _bad_csv("2024-08-20T00:15:00Z,", "empty value"),
    "window-before-recording": _window_before_recording,
}


@pytest.fixture
def ctx(tmp_path: Path, make_scenario: Callable[..., Path], recordings_dir: Path) -> Ctx:
    """The builders' context for this test."""
    return Ctx(tmp_path, make_scenario, recordings_dir)


def _assert_usage_error(proc: subprocess.CompletedProcess[str], report: Path) -> list[str]:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not report.exists(), "a failed run must not leave a report"
    assert not list(report.parent.glob(f".{report.name}.*")), "nor a temporary report"
    return proc.stderr.splitlines()


@pytest.mark.parametrize("build", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_and_exit_2(ctx: Ctx, build: Build) -> None:
    case = build(ctx)
    report = ctx.tmp / "out" / "report.json"
    proc = run("replay", *case.args, "--report-json", report, cwd=ctx.tmp)
    lines = _assert_usage_error(proc, report)
    assert len(lines) == 1, proc.stderr
    (line,) = lines
    assert line.startswith("hashspark: error: "), line
    for name in case.names:
        assert name in line, (name, line)
    assert proc.stdout == ""


CONFIG_CASES = ["unknown-key", "negative-miner-count", "missing-scenario", "missing-recording"]


@pytest.mark.parametrize("name", CONFIG_CASES)
def test_check_config_reports_the_same_way(ctx: Ctx, name: str) -> None:
    case = CASES[name](ctx)
    proc = run("check-config", *case.args, cwd=ctx.tmp)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("hashspark: error: ")
    for name in case.names:
        assert name in line, (name, line)


def test_from_without_zone_is_an_argparse_error(tmp_path: Path, repo_root: Path) -> None:
    report = tmp_path / "report.json"
    proc = run(
        "replay", HEDGED, "--from", "2024-08-20T00:00:00", "--report-json", report, cwd=repo_root
    )
    lines = _assert_usage_error(proc, report)
    # argparse's own format: the usage, then one "prog: error:" line.
    assert lines[0].startswith("usage: hashspark replay"), proc.stderr
    assert lines[-1].startswith("hashspark replay: error: argument --from: "), proc.stderr
    assert "'2024-08-20T00:00:00' has no time zone" in lines[-1]


# --- the happy path ----------------------------------------------------------------------


def test_check_config_prints_a_comment_then_json(repo_root: Path) -> None:
    proc = run("check-config", HEDGED, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr
    first, _, rest = proc.stdout.partition("\n")
    assert first.startswith(f"# {HEDGED}: valid (version "), first
    data = json.loads(rest)
    assert data["scenario"]["name"] == "ercot-hb-south-hedged"
    assert [h["id"] for h in data["sites"][0]["hedges"]] == ["call-200", "fwd-70ph"]


def test_replay_one_day_writes_the_report(repo_root: Path, tmp_path: Path) -> None:
    report = tmp_path / "nested" / "report.json"
    proc = run(
        "replay",
        HEDGED,
        "--from",
        "2024-08-20",
        "--to",
        "2024-08-21",
        "--report-json",
        report,
        cwd=repo_root,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "net" in proc.stdout
    assert str(report) in proc.stdout
    data = json.loads(report.read_text(encoding="utf-8"))
    totals = data["totals"]
    assert set(totals) == TOTALS_KEYS
    assert totals["intervals"] == 96
    assert totals["hours"] == pytest.approx(24.0)
    assert list(report.parent.iterdir()) == [report]  # no temporary file left behind
