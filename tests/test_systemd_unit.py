"""The systemd unit: it verifies clean, its sandbox rates 2.0 or lower, and the daemon
lives within it: no W+X memory (MemoryDenyWriteExecute) and no system call outside the
unit's SystemCallFilter."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_kit import EXE, ROOT, scenario

UNIT = ROOT / "systemd" / "hashspark.service"
INSTALLED_EXE = "/usr/local/bin/hashspark"
MAX_EXPOSURE = 2.0


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: make test installs Debian's systemd package")
    return path


def _directives(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, by key, in order (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


WORKER = ROOT / "systemd" / "hashspark-worker@.service"
SHIP = ROOT / "systemd" / "hashspark-ship.service"
# The worker template is checked as an instance: shard 1.
UNITS = pytest.mark.parametrize(
    ("unit", "name"),
    [
        (UNIT, "hashspark.service"),
        (WORKER, "hashspark-worker@1.service"),
        (SHIP, "hashspark-ship.service"),
    ],
    ids=["daemon", "worker", "shipper"],
)


def _local_copy(unit: Path, name: str, tmp_path: Path) -> Path:
    """The unit as ``name``, with ExecStart at this checkout's entry point.

    verify checks that ExecStart's binary exists. The unit names where the install puts it
    (/usr/local/bin/hashspark), which a test machine does not have; nothing else changes.
    """
    text = unit.read_text()
    assert text.count(f"ExecStart={INSTALLED_EXE} ") == 1
    copy = tmp_path / name
    copy.write_text(text.replace(f"ExecStart={INSTALLED_EXE} ", f"ExecStart={EXE} "))
    return copy


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_systemd_analyze(), *args], check=False, capture_output=True, text=True, timeout=60
    )


@UNITS
def test_unit_verifies_without_a_word(unit: Path, name: str, tmp_path: Path) -> None:
    result = _analyze("verify", str(_local_copy(unit, name, tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == ""


def test_verify_would_catch_a_misspelt_directive(tmp_path: Path) -> None:
    """The check above can fail: the same copy with one typo is reported."""
    copy = _local_copy(UNIT, "hashspark.service", tmp_path)
    copy.write_text(copy.read_text().replace("ProtectClock=yes", "ProtectClocks=yes"))
    result = _analyze("verify", str(copy))
    assert "ProtectClocks" in result.stdout + result.stderr


@UNITS
def test_security_exposure_is_two_or_lower(unit: Path, name: str, tmp_path: Path) -> None:
    result = _analyze(
        "security", "--offline=true", "--no-pager", str(_local_copy(unit, name, tmp_path))
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(rf"Overall exposure level for {re.escape(name)}: (\d+\.\d+)", result.stdout)
    assert found is not None, result.stdout
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_keeps_what_the_daemon_and_the_operator_rely_on() -> None:
    d = _directives(UNIT.read_text())
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] == ["60s"]
    assert d["Restart"] == ["on-failure"]
    assert d["ExecStart"][0].startswith(f"{INSTALLED_EXE} run /etc/hashspark/hashspark.toml")
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["EnvironmentFile"] == ["-/etc/hashspark/env"]
    assert d["StateDirectory"] == ["hashspark"]
    assert d["ConfigurationDirectory"] == ["hashspark"]
    assert d["DynamicUser"] == ["yes"]
    assert d["CapabilityBoundingSet"] == [""]
    assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert d["MemoryDenyWriteExecute"] == ["yes"]
    assert d["UMask"] == ["0077"]
    assert d["IPAddressDeny"] == ["any"]
    assert "localhost" in d["IPAddressAllow"]


# PR_SET_MDWE with PR_MDWE_REFUSE_EXEC_GAIN: the kernel's own form of
# MemoryDenyWriteExecute=yes, inherited across fork and execve. The wrapper proves the
# restriction is on (a W+X mapping is refused) and then becomes the daemon.
_UNDER_MDWE = """
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(f"PR_SET_MDWE failed (errno {ctypes.get_errno()}): kernel 6.3 or newer needed")
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    pass
else:
    sys.exit("a writable and executable mapping was allowed: MDWE is not in force")
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_daemon_runs_a_day_with_memory_deny_write_execute(tmp_path: Path) -> None:
    """CPython, numpy, pydantic-core and aiohttp never ask for W+X memory."""
    config = scenario(tmp_path, "2024-08-20T00:00:00Z", "2024-08-21T00:00:00Z")
    state = tmp_path / "s"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _UNDER_MDWE,
            EXE,
            "run",
            str(config),
            "--simulated",
            "--state-dir",
            str(state),
            "--metrics-port",
            "0",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    conn = sqlite3.connect(state / "ledger.sqlite3")
    assert conn.execute("SELECT COUNT(*) FROM intervals").fetchone()[0] == 96


