"""Run the real daemon as a subprocess in tests, and talk to it."""

from __future__ import annotations

import itertools
import json
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXE = str(Path(sys.executable).parent / "hashspark")
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scenario(tmp: Path, start: str, end: str, name: str = "hedged") -> Path:
    """The shipped hedged scenario over a shorter window, with absolute recording paths."""
    text = (ROOT / f"deploy/scenarios/ercot-hb-south-{name}.toml").read_text()
    text = text.replace(
        '"../../simulators/recordings/', f'"{ROOT.as_posix()}/simulators/recordings/'
    )
    text = text.replace('start = "2024-06-01T05:00:00Z"', f'start = "{start}"')
    text = text.replace('end = "2025-03-28T05:00:00Z"', f'end = "{end}"')
    text = _without_windows(text)  # a narrowed scenario no longer holds its named windows
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def _without_windows(text: str) -> str:
    """The scenario text without its ``[[scenario.windows]]`` tables."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            skipping = line.strip() == "[[scenario.windows]]"
        if not skipping:
            out.append(line)
    return "".join(out)


def start_daemon(config: Path, state: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """``hashspark run --simulated`` in the background."""
    return subprocess.Popen(
        [
            EXE,
            "run",
            str(config),
            "--simulated",
            "--state-dir",
            str(state),
            "--metrics-port",
            str(port),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def get(url: str, timeout: float = 2.0) -> bytes:
    """GET a local URL."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def wait_for(condition: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error})")


def healthz(port: int) -> dict[str, Any]:
    """The daemon's health document."""
    return dict(json.loads(get(f"http://127.0.0.1:{port}/healthz")))


Row = tuple[float, float, str | None, str]


def ledger_intervals(state: Path) -> list[Row]:
    """(start, end, failsafe, run) of every settled interval in the state directory's
    ledger, read-only, after an integrity check."""
    conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT start_s, end_s, failsafe, run_id FROM intervals ORDER BY start_s"
        ).fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    return [(float(a), float(b), f, r) for a, b, f, r in rows]


def assert_no_overlap(rows: list[Row]) -> None:
    """Intervals in order, none repeated or overlapping."""
    for a, b in itertools.pairwise(rows):
        assert a[0] < a[1] <= b[0], f"intervals overlap or repeat: {a} then {b}"


def settle_prices(
    publish: Callable[[float], None],
    state: Path,
    prices: list[float],
    *,
    first_opens: bool,
    timeout: float = 10.0,
) -> None:
    """Publish prices one at a time, each only once the loop has closed an interval on the
    one before: a burst inside one cycle would be seen as its last price only. With
    ``first_opens`` the first price opens an interval (nothing to wait for)."""
    for i, price in enumerate(prices):
        have = len(ledger_intervals(state)) if (state / "ledger.sqlite3").exists() else 0
        publish(price)
        if i or not first_opens:
            wait_for(lambda have=have: len(ledger_intervals(state)) > have, timeout, "a row")
