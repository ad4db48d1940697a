"""A PostgreSQL cluster of the tests' own: ``initdb`` + ``pg_ctl`` in a temporary directory,
on a free loopback port, never the machine's default cluster.

The server binaries come from Debian's ``postgresql`` package (/usr/lib/postgresql/N/bin);
``make test`` installs it (scripts/ensure-system-packages). PostgreSQL refuses to run as
root, so as root the cluster belongs to the ``postgres`` user the package creates. TCP
connections need a password (SCRAM), so a wrong one is refused as it would be in a
deployment; the superuser's password is ``PASSWORD``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.daemon_kit import free_port

PASSWORD = "pg-Secret-4711"
USER = "hashspark"


def pg_bin() -> Path:
    """The newest installed PostgreSQL's server binaries, or a failure naming the package."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).parent
    raise AssertionError(
        "initdb is missing: make test installs Debian's postgresql package "
        "(scripts/ensure-system-packages)"
    )


class Cluster:
    """One throwaway cluster: ``start``, ``stop``, ``dsn``; its files go with ``remove``."""

    def __init__(self) -> None:
        self.bin = pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="hashspark-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._owner is not None:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._owner is not None:
            os.chown(pwfile, self._owner.pw_uid, self._owner.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            "--pwfile",
            str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "--no-instructions",
            "-E",
            "UTF8",
            "--locale=C",
        )
        pwfile.unlink()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._owner is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root)

    def start(self) -> None:
        """Start the server (again) on its port; returns once it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off -c full_page_writes=off "
            "-c max_connections=40 -c shared_buffers=16MB"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnects every client, as an outage does)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def dsn(self, database: str = "postgres", password: str = PASSWORD) -> str:
        """A URI for ``database`` over TCP with the superuser's (or the given) password."""
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database; its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def remove(self) -> None:
        """Stop the server if it runs and delete the cluster's files."""
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def cluster() -> Iterator[Cluster]:
    """A started cluster, removed afterwards."""
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.remove()
