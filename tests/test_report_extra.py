"""``--report`` without the ``report`` extra: one clear line and exit 2, not a traceback.

matplotlib is installed here, so the console script runs with a stand-in ``matplotlib``
package first on PYTHONPATH whose import fails the way a missing one does. No project
module is patched: the real CLI decides, in its own process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HASHSPARK = Path(sys.executable).parent / "hashspark"
HEDGED = "deploy/scenarios/ercot-hb-south-hedged.toml"


@pytest.fixture
def no_matplotlib(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import matplotlib`` raises ModuleNotFoundError."""
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n",
        encoding="utf-8",
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(shadow.parent), env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.parametrize("command", ["replay", "compare"])
def test_report_without_matplotlib_is_one_line_and_exit_2(
    command: str, no_matplotlib: dict[str, str], repo_root: Path, tmp_path: Path
) -> None:
    assert HASHSPARK.is_file(), f"console script not installed at {HASHSPARK}"
    out = tmp_path / "report"
    window = ["--from", "2024-08-20", "--to", "2024-08-21"]
    proc = subprocess.run(
        [str(HASHSPARK), command, HEDGED, *window, "--report", str(out)],
        cwd=repo_root,
        env=no_matplotlib,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("hashspark: error: "), line
    assert "needs matplotlib" in line, line
    assert "pip install 'hashspark[report]'" in line, line
    assert proc.stdout == ""
    assert not out.exists(), "a run that cannot draw the report must not start one"
