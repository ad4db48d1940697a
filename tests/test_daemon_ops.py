"""Running unattended: systemd notify and watchdog, SIGTERM shutdown state, SIGHUP reload."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.miners.simulated import InProcessFleet
from controller.app.daemon import Daemon, DaemonOptions
from controller.config import SiteConfig, load_config
from controller.decision.reconcile import CommandBatch, DispatchReport
from controller.domain import FleetSpec, ObservedFleet
from controller.runtime.notify import Notifier
from controller.runtime.ports import Clock, MinerDriver
from tests.daemon_kit import EXE, free_port, healthz, scenario, wait_for


class HangingDriver:
    """The in-process fleet, except that ``observe`` blocks while ``hang`` is set."""

    def __init__(self, inner: InProcessFleet) -> None:
        self.inner = inner
        self.hang = asyncio.Event()
        self.release = asyncio.Event()

    async def observe(self) -> ObservedFleet:
        if self.hang.is_set():
            await self.release.wait()
        return await self.inner.observe()

    async def apply(self, batch: CommandBatch) -> DispatchReport:
        return await self.inner.apply(batch)


def _datagrams(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def test_ready_then_watchdog_only_while_loops_progress(tmp_path: Path) -> None:
    config = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-22T00:00:00Z")
    config.write_text(
        config.read_text().replace("cycle_s = 900", "cycle_s = 900\ncycle_timeout_s = 0.3")
    )
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.setblocking(False)
    received: list[str] = []

    async def drain() -> None:  # the service manager's side: read as messages come
        while True:
            received.extend(_datagrams(sock))
            await asyncio.sleep(0.01)

    def take() -> list[str]:
        # The daemon sends from this event loop: whatever it sent so far is in the socket.
        received.extend(_datagrams(sock))
        out = received[:]
        received.clear()
        return out

    async def until(condition: Callable[[], bool], what: str) -> None:
        # Waits for what the assertions need, whatever the machine's speed.
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)

    drivers: list[HangingDriver] = []

    def factory(site: SiteConfig, fleet: FleetSpec, clock: Clock) -> MinerDriver:
        drivers.append(HangingDriver(InProcessFleet(fleet, clock)))
        return drivers[-1]

    notifier = Notifier({"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "200000"})
    daemon = Daemon(
        load_config(config),
        DaemonOptions(simulated=True, speed=86_400 / 4, state_dir=tmp_path / "s", metrics_port=0),
        driver_factory=factory,
        notifier=notifier,
    )
    reader = asyncio.create_task(drain())
    task = asyncio.create_task(daemon.run())
    try:
        first: list[str] = []

        def pinged_with_status() -> bool:
            first.extend(take())
            return sum("WATCHDOG=1" in d for d in first) >= 3 and any(
                d.startswith("STATUS=hb-south: economics") for d in first
            )

        await until(pinged_with_status, "three watchdog pings and an economics status")
        assert first[0].startswith("READY=1\nSTATUS=")

        drivers[0].hang.set()  # the next cycle blocks inside the driver
        await until(lambda: daemon.stuck_sites() == ["hb-south"], "the site stuck")
        take()  # what the watchdog sent before it could see the site stuck
        stuck: list[str] = []

        def two_watchdog_rounds() -> bool:  # each round ends with a STATUS
            stuck.extend(take())
            return sum(d.startswith("STATUS=") for d in stuck) >= 2

        await until(two_watchdog_rounds, "two watchdog rounds while stuck")
        assert not any("WATCHDOG=1" in d for d in stuck), stuck  # still telling, not vouching
        assert daemon.stuck_sites() == ["hb-south"]

        drivers[0].hang.clear()
        drivers[0].release.set()  # it recovers: the watchdog resumes
        await until(lambda: any("WATCHDOG=1" in d for d in take()), "the watchdog to resume")
    finally:
        drivers[0].release.set()
        daemon.request_stop()
        await asyncio.wait_for(task, timeout=10)
        reader.cancel()
        received.extend(_datagrams(sock))
        sock.close()
    assert any("STOPPING=1" in d for d in received)


def _start(config: Path, state: Path, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
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
        stderr=log.open("wb"),
    )


def _events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("action", ["curtail", "run", "keep"])
def test_sigterm_during_a_curtailment_leaves_miners_as_configured(
    tmp_path: Path, action: str
) -> None:
    # 2024-08-21 from 00:15Z: the scarcity evening, spot in the thousands, the fleet curtailed.
    config = scenario(tmp_path, "2024-08-21T00:15:00Z", "2024-08-21T12:00:00Z", name="spot")
    config.write_text(
        config.read_text().replace("cycle_s = 900", f'cycle_s = 900\non_shutdown = "{action}"')
    )
    port, log = free_port(), tmp_path / "daemon.log"
    proc = _start(config, tmp_path / "s", port, log, "--speed", "3600")
    wait_for(lambda: healthz(port)["sites"]["hb-south"]["cycles"] >= 2, what="two cycles")
    assert healthz(port)["sites"]["hb-south"]["at"] < "2024-08-21T01:15:00Z"  # still in the spike
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    left = [e for e in _events(log) if e.get("event") == "miners_left"]
    assert len(left) == 1
    expected = {"curtail": (0, 1000), "run": (1000, 0), "keep": (0, 1000)}[action]
    assert (left[0]["running"], left[0]["curtailed"]) == expected
    # The ledger is complete: contiguous from the start to the moment of the stop.
    conn = sqlite3.connect(tmp_path / "s" / "ledger.sqlite3")
    rows = conn.execute("SELECT start_s, end_s FROM intervals ORDER BY start_s").fetchall()
    assert rows[0][0] == 1724199300.0  # 2024-08-21T00:15:00Z
    assert all(a[1] == b[0] for a, b in itertools.pairwise(rows))


def test_sighup_with_a_broken_config_keeps_the_old_one(tmp_path: Path) -> None:
    config = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-25T00:00:00Z")
    good = config.read_text()
    port, log = free_port(), tmp_path / "daemon.log"
    proc = _start(config, tmp_path / "s", port, log, "--speed", "43200")
    try:
        wait_for(lambda: healthz(port)["sites"]["hb-south"]["cycles"] >= 5, what="five cycles")
        config.write_text(good.replace("pool_fee = 0.02", "pool_fee = 0.02\nbogus_key = 1"))
        proc.send_signal(signal.SIGHUP)
        refused = wait_for(
            lambda: [e for e in _events(log) if e.get("event") == "reload_refused"],
            what="the refusal",
        )
        assert "bogus_key: unknown key" in json.dumps(refused[0]["errors"])
        before = healthz(port)["sites"]["hb-south"]["cycles"]
        wait_for(
            lambda: healthz(port)["sites"]["hb-south"]["cycles"] > before + 3,
            what="cycles going on",
        )

        config.write_text(good.replace("hysteresis_usd_per_mwh = 0", "hysteresis_usd_per_mwh = 2"))
        proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: [e for e in _events(log) if e.get("event") == "reloaded"], what="the reload"
        )
        # Intervals after the reload carry the new config's version: wait for the first.
        wait_for(lambda: len(_versions(tmp_path / "s")) == 2, what="an interval under the reload")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert len(_versions(tmp_path / "s")) == 2  # and no third one by the shutdown


def test_sighup_with_a_config_the_toml_parser_cannot_read_is_refused(tmp_path: Path) -> None:
    # Issue 16, found by tests/feeds/test_hostile_daemon_slow.py: arrays nested 5,000 deep
    # raise RecursionError in the TOML parser, not a ConfigError. The reload escaped as
    # "Exception in callback Daemon.reload()" and left systemd told "reloading" for good.
    config = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-25T00:00:00Z")
    good = config.read_text()
    port, log = free_port(), tmp_path / "daemon.log"
    proc = _start(config, tmp_path / "s", port, log, "--speed", "43200")
    try:
        wait_for(lambda: healthz(port)["sites"]["hb-south"]["cycles"] >= 5, what="five cycles")
        config.write_text(good + "\ndeep = " + "[" * 5_000 + "1" + "]" * 5_000 + "\n")
        proc.send_signal(signal.SIGHUP)
        refused = wait_for(
            lambda: [e for e in _events(log) if e.get("event") == "reload_refused"],
            what="the refusal",
        )
        # The bounded reader refuses it before the parser recurses (config_file.py); the
        # reload's own guard against the parser's RecursionError stays behind it.
        assert refused[0]["reason"] == "config invalid"
        assert refused[0]["errors"] == [f"{config}: tables or arrays nested deeper than 32"]
        config.write_text(good.replace("hysteresis_usd_per_mwh = 0", "hysteresis_usd_per_mwh = 2"))
        proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: [e for e in _events(log) if e.get("event") == "reloaded"], what="the reload"
        )
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert "Traceback" not in log.read_text()


def _versions(state: Path) -> list[str]:
    """The config versions of the ledger's intervals, in the order they first appear."""
    conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT config_version FROM intervals GROUP BY config_version ORDER BY MIN(start_s)"
        ).fetchall()
    finally:
        conn.close()
    return [str(r[0]) for r in rows]


