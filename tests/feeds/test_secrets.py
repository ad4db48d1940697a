"""Secrets never leak: a whole run with real credentials, every output grepped for them.

The daemon talks to a Mosquitto that wants TLS, a password and the ACL of docs/feeds.md,
and polls ERCOT (a local aiohttp server that checks the password, the subscription key and
the bearer token it issued). Secrets come from ``HASHSPARK_*`` variables and a 0600 file.
Then every output of the run is searched for every secret: stdout and stderr of each
command (daemon, ``check-config``, ``replay``, ``ledger summary``, ``command``), the log
lines, ``/metrics``, ``/healthz``, the retained status, the broker's log, and every file
the run wrote (ledger, WAL, audit log, feed recordings, the replay report).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from controller.config import DaemonConfig
from tests.daemon_kit import EXE, free_port, get, scenario
from tests.feeds.conftest import MOSQUITTO_PASSWD, Broker, CaFiles
from tests.feeds.scripted_server import fixture

SPP = "/np6-905-cd/spp_node_zone_hub"
SITE = "sec"
DAEMON_USER, OPERATOR_USER, PUBLISHER_USER = "hashspark-sec", "operator", "publisher"

# The broker ACL of docs/feeds.md, for site "sec".
ACL = f"""
user {DAEMON_USER}
topic read  hashspark/{SITE}/price
topic read  hashspark/{SITE}/hashprice
topic read  hashspark/{SITE}/command
topic write hashspark/{SITE}/command/ack
topic write hashspark/{SITE}/status

user {PUBLISHER_USER}
topic write hashspark/{SITE}/price
topic write hashspark/{SITE}/hashprice

user {OPERATOR_USER}
topic write hashspark/{SITE}/command
topic read  hashspark/{SITE}/command/ack
topic read  hashspark/{SITE}/status
"""


class FakeErcot:
    """ERCOT's token endpoint and SPP report, refusing anything without the right secrets."""

    def __init__(self, password: str, key: str, token: str) -> None:
        self.password, self.key, self.token = password, key, token
        self.tokens_issued = 0
        self.reports_served = 0
        self.refused: list[str] = []

    async def token_endpoint(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("password") != self.password or "password" in request.query:
            self.refused.append("token")
            return web.json_response({"error": "AADB2C90225: bad password"}, status=400)
        self.tokens_issued += 1
        return web.json_response({"id_token": self.token, "expires_in": 3600})

    async def report(self, request: web.Request) -> web.Response:
        if request.headers.get("Ocp-Apim-Subscription-Key") != self.key:
            self.refused.append("key")
            return web.json_response({"message": "bad key"}, status=401)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.refused.append("bearer")
            return web.json_response({"message": "bad token"}, status=401)
        self.reports_served += 1
        return web.Response(body=fixture("ercot_np6-905-cd_hb_west.json"))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self.token_endpoint)
        app.router.add_get(SPP, self.report)
        return app


def _broker_lines(port: int, user: str, env: str, ca: Path, client_id: str) -> list[str]:
    return [
        'host = "127.0.0.1"',
        f"port = {port}",
        f'client_id = "{client_id}"',
        f'username = "{user}"',
        f'password = {{ env = "{env}" }}',
        f'tls = {{ ca_file = "{ca}" }}',
        "connect_timeout_s = 5",
        "backoff = { base_s = 0.2, cap_s = 1 }",
    ]


def _broker_block(port: int, user: str, env: str, ca: Path, client_id: str) -> str:
    return "{ " + ", ".join(_broker_lines(port, user, env, ca, client_id)) + " }"


def _live_config(tmp: Path, broker: str, ercot_url: str, password_file: Path) -> Path:
    path = tmp / f"{SITE}-{len(list(tmp.glob('*.toml')))}.toml"
    path.write_text(f"""
[daemon]
cycle_s = 0.25

[[sites]]
id = "{SITE}"
pool_fee = 0.02
hashprice_feed = {{ type = "mqtt", broker = {broker} }}

[sites.price_feed]
type = "ercot"
settlement_point = "HB_WEST"
username = "ops@example.com"
password = {{ file = "{password_file}" }}
subscription_key = {{ env = "HASHSPARK_ERCOT_SUBSCRIPTION_KEY" }}
base_url = "{ercot_url}"
token_url = "{ercot_url}/token"
interval_s = 2
timeout_s = 5
backoff = {{ base_s = 0.2, cap_s = 1 }}

[[sites.miners]]
model = "Antminer S21"
count = 100

[sites.supply]
type = "spot"
""")
    return path


