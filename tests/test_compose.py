"""The compose stack's files are consistent (no container engine runs here to start it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from controller.config import load_config

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy/compose"


def test_every_mounted_file_exists_and_services_are_wired() -> None:
    doc = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    services = doc["services"]
    assert set(services) == {"mosquitto", "hashspark", "prometheus", "grafana"}
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), f"{name}: {source}"
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    build = services["hashspark"]["build"]
    dockerfile = (COMPOSE / build["context"] / build["dockerfile"]).resolve()
    for src in re.findall(r"^COPY (.+) \S+$", dockerfile.read_text(), re.M):
        for item in src.split():
            assert (ROOT / item).exists(), item


def test_the_stacks_daemon_config_loads_and_points_at_the_broker() -> None:
    cfg = load_config(COMPOSE / "hashspark.toml").config
    broker = cfg.sites[0].broker
    assert broker is not None
    assert broker.host == "mosquitto"
    assert cfg.daemon.metrics_port == 9108


def test_the_stacks_prometheus_config_checks(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "make test installs Debian's prometheus package"
    shutil.copy(COMPOSE / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(ROOT / "deploy/prometheus/alerts.yml", tmp_path / "alerts.yml")
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
