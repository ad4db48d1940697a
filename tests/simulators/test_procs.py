"""Stopping child processes: SIGTERM, then SIGKILL after the grace period, always reaped."""

from __future__ import annotations

import signal
import subprocess

from simulators.procs import stop


def test_a_process_that_honours_sigterm_stops_on_it() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    stop(proc, grace_s=10)
    assert proc.returncode == -signal.SIGTERM


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    # An ignored signal stays ignored across exec: sleep itself ignores SIGTERM.
    proc = subprocess.Popen(
        ["sh", "-c", 'trap "" TERM; echo ready; exec sleep 60'], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"  # the trap is set
    stop([proc], grace_s=0.5)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def test_processes_already_gone_are_left_alone() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    stop(proc, grace_s=1)
    assert proc.returncode == 0