async def _until(condition: Callable[[], object], what: str, timeout_s: float = 20.0) -> None:
    """Poll without blocking the event loop (the fake ERCOT serves from it)."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception as exc:
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


async def _run(*args: str, env: dict[str, str], limit_s: float = 60) -> tuple[int, bytes]:
    """A hashspark command off the event loop; its exit code and stdout + stderr."""
    done = await asyncio.to_thread(
        subprocess.run, [EXE, *args], env=env, capture_output=True, timeout=limit_s, check=False
    )
    return done.returncode, done.stdout + done.stderr


def _summed(port: int, prefix: str) -> float:
    text = get(f"http://127.0.0.1:{port}/metrics").decode()
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(prefix))


async def test_no_secret_appears_in_any_output_of_a_run(tmp_path: Path, test_ca: CaFiles) -> None:
    mqtt_pw = "mqttpw-" + secrets.token_hex(12)
    operator_pw = "oppw-" + secrets.token_hex(12)
    wrong_pw = "wrongpw-" + secrets.token_hex(12)
    ercot_pw = "ercotpw-" + secrets.token_hex(12)
    ercot_key = "ercotkey-" + secrets.token_hex(12)
    id_token = "idtoken-" + secrets.token_hex(16)
    publisher_pw = "pubpw-" + secrets.token_hex(8)  # the test's own client, not hashspark's
    watched = {
        "MQTT password": mqtt_pw,
        "operator password": operator_pw,
        "wrong MQTT password": wrong_pw,
        "ERCOT password": ercot_pw,
        "ERCOT subscription key": ercot_key,
        "ERCOT id token": id_token,
    }

    passwd = tmp_path / "passwd"
    for i, (user, pw) in enumerate(
        ((DAEMON_USER, mqtt_pw), (OPERATOR_USER, operator_pw), (PUBLISHER_USER, publisher_pw))
    ):
        create = ["-c"] if i == 0 else []
        subprocess.run([MOSQUITTO_PASSWD, "-b", *create, str(passwd), user, pw], check=True)
    (tmp_path / "acl").write_text(ACL)
    broker = Broker(
        tmp_path,
        free_port(),
        f"allow_anonymous false\npassword_file {passwd}\nacl_file {tmp_path / 'acl'}\n"
        f"cafile {test_ca.ca_cert}\ncertfile {test_ca.server_cert}\n"
        f"keyfile {test_ca.server_key}\n",
    )
    client_args = ("--cafile", str(test_ca.ca_cert), "-u", PUBLISHER_USER, "-P", publisher_pw)
    password_file = tmp_path / "ercot-password"
    password_file.write_text(ercot_pw + "\n")
    password_file.chmod(0o600)

    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHSPARK_")}
    env |= {
        "HASHSPARK_MQTT_PASSWORD": mqtt_pw,
        "HASHSPARK_OPERATOR_PASSWORD": operator_pw,
        "HASHSPARK_ERCOT_SUBSCRIPTION_KEY": ercot_key,
    }
    outputs: dict[str, bytes] = {}
    state = tmp_path / "state"
    ercot = FakeErcot(ercot_pw, ercot_key, id_token)
    server = TestServer(ercot.app(), host="127.0.0.1")
    await server.start_server()
    broker.start()
    try:
        url = str(server.make_url("")).rstrip("/")
        daemon_broker = _broker_block(
            broker.port, DAEMON_USER, "HASHSPARK_MQTT_PASSWORD", test_ca.ca_cert, "hashspark-sec"
        )
        config = _live_config(tmp_path, daemon_broker, url, password_file)
        operator = _live_config(
            tmp_path,
            _broker_block(
                broker.port, OPERATOR_USER, "HASHSPARK_OPERATOR_PASSWORD", test_ca.ca_cert, "op"
            ),
            url,
            password_file,
        )

        code, outputs["check-config"] = await _run("check-config", str(config), env=env)
        assert code == 0, outputs["check-config"]
        assert b"**********" in outputs["check-config"]

        port = free_port()
        log = tmp_path / "daemon.log"
        daemon = subprocess.Popen(
            [EXE, "run", str(config), "--state-dir", str(state), "--metrics-port", str(port)],
            env=env,
            stdout=(tmp_path / "daemon.out").open("wb"),
            stderr=log.open("wb"),
        )
        try:
            await _until(lambda: _summed(port, "hashspark_feed_up{") == 2, "MQTT and ERCOT up")
            await _until(lambda: ercot.reports_served >= 1, "an ERCOT report served")
            broker.publish(
                f"hashspark/{SITE}/hashprice",
                json.dumps({"usd_per_ph_day": 50.0, "ts": datetime.now(UTC).isoformat()}),
                *client_args,
            )
            await _until(
                lambda: _summed(port, "hashspark_feed_readings_accepted_total{") >= 2,
                "an ERCOT price and an MQTT hashprice accepted",
            )
            until = datetime.fromtimestamp(time.time() + 600, UTC).isoformat()
            command = json.dumps({"command": "force_curtail", "until": until, "reason": "test"})
            code, outputs["command"] = await _run(
                "command", str(operator), command, "--timeout", "15", env=env
            )
            assert code == 0, outputs["command"]  # the operator's ACL lets it command
            outputs["/metrics"] = get(f"http://127.0.0.1:{port}/metrics")
            outputs["/healthz"] = get(f"http://127.0.0.1:{port}/healthz")
            status = await asyncio.to_thread(
                subprocess.run,
                [
                    "mosquitto_sub",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(broker.port),
                    "-t",
                    f"hashspark/{SITE}/status",
                    "-C",
                    "1",
                    "-W",
                    "10",
                    "--cafile",
                    str(test_ca.ca_cert),
                    "-u",
                    OPERATOR_USER,
                    "-P",
                    operator_pw,
                ],
                capture_output=True,
                timeout=20,
                check=True,
            )
            outputs["retained status"] = status.stdout
            assert json.loads(status.stdout)["state"] == "running"
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait, 15) == 0
        assert ercot.refused == []  # every secret reached the server intact
        assert ercot.tokens_issued >= 1

        # A wrong MQTT password: the failure is logged, the password is not.
        bad_env = env | {"HASHSPARK_MQTT_PASSWORD": wrong_pw}
        bad_port = free_port()
        bad_log = tmp_path / "bad-daemon.log"
        bad = subprocess.Popen(
            [
                EXE,
                "run",
                str(config),
                "--state-dir",
                str(tmp_path / "bad-state"),
                "--metrics-port",
                str(bad_port),
            ],
            env=bad_env,
            stdout=subprocess.DEVNULL,
            stderr=bad_log.open("wb"),
        )
        try:
            await _until(lambda: b"feed_failed" in bad_log.read_bytes(), "the refusal logged")
            outputs["/metrics (wrong password)"] = get(f"http://127.0.0.1:{bad_port}/metrics")
        finally:
            bad.send_signal(signal.SIGTERM)
            await asyncio.to_thread(bad.wait, 15)
        code, outputs["command (wrong password)"] = await _run(
            "command", str(config), command, "--timeout", "3", env=bad_env
        )
        assert code != 0
    finally:
        broker.stop()
        await server.close()

    code, outputs["ledger summary"] = await _run(
        "ledger", "summary", "--state-dir", str(state), env=env
    )
    assert code == 0, outputs["ledger summary"]

    # Replay: recorded feeds, with a secret-bearing broker for status and commands.
    replay_cfg = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-20T00:00:00Z")
    lines = _broker_lines(
        broker.port, DAEMON_USER, "HASHSPARK_MQTT_PASSWORD", test_ca.ca_cert, "hashspark-sec"
    )
    replay_cfg.write_text(replay_cfg.read_text() + "\n[sites.mqtt]\n" + "\n".join(lines) + "\n")
    code, outputs["replay"] = await _run(
        "replay", str(replay_cfg), "--report-json", str(tmp_path / "report.json"), env=env
    )
    assert code == 0, outputs["replay"]

    # A secret file others can read is refused, and the refusal does not print it.
    password_file.chmod(0o644)
    code, outputs["check-config (0644 secret file)"] = await _run(
        "check-config", str(config), env=env
    )
    assert code == 2
    assert b"chmod 600" in outputs["check-config (0644 secret file)"]

    # Every file the runs wrote, and the broker's own log.
    files = _files(tmp_path, password_file)
    written = {str(p.relative_to(tmp_path)) for p in files}
    for must in (
        "state/ledger.sqlite3",
        f"state/audit/{SITE}.jsonl",
        "daemon.log",
        "report.json",
        "bad-daemon.log",
    ):
        assert must in written, sorted(written)
    assert any(w.startswith(f"state/recordings/{SITE}/price/") for w in written)
    assert any(w.startswith(f"state/recordings/{SITE}/hashprice/") for w in written)
    for p in files:
        if p.name not in ("passwd",):  # mosquitto's own salted hashes of the passwords
            outputs[str(p.relative_to(tmp_path))] = p.read_bytes()

    leaks = [
        f"{what} in {where}"
        for where, blob in outputs.items()
        for what, value in watched.items()
        if value.encode() in blob
    ]
    assert leaks == []
    assert len(outputs) >= 15


def _files(root: Path, *but: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p not in but]


def test_metrics_bind_to_loopback_unless_configured(tmp_path: Path) -> None:
    assert DaemonConfig().metrics_host == "127.0.0.1"
    config = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-19T06:00:00Z")
    port = free_port()
    proc = subprocess.Popen(
        [
            EXE,
            "run",
            str(config),
            "--simulated",
            "--stay",
            "--state-dir",
            str(tmp_path / "s"),
            "--metrics-port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        listening: list[str] = []
        while not listening and time.monotonic() < deadline:
            listening = _listeners(port)
            time.sleep(0.05)
        assert listening == ["127.0.0.1"], listening  # not 0.0.0.0, not ::
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def _listeners(port: int) -> list[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    out.append(".".join(str(b) for b in reversed(bytes.fromhex(address))))
                else:
                    out.append(f"ipv6:{address}")
    return out
