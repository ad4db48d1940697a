"""A full disk mid-run does not take the site out of control (issue 16, acceptance).

``hashspark run`` as a process on the system clock, live MQTT feeds over a real Mosquitto,
its pyasic driver against a ``hashspark simulate`` fleet, and its state directory on a tmpfs
of its own, filled to the last block while it runs: SQLite, the audits and the restart
memories meet the kernel's ENOSPC. Mounting needs root (and LuxOS simulated miners live on
127.83.16.0/24); the test is skipped otherwise, with the reason.

The ledger of a run on the wall clock cannot equal another run's row for row (intervals end
when prices arrive); what an uninterrupted run would hold is every published price as one
settled interval, in order, contiguous from the first to the last. The simulated-clock
variant, whose ledger equals an uninterrupted run's byte for byte, is
``tests/test_chaos_state.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.daemon_kit import EXE, free_port, wait_for
from tests.feeds.conftest import Broker
from tests.feeds.sim_fleet_kit import Group, daemon, daemon_config, sim_fleet, total
from tests.test_chaos_state import tmpfs
from tests.test_storage_failures import fill

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0, reason="mounting a tmpfs for the state directory needs root"
    ),
    pytest.mark.slow,  # 22 to 28 s: a fleet, a broker and a daemon, three phases
]

SITE = "full"
HASHPRICE = 50.0  # USD/PH/day: an S19j Pro breaks even near 69 USD/MWh
SPIKE = 500.0
# 16 miners: the spike's 16 audit lines (over 5 kB) need a page the full tmpfs does not have,
# whatever room the audit file's last page still has (tmpfs fills that before ENOSPC).
GROUPS = (Group("luxos", "S19jPro", tuple(f"127.83.16.{i}" for i in range(1, 17))),)
DRIVER: dict[str, float | int] = {
    "concurrency": 8,
    "call_timeout_s": 2.0,
    "discovery_timeout_s": 4.0,
    "confirm_timeout_s": 3.0,
    "confirm_poll_s": 0.2,
    "retry_attempts": 2,
    "retry_base_s": 0.05,
    "retry_cap_s": 0.2,
}


def _ts(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat(timespec="milliseconds")


def _command(config: Path, doc: dict[str, object]) -> dict[str, object]:
    """Send one command with ``hashspark command``; its ack."""
    done = subprocess.run(
        [EXE, "command", str(config), json.dumps(doc)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode in (0, 3), done.stdout + done.stderr
    ack: dict[str, object] = json.loads(done.stdout)
    return ack


def _rows(state: Path) -> list[tuple[float, float, float, str, str | None]]:
    conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [
            (float(a), float(b), float(p), k, f)
            for a, b, p, k, f in conn.execute(
                "SELECT start_s, end_s, price_usd_per_mwh, kind, failsafe FROM intervals "
                "ORDER BY start_s"
            )
        ]
    finally:
        conn.close()


def test_a_full_disk_mid_run_keeps_the_site_controlled_and_books_every_interval_later(
    tmp_path: Path, broker: Broker
) -> None:
    log, port = tmp_path / "daemon.log", free_port()
    config = daemon_config(
        tmp_path, broker.port, GROUPS, site=SITE, cycle_s=0.5, failsafe="curtail", driver=DRIVER
    )
    # The price of each interval an uninterrupted run books: a new one with each price, and
    # with each operator command that starts or ends (the interval's inputs change).
    expected: list[float] = []

    def publish(price: float) -> None:
        """A price, then wait until a cycle decided on it."""
        broker.publish(f"hashspark/{SITE}/price", json.dumps({"usd_per_mwh": price, "ts": _ts()}))
        expected.append(price)
        wait_for(
            lambda: metric("hashspark_spot_price_usd_per_mwh", site=SITE) == price,
            timeout=20,
            what=f"a cycle on {price} USD/MWh",
        )

    def command(doc: dict[str, object]) -> dict[str, object]:
        """A command; if it changes the book, wait for a cycle after it (a new interval)."""
        ack = _command(config, doc)
        if doc["command"] != "list":
            assert ack["status"] == "accepted", ack
            expected.append(expected[-1])
            sent = time.time()
            wait_for(
                lambda: metric("hashspark_last_cycle_timestamp_seconds", site=SITE) > sent,
                timeout=10,
                what="a cycle after the command",
            )
        return ack

    def metric(name: str, **labels: str) -> float:
        return total(port, name, **labels)

    with tmpfs(tmp_path / "state", "16m") as state:
        with sim_fleet(tmp_path, GROUPS) as sim, daemon(config, state, port, log) as proc:
            broker.publish(  # once, retained: every interval holds the same hashprice reading
                f"hashspark/{SITE}/hashprice",
                json.dumps({"usd_per_ph_day": HASHPRICE, "ts": _ts()}),
                retain=True,
            )
            publish(20.0)
            wait_for(
                lambda: (
                    all(m["mode"] != "sleep" for m in sim.miners().values())
                    and metric("hashspark_miners", site=SITE, state="running") == 16
                ),
                timeout=30,
                what="the fleet mining at 20 USD/MWh",
            )
            publish(21.0)
            wait_for(lambda: len(_rows(state)) >= 1, timeout=10, what="the first row written")

            filler = fill(state)  # the disk is full from here on
            publish(SPIKE)
            wait_for(
                lambda: all(m["mode"] == "sleep" for m in sim.miners().values()),
                timeout=20,
                what="the meter to show the fleet curtailed on a full disk",
            )
            wait_for(
                lambda: (
                    metric("hashspark_storage_ok", what="ledger") == 0
                    and metric("hashspark_storage_ok", what="command_audit") == 0
                    and metric("hashspark_ledger_unwritten_intervals", site=SITE) >= 1
                ),
                timeout=20,
                what="the storage alert metrics raised",
            )
            assert metric("hashspark_storage_failures_total", what="command_audit") >= 1
            # An operator command on the full disk: applied and acknowledged.
            command({"command": "force_curtail", "id": "op-full", "until": _ts(600)})
            listed = command({"command": "list", "id": "list-full"})
            active = listed["active"]
            assert isinstance(active, list)
            assert [c["id"] for c in active] == ["op-full"]  # applied
            assert metric("hashspark_storage_ok", what="operator_audit") == 0
            publish(30.0)  # one more interval settles while full
            assert metric("hashspark_ledger_unwritten_intervals", site=SITE) >= 2
            written_while_full = len(_rows(state))
            assert proc.poll() is None, "a full disk must not stop the daemon"

            filler.unlink()  # space again
            wait_for(
                lambda: metric("hashspark_ledger_unwritten_intervals", site=SITE) == 0,
                timeout=20,
                what="the held intervals written",
            )
            assert len(_rows(state)) > written_while_full
            command({"command": "clear", "id": "clr", "target": "op-full"})
            publish(22.0)  # the fleet resumes: its commands are audited again
            wait_for(
                lambda: all(m["mode"] != "sleep" for m in sim.miners().values()),
                timeout=30,
                what="the fleet mining again",
            )
            wait_for(
                lambda: all(
                    metric("hashspark_storage_ok", what=w) == 1
                    for w in ("ledger", "command_audit", "operator_audit")
                ),
                timeout=20,
                what="the storage metrics back to ok",
            )
            assert metric("hashspark_ledger_intervals_dropped_total", site=SITE) == 0
        # After SIGTERM (exit 0): every published price is one settled interval, in order,
        # contiguous from the first to the last, as an uninterrupted run books them.
        rows = _rows(state)
        assert [p for _, _, p, _, _ in rows] == expected
        assert all(kind == "settled" and failsafe is None for _, _, _, kind, failsafe in rows)
        for a, b in itertools.pairwise(rows):
            assert a[1] == b[0], (a, b)
