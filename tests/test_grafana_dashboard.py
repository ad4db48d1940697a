"""The Grafana dashboard: it loads with grafana-foundation-sdk, and every panel's PromQL
evaluates against a real Prometheus scraping the real daemon."""

from __future__ import annotations

import json
import re
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
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
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

# How long a condition may take before the test fails: generous, since the test waits for
# the condition itself (never for time) and a loaded machine may be slow to get there.
DEADLINE_S = 120.0

# A range-vector selector, e.g. hashspark_net_usd_total{site="hb-south"}[10m].
RANGE_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\})\[([0-9]+[smhd])\]")

# The site's Bitcoin inputs, recorded (the hedged scenario's only site is the last table).
BITCOIN_INPUTS = "\n[sites.bitcoin]\n" + "".join(
    f'{key} = {{ type = "recorded", path = "{ROOT.as_posix()}/simulators/recordings/{name}" }}\n'
    for key, name in (
        ("btc_usd_feed", "btc_usd_daily_2024-05_2025-04.csv"),
        ("difficulty_feed", "btc_difficulty_daily_2024-05_2025-04.csv"),
        ("fees_feed", "btc_fees_daily_2024-05_2025-04.csv"),
    )
)

# Panels whose queries may rightly return nothing from a simulated replay.
MAY_BE_EMPTY = {
    # The in-process fleet applies commands at once: no telemetry confirmation to time.
    "Command confirmation latency",
    # The replayed day has no grid program: the draw is there, the caps and compliance not.
    "Grid programs: cap, draw and compliance",
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
        "hashspark_ledger_unwritten_intervals",
        "hashspark_grid_compliant",
        "hashspark_draw_mw",
        "hashspark_btc_price_usd_per_btc",
        "hashspark_bitcoin_difficulty",
        "hashspark_bitcoin_fees_btc_per_block",
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


def _at(ms: int) -> str:
    """A Prometheus API timestamp from integer milliseconds."""
    return f"{ms / 1000:.3f}"


def _range_selectors(exprs: list[str]) -> set[tuple[str, str]]:
    """Every (selector, window) the expressions take increase() or rate() over."""
    return {(m[1], m[2]) for expr in exprs for m in RANGE_SELECTOR.finditer(expr)}


def _lacking_at(prom_port: int, selectors: set[tuple[str, str]], at_ms: int) -> list[str]:
    """What Prometheus lacks at ``at_ms`` for the panel queries: the last of the day's 96
    settled intervals, or two samples within the window of each series of those selectors
    (increase() and rate() return nothing for a series with fewer). Once the last interval
    is in, so is every series the exporter ends with: a selector that then matches no series
    lacks nothing here (its query answers with no data, and the test says so)."""
    settled = f'hashspark_settled_intervals_total{{site="{SITE}"}}'
    answer = _api(prom_port, "query", query=settled, time=_at(at_ms))
    assert answer.get("status") == "success", f"{settled}: {answer.get('error')}"
    values = [float(r["value"][1]) for r in answer["data"]["result"]]
    if values != [96]:
        return [f"{settled} == 96 (the last interval scraped), have {values}"]
    lacking = []
    for selector, window in sorted(selectors):
        query = f"{selector} unless count_over_time({selector}[{window}]) >= 2"
        answer = _api(prom_port, "query", query=query, time=_at(at_ms))
        assert answer.get("status") == "success", f"{query}: {answer.get('error')}"
        lacking += [f"two samples of {r['metric']} in [{window}]" for r in answer["data"]["result"]]
    return lacking


def test_every_panel_query_evaluates_against_a_real_prometheus(tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing: make test installs Debian's prometheus package")
    board = _load()
    config = scenario(tmp_path, "2024-08-20T00:00:00Z", "2024-08-21T00:00:00Z")
    with config.open("a") as f:  # the Bitcoin inputs' panels: the hashprice is still the feed
        f.write(BITCOIN_INPUTS)
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
    # Integer milliseconds, so that the range queries' last step falls exactly on `end`.
    started_ms = int(time.time() * 1000)
    procs = [prom]
    try:
        wait_for(
            lambda: get(f"http://127.0.0.1:{prom_port}/-/ready"),
            timeout=DEADLINE_S,
            what="Prometheus to be ready",
        )
        # Paced: the simulated day takes about 6 s, so Prometheus likely sees the counters
        # move. --stay keeps the exporter serving after the day ends, for as long as the test
        # needs scrapes of it: nothing below depends on how fast the day or the scrapes go.
        procs.insert(0, start_daemon(config, tmp_path / "s", port, "--stay", "--speed", "14400"))
        wait_for(lambda: healthz(port)["finished"], timeout=DEADLINE_S, what="the replay to finish")

        # The queries are evaluated at `end`, once Prometheus holds, as of then, the last
        # settled interval (so every series the exporter ends with) and two samples of every
        # series the panels take increase() or rate() over: with fewer they return nothing.
        queries = [(title, ref, _concrete(query.expr)) for title, ref, query in _queries(board)]
        selectors = _range_selectors([expr for _, _, expr in queries])
        assert selectors, "no increase() or rate() in the dashboard: the test is out of date"
        deadline = time.monotonic() + DEADLINE_S
        while True:
            # Whole seconds after the start, so that it is the range queries' last step.
            end_ms = started_ms + (int(time.time() * 1000) - started_ms) // 1000 * 1000
            lacking = _lacking_at(prom_port, selectors, end_ms)
            if not lacking:
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"after {DEADLINE_S:.0f} s Prometheus (scraping 127.0.0.1:{port}) still "
                    "lacks what the panel queries need:\n  " + "\n  ".join(lacking)
                )
            time.sleep(0.2)

        # The site variable, as Grafana resolves label_values(hashspark_load_mw, site).
        sites = _api(prom_port, "label/site/values", **{"match[]": "hashspark_load_mw"})
        assert sites["status"] == "success"
        assert sites["data"] == [SITE]

        failures: list[str] = []
        for title, ref, expr in queries:
            instant = _api(prom_port, "query", query=expr, time=_at(end_ms))
            ranged = _api(
                prom_port,
                "query_range",
                query=expr,
                start=_at(started_ms),
                end=_at(end_ms),
                step="1",
            )
            for kind, answer in (("query", instant), ("query_range", ranged)):
                if answer.get("status") != "success":
                    failures.append(f"{title} {ref} {kind}: {answer.get('error')}\n  {expr}")
                elif not answer["data"]["result"] and title not in MAY_BE_EMPTY:
                    failures.append(f"{title} {ref} {kind}: no data\n  {expr}")
        assert not failures, "\n".join(failures)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


FINANCE = GRAFANA / "dashboards" / "hashspark-finance.json"


def _sql_targets(board: gdash.Dashboard) -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) of every PostgreSQL query (the SDK has no model for them)."""
    out = []
    for panel in _panels(board):
        for target in panel.targets or []:
            assert isinstance(target, UnknownDataquery), panel.title
            out.append((panel.title or "", target.data))
    return out


def test_the_finance_dashboard_loads_and_reads_the_central_ledger_by_site() -> None:
    """The PostgreSQL-backed finance dashboard: it loads with the SDK, every query and the
    site variable use the provisioned central datasource, and the site variable takes many
    sites. Its SQL runs against a real central ledger in tests/test_central_ledger.py."""
    plugins.register_default_plugins()
    board = gdash.Dashboard.from_json(json.loads(FINANCE.read_text()))
    central = yaml.safe_load((GRAFANA / "provisioning/datasources/central.yml").read_text())
    source = central["datasources"][0]
    assert source["type"] == "grafana-postgresql-datasource"
    assert source["secureJsonData"]["password"].startswith("$")  # from the environment
    assert board.templating is not None
    site = {v.name: v for v in board.templating.list_val or []}["site"]
    assert site.multi
    assert site.datasource is not None
    assert site.datasource.uid == source["uid"]
    targets = _sql_targets(board)
    assert len(targets) == 3
    for title, target in targets:
        assert target["datasource"]["uid"] == source["uid"], title
        assert "site_id IN ($site)" in target["rawSql"], title
