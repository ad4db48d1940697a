"""The shipped Prometheus config and alert rules pass promtool, unit tests included."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.daemon_kit import ROOT

PROM = ROOT / "deploy" / "prometheus"
ALERTS = {
    "HashsparkCommandsRefused",
    "HashsparkGridNonCompliant",
    "HashsparkShardUnmanaged",
    "HashsparkDown",
    "HashsparkRestarted",
    "HashsparkNoCycleProgress",
    "HashsparkFeedStale",
    "HashsparkBitcoinFeedStale",
    "HashsparkFailsafeActive",
    "HashsparkMinersUnreachable",
    "HashsparkCommandsUnconfirmed",
    "HashsparkMinersBackingOff",
    "HashsparkLedgerWriteErrors",
    "HashsparkStorageFailing",
    "HashsparkLedgerIntervalsDropped",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: make test installs Debian's prometheus package")
    return subprocess.run(
        [promtool, *args], cwd=PROM, check=False, capture_output=True, text=True, timeout=60
    )


def test_promtool_checks_the_config_and_its_rule_files() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_checks_the_rules() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(ALERTS)} rules found" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_labelled_annotated_and_unit_tested() -> None:
    rules = [
        r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]
    ]
    assert {r["alert"] for r in rules} == ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}, rule["alert"]
        assert 'job="hashspark"' in rule["expr"], rule["alert"]
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    for name in ALERTS:
        cases = [c for t in tests for c in t["alert_rule_test"] if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in cases), f"{name} never tested firing"
        assert any(not c["exp_alerts"] for c in cases), f"{name} never tested quiet"


def test_every_alert_has_a_runbook_section_in_the_deploy_docs() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    headings = {line.removeprefix("### ").strip() for line in text.splitlines()}
    for name in ALERTS:
        assert name in headings, f"docs/deploy.md has no '### {name}' section"
