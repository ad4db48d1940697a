"""What the gridstatus end-to-end tests share: a Mosquitto of their own, a daemon whose
wall clock is set to the recording's day (libfaketime), and reading its metrics and status.

Only the time the OS tells the daemon is not now; its code is untouched. The broker and the
tests run on the real clock.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.daemon_kit import get
from tests.feeds.conftest import Broker
from tests.mqtt_daemon_kit import run_daemon


def metric(port: int, name: str) -> float | None:
    """The first sample of ``name`` (a name with its labels) on the daemon's /metrics."""
    for line in get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return None


def load_mw(port: int, site: str) -> float | None:
    """The site's load as the daemon reports it."""
    return metric(port, f'hashspark_load_mw{{site="{site}"}}')


def status(broker: Broker, site: str) -> dict[str, Any]:
    """The site's retained status message."""
    sub = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
    out = subprocess.run(
        [sub, "-h", "127.0.0.1", "-p", str(broker.port), "-t", f"hashspark/{site}/status",
         "-C", "1", "-W", "5"],
        capture_output=True, check=True, timeout=10,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def libfaketime() -> str:
    """The libfaketime shared object (make system-packages installs it)."""
    found = sorted(glob.glob("/usr/lib*/*/faketime/libfaketime.so.1"))
    found += sorted(glob.glob("/usr/lib*/faketime/libfaketime.so.1"))
    assert found, "libfaketime is not installed (make system-packages)"
    return found[0]


def start_daemon(config: Path, tmp: Path, port: int, fake_start: str) -> subprocess.Popen[bytes]:
    """``hashspark run`` with its wall clock started at ``fake_start`` (UTC, "Y-m-d H:M:S")."""
    # LD_PRELOAD rather than the faketime wrapper: the process signalled is the daemon.
    env = {**os.environ, "LD_PRELOAD": libfaketime(), "FAKETIME": f"@{fake_start}",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1", "TZ": "UTC"}  # fmt: skip
    return run_daemon(config, tmp, port, env)
