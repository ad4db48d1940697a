"""Chaos at the state directory: read-only from the start, and full in the middle of a run.

The state directory is a real file system of its own: a tmpfs mounted for the test (small,
or read-only), so SQLite meets the kernel's own EROFS and ENOSPC. Mounting needs root
(``make test`` runs as root in CI); elsewhere these tests are skipped with that reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_kit import EXE, free_port, get, healthz, scenario, start_daemon, wait_for
from tests.test_daemon import _committed, _rows

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a tmpfs for the state directory needs root"
)


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A fresh tmpfs at ``where`` (created), unmounted (lazily if busy) afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def _metric(port: int, prefix: str) -> float:
    """Sum of the samples whose line starts with ``prefix`` (0 if none)."""
    text = get(f"http://127.0.0.1:{port}/metrics").decode()
    lines = text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


def test_a_read_only_state_directory_stops_the_daemon_at_start_with_one_line(
    tmp_path: Path,
) -> None:
    config = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-20T00:00:00Z")
    with tmpfs(tmp_path / "state", "1m", read_only=True) as state:
        args = ["run", str(config), "--simulated", "--state-dir", str(state)]
        done = subprocess.run(
            [EXE, *args, "--metrics-port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0] == (
        f"hashspark: error: {state}: state directory not writable: Read-only file system"
    )
    assert "Traceback" not in done.stdout + done.stderr


# 12 s: in the slow suite; a full disk under a running daemon stays in the default suite
# (tests/feeds/test_storage_daemon.py, tests/test_storage_failures.py).
@pytest.mark.slow
def test_a_full_state_directory_mid_run_counts_errors_keeps_records_and_writes_them_later(
    tmp_path: Path,
) -> None:
    config = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-22T00:00:00Z")  # 288 intervals
    clean = tmp_path / "clean"
    subprocess.run(
        [EXE, "run", str(config), "--simulated", "--state-dir", str(clean), "--metrics-port", "0"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    errors = 'hashspark_ledger_write_errors_total{site="hb-south"}'
    with tmpfs(tmp_path / "state", "16m") as state:
        # 12 simulated hours a second: the 3 days take about 6 s, long enough to fill the disk.
        proc = start_daemon(config, state, port, "--speed", "43200", "--stay")
        filler = state / "filler"
        try:
            wait_for(lambda: _committed(state) >= 30, what="30 committed intervals")
            with filler.open("wb", buffering=0) as f:  # take every free block there is
                for size in (65536, 512):  # big chunks, then what a partial chunk left
                    with contextlib.suppress(OSError):
                        while True:
                            f.write(b"\0" * size)
            with pytest.raises(OSError) as full:
                (state / "probe").write_bytes(b"x" * 8192)
            assert full.value.errno == errno.ENOSPC

            wait_for(lambda: _metric(port, errors) >= 3, timeout=20, what="write errors counted")
            assert _metric(port, 'hashspark_storage_ok{what="ledger"}') == 0  # the alert's input
            assert _metric(port, 'hashspark_storage_failures_total{what="ledger"}') >= 3
            assert _metric(port, 'hashspark_ledger_unwritten_intervals{site="hb-south"}') >= 1
            stuck_at = _committed(state)
            assert stuck_at < 288, "the disk must fill mid-run"
            assert proc.poll() is None, "a full disk must not stop the daemon"
            assert healthz(port)["stuck"] == []  # the loop keeps cycling; only writes wait
            wait_for(lambda: _metric(port, errors) >= 6, timeout=20, what="more write errors")
            assert _committed(state) == stuck_at  # nothing half-written while full

            filler.unlink()  # space again: the kept records go in, in order
            wait_for(lambda: healthz(port)["finished"], timeout=60, what="the run to finish")
            wait_for(lambda: _committed(state) == 288, timeout=10, what="every interval written")
            final_errors = _metric(port, errors)
            assert _metric(port, 'hashspark_storage_ok{what="ledger"}') == 1
            assert _metric(port, 'hashspark_ledger_unwritten_intervals{site="hb-south"}') == 0
            assert _metric(port, 'hashspark_ledger_intervals_dropped_total{site="hb-south"}') == 0
        finally:
            proc.send_signal(signal.SIGTERM)
            exit_code = proc.wait(timeout=15)
        assert exit_code == 0, proc.stderr.read().decode() if proc.stderr else ""
        assert final_errors >= 6
        assert _rows(state) == _rows(clean)  # every interval, once, exactly as a clean run
        conn = sqlite3.connect(state / "ledger.sqlite3")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
