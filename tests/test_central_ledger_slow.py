"""The central ledger's acceptance run: two site daemons, one central PostgreSQL, chaos.

Two daemons on simulated fleets (the hedged scenario as sites ``site-a`` and ``site-b``,
a day each) and their ``hashspark ledger ship`` companions, all real processes, shipping to
one database of a cluster of the test's own. Mid-run PostgreSQL is stopped for a minute and
restarted, a shipper is SIGKILLed while it catches up and restarted, a daemon is SIGKILLed
and restarted (it resumes from its ledger's end); at the end every batch is shipped twice
more. Every interval is in the central ledger exactly once, none lost, and the central
totals equal the sum of the two SQLite ledgers to the unit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from adapters.ledger.journal import Journal
from adapters.ledger.shipper import SHIP_STATE_FILE, Shipper
from tests.central_kit import (
    central_keys,
    central_totals,
    env,
    local_keys,
    local_totals,
    ship,
    site_config,
)
from tests.daemon_kit import EXE, wait_for
from tests.pg_kit import cluster

pytestmark = pytest.mark.slow

OUTAGE_S = 60.0


def _daemon(config: Path, state: Path, dsn: str) -> subprocess.Popen[bytes]:
    # 1,000x: the simulated day takes about 86 s, so the minute's outage lands mid-run.
    command = [EXE, "run", str(config), "--simulated", "--speed", "1000", "--metrics-port", "0"]
    return subprocess.Popen(
        [*command, "--state-dir", str(state)],
        env=env(dsn),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _ship_once(state: Path, dsn: str) -> int:
    journal = Journal.open(state / "ledger.sqlite3")
    shipper = Shipper(journal, state / SHIP_STATE_FILE, dsn, 50)
    try:
        return shipper.ship_once()
    finally:
        shipper.close()
        journal.close()


def test_two_daemons_ship_to_one_central_ledger_through_a_minute_outage_and_kills(
    tmp_path: Path,
) -> None:
    window = ("2024-08-19T00:00:00Z", "2024-08-20T00:00:00Z")  # 96 intervals a site
    sites = ["site-a", "site-b"]
    with cluster() as pg:
        dsn = pg.create_database("central")
        configs = {s: site_config(tmp_path / s, s, *window) for s in sites}
        states = {s: tmp_path / s / "state" for s in sites}
        daemons = {s: _daemon(configs[s], states[s], dsn) for s in sites}
        wait_for(lambda: all((states[s] / "ledger.sqlite3").exists() for s in sites), 60, "ledgers")
        shippers = {s: ship(configs[s], states[s], dsn) for s in sites}
        wait_for(lambda: len(central_keys(dsn)) >= 8, 60, "the first shipped intervals")

        pg.stop()  # a minute's outage: the daemons go on booking, the shippers wait
        time.sleep(OUTAGE_S / 2)
        os.kill(daemons["site-b"].pid, signal.SIGKILL)  # a site daemon killed, restarted
        daemons["site-b"].wait(10)
        daemons["site-b"] = _daemon(configs["site-b"], states["site-b"], dsn)
        time.sleep(OUTAGE_S / 2)
        pg.start()
        before = len(central_keys(dsn))
        wait_for(lambda: len(central_keys(dsn)) > before, 60, "shipping to resume")
        shippers["site-a"].send_signal(signal.SIGKILL)  # while it catches up
        shippers["site-a"].wait(10)
        shippers["site-a"] = ship(configs["site-a"], states["site-a"], dsn)

        for s in sites:
            assert daemons[s].wait(300) == 0
        expected = local_keys(*states.values())
        assert len(expected) == 2 * 96
        wait_for(lambda: len(central_keys(dsn)) >= len(expected), 120, "every interval shipped")
        for s in sites:
            shippers[s].send_signal(signal.SIGTERM)
            assert shippers[s].wait(20) == 0
            # The same batch twice: from the watermark, then without it (all offered again).
            assert _ship_once(states[s], dsn) == 0
            (states[s] / SHIP_STATE_FILE).unlink()
            assert _ship_once(states[s], dsn) == 0

        keys = central_keys(dsn)
        assert len(keys) == len(set(keys))  # none twice
        assert set(keys) == expected  # none lost
        assert central_totals(dsn) == local_totals(*states.values())
