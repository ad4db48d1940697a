"""The Grafana dashboard: it loads with grafana-foundation-sdk, and every panel's PromQL
evaluates against a real Prometheus scraping the real daemon."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as gdash
from grafana_foundation_sdk.models import prometheus as gprom

from tests.daemon_kit import ROOT, free_port, get, healthz, scenario, start_daemon, wait_for

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "hashspark.json"
SITE = "hb-south"

# What Grafana puts in place of its variables when it sends a query. The test Prometheus
# scrapes every second, so 10 s holds several samples; $__range covers the whole run.
SUBSTITUTIONS = {
    "$site": SITE,
    "$__rate_interval": "10s",
    "$__interval": "2s",
    "$__range": "10m",
}

# Panels whose queries may rightly return nothing from a simulated replay.
MAY_BE_EMPTY = {
    # The in-process fleet applies commands at once: no telemetry confirmation to time.
    "Command confirmation latency",
}


def _load() -> gdash.Dashboard:
    plugins.register_default_plugins()
    return gdash.Dashboard.from_json(json.loads(DASHBOARD.read_text()))


def _panels(board: gdash.Dashboard) -> Iterator[gdash.Panel]:
    for item in board.panels or []:
        if isinstance(item, gdash.RowPanel):
            yield from item.panels
        else:
            yield item


def _queries(board: gdash.Dashboard) -> list[tuple[str, str, gprom.Dataquery]]:
    out = []
    for panel in _panels(board):
        for target in panel.targets or []:
            assert isinstance(target, gprom.Dataquery), panel.title
            out.append((panel.title or "", target.ref_id, target))
    return out


def _concrete(expr: str) -> str:
    # Longest first: $__rate_interval before $__range and $__interval.
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    assert "$" not in expr, f"a variable the test does not substitute: {expr}"
    return expr


def test_dashboard_loads_with_the_foundation_sdk() -> None:
    board = _load()
    assert board.uid == "hashspark-site"
    panels = list(_panels(board))
    assert len(panels) >= 15
    datasource_uid = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/hashspark.yml").read_text()
    )["datasources"][0]["uid"]
    for panel in panels:
        assert panel.targets, f"{panel.title} has no query"
        assert panel.datasource is not None
        assert panel.datasource.type_val == "prometheus", panel.title
        assert panel.datasource.uid == datasource_uid, panel.title
        for target in panel.targets:
            assert isinstance(target, gprom.Dataquery), panel.title
            assert target.expr.strip(), panel.title
            assert target.datasource is not None
            assert target.datasource.type_val == "prometheus"
    refs = [(title, ref) for title, ref, _ in _queries(board)]
    assert len(refs) == len(set(refs)), "refIds repeat within a panel"
    ids = [p.id_val for p in board.panels or []]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    # The SDK writes back what it read: no panel or query lost on the way.
    again = gdash.Dashboard.from_json(json.loads(json.dumps(board, cls=JSONEncoder)))
    assert [(t, r, q.expr) for t, r, q in _queries(again)] == [
        (t, r, q.expr) for t, r, q in _queries(board)
    ]


def test_dashboard_has_the_site_variable_and_the_panels_ops_expect() -> None:
    board = _load()
    variables = board.templating.list_val or []
    site = next(v for v in variables if v.name == "site")
    assert site.type_val == "query"
    assert "label_values(hashspark_load_mw, site)" in json.dumps(site.query)
    exprs = " ".join(q.expr for _, _, q in _queries(board))
    for needle in (
        "hashspark_spot_price_usd_per_mwh",
        "hashspark_energy_hashprice_usd_per_mwh",
        "hashspark_breakeven_usd_per_mwh",
        "hashspark_opportunity_cost_usd_per_mwh",
        "hashspark_miners",
        "hashspark_curtailed_mw",
        "hashspark_resale_revenue_usd_total",
        "hashspark_call_payout_usd_total",
        "hashspark_net_usd_total",
        "hashspark_spread_usd_per_mwh",
        "hashspark_feed_age_seconds",
        "hashspark_failsafe_active",
        "hashspark_commands_total",
        "histogram_quantile(0.99, sum by (le) (rate(hashspark_command_confirmation_seconds_bucket",
        "hashspark_cycle_duration_seconds_bucket",
        "hashspark_ledger_write_errors_total",
    ):
        assert needle in exprs, needle
    for _, _, query in _queries(board):
        assert '{site="$site"' in query.expr, query.expr


def _api(prom_port: int, path: str, **params: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{prom_port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        return dict(json.loads(get(url, timeout=10)))
    except urllib.error.HTTPError as exc:  # a bad query: 400 with the parser's reason
        return dict(json.loads(exc.read()))


def test_every_panel_query_evaluates_against_a_real_prometheus(tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing: make test installs Debian's prometheus package")
    board = _load()
    config = scenario(tmp_path, "2024-08-20T00:00:00Z", "2024-08-21T00:00:00Z")
    port, prom_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: hashspark\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
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
    started = time.time()
    # Paced: the simulated day takes about 6 s, so Prometheus sees the counters move.
    daemon = start_daemon(config, tmp_path / "s", port, "--stay", "--speed", "14400")
    try:
        wait_for(lambda: healthz(port)["finished"], timeout=40, what="the replay to finish")

        def scraped_the_end() -> bool:
            data = _api(
                prom_port, "query", query=f'hashspark_settled_intervals_total{{site="{SITE}"}}'
            )
            result = data["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) == 96

        wait_for(scraped_the_end, timeout=20, what="Prometheus to scrape the last interval")

        # The site variable, as Grafana resolves label_values(hashspark_load_mw, site).
        sites = _api(prom_port, "label/site/values", **{"match[]": "hashspark_load_mw"})
        assert sites["status"] == "success"
        assert sites["data"] == [SITE]

        end = time.time()
        failures: list[str] = []
        for title, ref, query in _queries(board):
            expr = _concrete(query.expr)
            instant = _api(prom_port, "query", query=expr, time=f"{end:.3f}")
            ranged = _api(
                prom_port,
                "query_range",
                query=expr,
                start=f"{started:.3f}",
                end=f"{end:.3f}",
                step="1",
            )
            for kind, answer in (("query", instant), ("query_range", ranged)):
                if answer.get("status") != "success":
                    failures.append(f"{title} {ref} {kind}: {answer.get('error')}\n  {expr}")
                elif not answer["data"]["result"] and title not in MAY_BE_EMPTY:
                    failures.append(f"{title} {ref} {kind}: no data\n  {expr}")
        assert not failures, "\n".join(failures)
    finally:
        for proc in (daemon, prom):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