def _syscall_groups() -> dict[str, list[str]]:
    """systemd's own syscall groups: ``@name`` -> members (names or other groups)."""
    listing = subprocess.run(
        [_systemd_analyze(), "syscall-filter"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in listing.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith("    ") and current is not None:
            member = line.strip()
            if member and not member.startswith("#"):
                current.append(member)
        else:
            current = None
    return groups


def _expand(item: str, groups: dict[str, list[str]]) -> set[str]:
    if not item.startswith("@"):
        return {item}
    return set().union(*(_expand(m, groups) for m in groups[item]))


def _allowed_syscalls() -> set[str]:
    """The unit's SystemCallFilter= lines, combined as systemd combines them: the first
    (an allow list) sets the list, ``~`` lines remove from it, later plain lines add."""
    groups = _syscall_groups()
    lines = _directives(UNIT.read_text())["SystemCallFilter"]
    assert not lines[0].startswith("~"), "the filter must start with an allow list"
    allowed: set[str] = set()
    for line in lines:
        deny = line.startswith("~")
        names = set().union(*(_expand(i, groups) for i in line.removeprefix("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


def test_daemon_makes_no_system_call_the_unit_filters(tmp_path: Path) -> None:
    """A simulated day under strace: every system call made is in the unit's filter."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is missing: make test installs Debian's strace package")
    config = scenario(tmp_path, "2024-08-20T00:00:00Z", "2024-08-21T00:00:00Z")
    trace = tmp_path / "trace"
    subprocess.run(
        [
            strace,
            "-f",
            "-qq",
            "-o",
            str(trace),
            EXE,
            "run",
            str(config),
            "--simulated",
            "--state-dir",
            str(tmp_path / "s"),
            "--metrics-port",
            "0",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    used = set()
    for line in trace.read_text().splitlines():
        call = re.match(r"\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", line)
        if call:
            used.add(call.group(1))
    assert {"openat", "pwrite64", "fdatasync", "bind", "epoll_wait"} <= used  # it did run
    if os.geteuid() == 0:
        # SQLite hands its journal files to the database's owner only when run as root;
        # the unit's dynamic user is not root.
        used -= {"fchown"}
    assert used - _allowed_syscalls() == set()


def test_worker_template_runs_its_shard_in_the_daemons_sandbox() -> None:
    w, d = _directives(WORKER.read_text()), _directives(UNIT.read_text())
    assert w["ExecStart"] == [f"{INSTALLED_EXE} worker /etc/hashspark/hashspark.toml --shard %i"]
    assert w["Type"] == ["exec"]  # a worker does not speak sd_notify
    assert w["Restart"] == ["on-failure"]
    assert "StateDirectory" not in w  # a worker keeps no state
    sandbox = WORKER.read_text().split("# Sandbox.", 1)[1]
    assert sandbox == UNIT.read_text().split("# Sandbox.", 1)[1]
    for key in ("SystemCallFilter", "IPAddressAllow", "RestrictAddressFamilies", "DynamicUser"):
        assert w[key] == d[key], key


def test_worker_subcommand_takes_a_shard_number() -> None:
    # What ExecStart runs exists: `hashspark worker --help` names --shard.
    result = subprocess.run(
        [EXE, "worker", "--help"], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--shard" in result.stdout
