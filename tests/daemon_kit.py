"""Run the real daemon as a subprocess in tests, and talk to it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
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
