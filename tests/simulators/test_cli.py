"""``hashspark simulate`` as a user runs it: a subprocess, a ready line, signals, errors."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.simulators.conftest import next_block

HASHSPARK = [
    sys.executable,
    "-c",
    ("import sys; from controller.app.cli import main; sys.exit(main())"),
]
PR_CAPBSET_DROP = 24
CAP_NET_BIND_SERVICE = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_simulate_prints_one_ready_line_serves_the_meter_and_exits_0_on_sigterm() -> None:
    first = next_block()
    port = _free_port()
    args = ["simulate", "--family", "braiins", "--count", "3", "--ip-start", first]
    proc = subprocess.Popen(
        [*HASHSPARK, *args, "--meter-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        last = first.rsplit(".", 1)[0] + ".3"
        assert line == f"ready 3 miners on {first}..{last}\n"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/meter", timeout=5) as resp:
            meter = json.load(resp)
        assert len(meter["miners"]) == 3
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert out == ""  # exactly one line in all


def _drop_port_80_permission() -> None:
    """In the child: lose CAP_NET_BIND_SERVICE across exec, as a non-root user would."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAPBSET_DROP, CAP_NET_BIND_SERVICE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_without_permission_for_port_80_it_says_so_and_offers_other_families() -> None:
    if Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text().strip() == "0":
        pytest.skip("this kernel lets anyone bind port 80")
    preexec = _drop_port_80_permission if os.geteuid() == 0 else None
    args = ["simulate", "--family", "antminer", "--ip-start", next_block()]
    result = subprocess.run(
        [*HASHSPARK, *args, "--meter-port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=preexec,
        check=False,
    )
    assert result.returncode == 2
    assert "port 80 needs root" in result.stderr
    assert "without root, simulate: luxos, braiins" in result.stderr
    assert "ready" not in result.stdout


def test_braiins_without_port_80_still_starts_and_warns_that_asic_rs_cannot_find_it() -> None:
    if Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text().strip() == "0":
        pytest.skip("this kernel lets anyone bind port 80")
    preexec = _drop_port_80_permission if os.geteuid() == 0 else None
    first = next_block()
    args = ["simulate", "--family", "braiins", "--count", "2", "--ip-start", first]
    proc = subprocess.Popen(
        [*HASHSPARK, *args, "--meter-port", str(_free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,  # noqa: PLW1509  (as run() above: a prctl before exec)
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ready 2 miners on ")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    [warning] = [json.loads(line) for line in err.splitlines() if "braiins_web_not_served" in line]
    assert "asic-rs" in warning["effect"]


def test_a_fleet_file_with_an_unknown_key_fails_with_its_path(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        '[[group]]\nfamily = "luxos"\ncount = 2\nip_start = "127.44.250.1"\ncolour = "red"\n'
    )
    result = subprocess.run(
        [*HASHSPARK, "simulate", "--fleet", str(fleet)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "group.0.colour: Extra inputs are not permitted" in result.stderr


def test_faults_from_the_fleet_file_are_in_place_when_ready(tmp_path: Path) -> None:
    first = next_block()
    second = first.rsplit(".", 1)[0] + ".2"
    port = _free_port()
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        f'meter_port = {port}\n[[group]]\nfamily = "luxos"\ncount = 2\nip_start = "{first}"\n'
        f'[[fault]]\nkind = "unreachable"\nminers = ["{second}"]\n'
    )
    proc = subprocess.Popen(
        [*HASHSPARK, "simulate", "--fleet", str(fleet)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ready 2 miners")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/faults", timeout=5) as resp:
            assert json.load(resp) == {second: [{"kind": "unreachable"}]}
        with pytest.raises(ConnectionRefusedError), socket.create_connection((second, 4028), 5):
            pass
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
