"""Stopping the child processes that tests and benchmarks start (simulated fleets, brokers,
daemons, workers): SIGTERM first, SIGKILL after a grace period, and always reaped."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterable
from typing import Any


def stop(procs: subprocess.Popen[Any] | Iterable[subprocess.Popen[Any]], grace_s: float) -> None:
    """SIGTERM every process still running, wait up to ``grace_s`` each, then SIGKILL."""
    group = [procs] if isinstance(procs, subprocess.Popen) else list(procs)
    running = [p for p in group if p.poll() is None]
    for p in running:
        p.send_signal(signal.SIGTERM)
    for p in running:
        try:
            p.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
