"""Fixtures for the feed tests: a private Mosquitto per test, a test CA, a polling helper."""

from __future__ import annotations

import asyncio
import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def eventually(
    condition: Callable[[], bool], *, timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout_s`` (no fixed sleeps)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Broker:
    """A Mosquitto process of our own on a loopback port, with its generated config."""

    workdir: Path
    port: int
    extra_conf: str = ""
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / f"mosquitto-{self.port}.log"

    def start(self) -> None:
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        conf.write_text(
            f"user {getpass.getuser()}\n"  # as root, mosquitto would drop to a user that
            # cannot read tmp_path
            f"listener {self.port} 127.0.0.1\n"
            "persistence false\n"
            f"log_dest file {self.log}\n"
            "log_type all\n" + self.extra_conf,
            encoding="utf-8",
        )
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)])
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start listening")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def publish(self, topic: str, payload: str, *args: str, retain: bool = False) -> None:
        """Publish with the real ``mosquitto_pub`` client."""
        cmd = [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(self.port), "-q", "1"]
        cmd += ["-t", topic, "-m", payload, *args]
        if retain:
            cmd.append("-r")
        subprocess.run(cmd, check=True, timeout=10, capture_output=True)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A plain (anonymous, no TLS) broker, stopped after the test."""
    b = Broker(tmp_path, free_port(), "allow_anonymous true\n")
    b.start()
    yield b
    b.stop()


@dataclass(frozen=True)
class CaFiles:
    """A CA and a server certificate for 127.0.0.1 (SAN), generated with openssl."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], check=True, cwd=cwd, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CaFiles:
    """Generated once per session: CA key and cert, server key and a CA-signed cert."""
    d = tmp_path_factory.mktemp("ca")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "2", "-subj", "/CN=hashspark test CA", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
             "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)  # fmt: skip
    (d / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        encoding="utf-8",
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
             cwd=d)  # fmt: skip
    return CaFiles(d / "ca.crt", d / "server.crt", d / "server.key")
