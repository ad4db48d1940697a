"""The central ledger's schema: numbered SQL files, applied in order in one transaction.

``migrations/NNNN_name.sql`` beside this module; ``schema_migrations`` records each file
applied, with its SHA-256. Plain SQL files rather than Alembic: the schema is a handful of
tables, a trigger and a view that a DBA or finance analyst should read as SQL, there is no
ORM here for Alembic's autogeneration to work from, and PostgreSQL runs DDL inside a
transaction, so a migration that fails halfway leaves nothing behind. An advisory lock
makes two shippers starting at once apply a migration once; an applied file that has since
changed, or a database migrated by a newer hashspark, is refused rather than guessed at.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files

import psycopg

from adapters.ledger.sqlite import LedgerError

#: ``pg_advisory_xact_lock`` key: "hashspark" as ASCII in 8 bytes is too wide; any constant.
_LOCK_KEY = 0x48_53_50_4B_4C_47  # "HSPKLG"
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        """The file's hash, recorded when applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """Every migration shipped with hashspark, in order."""
    found: list[Migration] = []
    for item in files("adapters.ledger").joinpath("migrations").iterdir():
        match = _NAME.fullmatch(item.name)
        if match:
            found.append(Migration(int(match[1]), match[2], item.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    """Bring the database to the newest schema; the versions applied now (none: up to date).

    Raises ``LedgerError`` on a database ahead of this hashspark or a changed migration.
    """
    known = migrations()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
            " applied_utc timestamptz NOT NULL DEFAULT now())"
        )
        applied = {
            int(v): str(h)  # type: ignore[call-overload]
            for v, h in conn.execute("SELECT version, sha256 FROM schema_migrations")
        }
        by_version = {m.version: m for m in known}
        ahead = sorted(set(applied) - set(by_version))
        if ahead:
            raise LedgerError(
                f"the central ledger has schema migration {ahead[-1]:04d}, newer than this "
                f"hashspark knows ({known[-1].version:04d}): upgrade hashspark"
            )
        for version, sha in applied.items():
            if by_version[version].sha256 != sha:
                raise LedgerError(
                    f"schema migration {version:04d} ({by_version[version].name}) differs from "
                    "the one applied to the central ledger: migrations are never edited, "
                    "add a new one"
                )
        pending = [m for m in known if m.version not in applied]
        for m in pending:
            conn.execute(m.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                (m.version, m.name, m.sha256),
            )
    return [m.version for m in pending]