@pytest.mark.parametrize("dry_run", [False, True], ids=["live", "dry-run"])
def test_every_command_is_audited_and_a_dry_run_commands_nothing(
    tmp_path: Path, dry_run: bool
) -> None:
    config = scenario(tmp_path, "2024-08-21T00:00:00Z", "2024-08-21T02:00:00Z", name="spot")
    extra = ["--dry-run"] if dry_run else []
    subprocess.run(
        [
            EXE,
            "run",
            str(config),
            "--simulated",
            "--state-dir",
            str(tmp_path / "s"),
            "--metrics-port",
            "0",
            *extra,
        ],
        check=True,
        capture_output=True,
    )
    lines = (tmp_path / "s" / "audit" / "hb-south-commands.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries, "the spike must have asked for curtailment"
    curtail = [e for e in entries if e["command"] == "curtail"]
    assert len(curtail) >= 1000  # every miner, each its own line
    assert {e["rule"] for e in entries} == {"economics"}
    assert all(e["opportunity_cost_usd_per_mwh"] is not None for e in entries)
    assert {e["outcome"] for e in entries} == ({"dry_run"} if dry_run else {"applied"})
    conn = sqlite3.connect(tmp_path / "s" / "ledger.sqlite3")
    curtailed_mwh = conn.execute("SELECT SUM(curtailed_mwh) FROM intervals").fetchone()[0]
    if dry_run:
        assert curtailed_mwh == pytest.approx(0.0, abs=1e-9)  # the fleet was never touched
    else:
        assert curtailed_mwh > 1.0


def test_sigusr1_logs_every_task_stack_and_the_daemon_goes_on(tmp_path: Path) -> None:
    config = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-25T00:00:00Z")
    port, log = free_port(), tmp_path / "daemon.log"
    proc = _start(config, tmp_path / "s", port, log, "--speed", "43200")
    try:
        wait_for(lambda: healthz(port)["sites"]["hb-south"]["cycles"] >= 2, what="two cycles")
        proc.send_signal(signal.SIGUSR1)
        stacks = wait_for(
            lambda: [e for e in _events(log) if e.get("event") == "task_stack"],
            what="the task stacks",
        )
        loop = [e for e in stacks if e["task"] == "hb-south"]
        assert loop, [e["task"] for e in stacks]  # the site loop's task, by its site's name
        assert any("site_loop.py" in frame for frame in loop[0]["frames"])
        before = healthz(port)["sites"]["hb-south"]["cycles"]
        wait_for(lambda: healthz(port)["sites"]["hb-south"]["cycles"] > before, what="cycles")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
