"""Shared by the central ledger's tests: site ledgers, daemon configs, and their totals."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from decimal import Decimal
from pathlib import Path

import psycopg

from adapters.ledger.journal import ENERGY_COMPONENTS, money
from adapters.ledger.schema import MONEY_COLUMN
from controller.accounting.money import MONEY_COMPONENTS
from controller.records import COMPONENTS
from tests.daemon_kit import EXE, scenario

DSN_ENV = "HASHSPARK_CENTRAL_DSN_TEST"


def site_config(tmp: Path, site: str, start: str, end: str, poll_s: float = 0.2) -> Path:
    """The hedged scenario over ``start..end`` as site ``site``, shipping to ``$DSN_ENV``."""
    tmp.mkdir(parents=True, exist_ok=True)
    base = scenario(tmp, start, end)
    text = base.read_text().replace('id = "hb-south"', f'id = "{site}"', 1)
    text += (
        f'\n[central]\ndsn = {{ env = "{DSN_ENV}" }}\n'
        f"ship_interval_s = {poll_s}\nretry_cap_s = 1.0\nbatch_size = 20\n"
    )
    path = tmp / f"{site}.toml"
    path.write_text(text)
    return path


def env(dsn: str) -> dict[str, str]:
    """The environment a daemon or shipper of these tests runs in."""
    return {**os.environ, DSN_ENV: dsn}


def ship(config: Path, state: Path, dsn: str, *extra: str) -> subprocess.Popen[bytes]:
    """``hashspark ledger ship`` for one state directory, in the background."""
    return subprocess.Popen(
        [EXE, "ledger", "ship", "--config", str(config), "--state-dir", str(state), *extra],
        env=env(dsn),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


Key = tuple[str, float]


def local_keys(*states: Path) -> set[Key]:
    """(site, start epoch second) of every interval in the state directories' ledgers."""
    keys: set[Key] = set()
    for state in states:
        conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
        keys |= {
            (str(s), float(t)) for s, t in conn.execute("SELECT site_id, start_s FROM intervals")
        }
        conn.close()
    return keys


def local_totals(*states: Path) -> dict[str, Decimal]:
    """Each component summed over every interval of the ledgers, as the ledgers hold them:
    money by SQLite's own integer ``SUM`` of the micro-dollars (scaled to dollars, exactly),
    energy as the edge converts each stored float."""
    money_sql = ", ".join(f"SUM({MONEY_COLUMN[c]})" for c in MONEY_COMPONENTS)
    totals = dict.fromkeys(COMPONENTS, Decimal(0))
    for state in states:
        conn = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True)
        row = conn.execute(f"SELECT {money_sql} FROM intervals").fetchone()
        for name, micro in zip(MONEY_COMPONENTS, row, strict=True):
            assert isinstance(micro, int)  # an integer sum, not a float one
            totals[name] += Decimal(micro).scaleb(-6)
        for row in conn.execute(f"SELECT {', '.join(ENERGY_COMPONENTS)} FROM intervals"):
            for name, value in zip(ENERGY_COMPONENTS, row, strict=True):
                amount = money(value)
                assert amount is not None
                totals[name] += amount
        conn.close()
    return totals


def central_keys(dsn: str) -> list[Key]:
    """(site, start epoch second) of every central interval, duplicates kept."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT site_id, extract(epoch FROM start_utc) FROM intervals"
        ).fetchall()
    return [(str(s), float(t)) for s, t in rows]


def central_totals(dsn: str) -> dict[str, Decimal]:
    """Each component summed by PostgreSQL."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"SELECT {', '.join(f'coalesce(sum({c}), 0)' for c in COMPONENTS)} FROM intervals"
        ).fetchone()
    assert row is not None
    return dict(zip(COMPONENTS, (Decimal(v) for v in row), strict=True))


def grafana_sql(sql: str, sites: list[str], start: str, end: str) -> str:
    """A finance panel's SQL as Grafana's PostgreSQL datasource sends it: ``$site`` (multi)
    as quoted values, the time macros for ``start..end`` (ISO, UTC)."""
    for macro, text in (
        ("$__timeFilter(c.start_utc)", f"c.start_utc BETWEEN '{start}' AND '{end}'"),
        ("$__timeFrom()", f"'{start}'"),
        ("$__timeTo()", f"'{end}'"),
        ("$site", ", ".join(f"'{s}'" for s in sites)),
    ):
        sql = sql.replace(macro, text)
    assert "$" not in sql, sql
    return sql
