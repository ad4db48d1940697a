"""The daemon end to end: crash and resume, metrics, and a real Prometheus scraping it."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from adapters.ledger.sqlite import SqliteLedger
from tests.daemon_kit import EXE, free_port, get, healthz, scenario, start_daemon, wait_for


def _rows(state: Path) -> list[tuple[object, ...]]:
    """Every ledger row except the run id (which differs between runs by design)."""
    conn = sqlite3.connect(state / "ledger.sqlite3")
    cols = [r[1] for r in conn.execute("PRAGMA table_info(intervals)") if r[1] != "run_id"]
    rows = conn.execute(
        f"SELECT {', '.join(cols)} FROM intervals ORDER BY site_id, start_s"
    ).fetchall()
    flows = conn.execute("SELECT * FROM instrument_flows ORDER BY 1, 2, 3, 4").fetchall()
    return rows + flows


def _committed(state: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
        return int(conn.execute("SELECT COUNT(*) FROM intervals").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_kill_minus_nine_mid_replay_then_restart_matches_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    config = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-22T00:00:00Z")  # 288 intervals
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    subprocess.run(
        [EXE, "run", str(config), "--simulated", "--state-dir", str(clean), "--metrics-port", "0"],
        check=True,
        capture_output=True,
    )

    # Paced at 86,400x: a simulated day per second, so the kill lands mid-replay.
    proc = start_daemon(config, crashed, free_port(), "--speed", "86400")
    wait_for(lambda: _committed(crashed) >= 60, what="60 committed intervals")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    at_kill = _committed(crashed)
    assert 60 <= at_kill < 288, "the kill must land mid-replay"

    subprocess.run(
        [
            EXE,
            "run",
            str(config),
            "--simulated",
            "--state-dir",
            str(crashed),
            "--metrics-port",
            "0",
        ],
        check=True,
        capture_output=True,
    )
    assert _committed(crashed) == 288
    assert _rows(crashed) == _rows(clean)  # interval by interval, every component and input
    runs = (
        sqlite3.connect(crashed / "ledger.sqlite3")
        .execute("SELECT COUNT(*) FROM runs")
        .fetchone()[0]
    )
    assert runs == 2


def test_sigterm_settles_the_open_interval_and_exits_zero(tmp_path: Path) -> None:
    config = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-22T00:00:00Z")
    port = free_port()
    proc = start_daemon(config, tmp_path / "s", port, "--speed", "86400")
    wait_for(lambda: _committed(tmp_path / "s") >= 20, what="20 intervals")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    ledger = SqliteLedger.open_readonly(tmp_path / "s" / "ledger.sqlite3")
    records = list(ledger.records())
    # Contiguous: each interval starts where the previous ended, nothing missing.
    assert all(a.end == b.start for a, b in itertools.pairwise(records))


def test_metrics_pass_promtool_and_match_the_ledger(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: make test installs Debian's prometheus package")
    config = scenario(tmp_path, "2024-08-20T00:00:00Z", "2024-08-21T00:00:00Z")
    port = free_port()
    proc = start_daemon(config, tmp_path / "s", port, "--stay")
    try:
        wait_for(lambda: healthz(port)["finished"], what="the replay to finish")
        text = get(f"http://127.0.0.1:{port}/metrics")
        lint = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, check=False
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
        assert lint.stdout == b""
        assert lint.stderr == b""
        samples = _parse(text.decode())
        totals = SqliteLedger.open_readonly(tmp_path / "s" / "ledger.sqlite3").totals("hb-south")
        net = samples.get(("hashspark_net_usd_total", "in"), 0.0) - samples.get(
            ("hashspark_net_usd_total", "out"), 0.0
        )
        assert net == pytest.approx(totals["net_usd"], rel=1e-9)
        assert samples[("hashspark_call_payout_usd_total", "out")] == pytest.approx(
            totals["call_payout_usd"]
        )
        assert samples[("hashspark_call_payout_usd_total", "out")] > 0  # the scarcity evening
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _parse(text: str) -> dict[tuple[str, str], float]:
    """(metric name, direction) -> value for the site's P&L counters."""
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("hashspark_") and 'direction="' in line and "instrument=" not in line:
            name = line.split("{", 1)[0]
            direction = line.split('direction="', 1)[1].split('"', 1)[0]
            out[(name, direction)] = float(line.rsplit(" ", 1)[1])
    return out


def test_a_real_prometheus_scrapes_the_pnl_the_ledger_holds(tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing: make test installs Debian's prometheus package")
    config = scenario(tmp_path, "2024-08-20T00:00:00Z", "2024-08-21T00:00:00Z")
    port, prom_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: hashspark\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    daemon = start_daemon(config, tmp_path / "s", port, "--stay")
    prom = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: healthz(port)["finished"], what="the replay to finish")
        totals = SqliteLedger.open_readonly(tmp_path / "s" / "ledger.sqlite3").totals("hb-south")

        def query(expr: str) -> float | None:
            url = f"http://127.0.0.1:{prom_port}/api/v1/query?query={urllib.parse.quote(expr)}"
            result = json.loads(get(url))["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        def net_matches() -> bool:
            net = query(
                'sum(hashspark_net_usd_total{site="hb-south",direction="in"}) '
                '- (sum(hashspark_net_usd_total{site="hb-south",direction="out"}) or vector(0))'
            )
            return net is not None and abs(net - totals["net_usd"]) < 1e-6 * abs(totals["net_usd"])

        wait_for(net_matches, timeout=30, what="Prometheus to scrape the final P&L")
        for component in ("mining_revenue_usd", "call_premium_usd", "call_payout_usd"):
            value = query(f'sum(hashspark_{component}_total{{site="hb-south"}})')
            assert value == pytest.approx(totals[component], rel=1e-9), component
        intervals = query('hashspark_settled_intervals_total{site="hb-south"}')
        assert intervals == totals["intervals"] == 96
    finally:
        for proc in (daemon, prom):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
