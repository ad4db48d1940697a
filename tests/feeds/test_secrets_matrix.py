"""Secrets never leave, on every failure path: a matrix of failures, every output grepped.

Distinctive secrets sit where an operator puts them: ``HASHSPARK_*`` variables (the MQTT
password, ERCOT's subscription key, an index API key), a 0600 file (ERCOT's password), and
URLs (userinfo ``user:pass@`` on the index and chain URLs, an ``?api_key=`` query on the
index URL). Servers add their own: the ERCOT id token it issues.

Each failure runs the real daemon (and ``check-config``, ``command``, ``replay``, ``ledger
summary`` around it) against a local HTTP server whose every route answers 401, 403 or 500,
or echoes the whole request (headers, query, form) back in its body with a 400, a 500 or a
200; against a real Mosquitto that refuses the password, the user or the topic, or speaks
TLS the client cannot verify or no TLS at all. Then every output is searched for every
secret, verbatim and in the forms a client puts on the wire (``Basic base64(user:pass)``):
stdout and stderr of every command, the JSON log lines, ``/metrics``, ``/healthz``, the
ledger (raw and as an SQL dump), the command audit, the recordings, and the broker's log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import sqlite3
import ssl
import subprocess
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.daemon_kit import EXE, free_port, get, scenario
from tests.feeds.conftest import MOSQUITTO_PASSWD, Broker, CaFiles
from tests.feeds.scripted_server import fixture

pytestmark = pytest.mark.slow

SPP = "/np6-905-cd/spp_node_zone_hub"
DAEMON_USER, STRANGER_USER = "hashspark-mx", "stranger"


@dataclass
class Secrets:
    """One distinctive value per place a secret can come from."""

    mqtt_pw: str = field(default_factory=lambda: "mqttpw-" + secrets.token_hex(10))
    wrong_pw: str = field(default_factory=lambda: "wrongpw-" + secrets.token_hex(10))
    stranger_pw: str = field(default_factory=lambda: "strangerpw-" + secrets.token_hex(10))
    ercot_pw: str = field(default_factory=lambda: "ercotpw-" + secrets.token_hex(10))
    ercot_key: str = field(default_factory=lambda: "ercotkey-" + secrets.token_hex(10))
    id_token: str = field(default_factory=lambda: "idtoken-" + secrets.token_hex(12))
    index_key: str = field(default_factory=lambda: "idxkey-" + secrets.token_hex(10))
    index_query_key: str = field(default_factory=lambda: "idxq-" + secrets.token_hex(10))
    index_url_pw: str = field(default_factory=lambda: "idxurlpw-" + secrets.token_hex(10))
    chain_url_pw: str = field(default_factory=lambda: "chainurlpw-" + secrets.token_hex(10))

    def watched(self) -> dict[str, bytes]:
        """Each secret, and the Basic credentials a client makes of URL userinfo."""
        out = {name: value.encode() for name, value in vars(self).items()}
        for name, pair in (
            ("index Basic", f"idxuser:{self.index_url_pw}"),
            ("chain Basic", f"chainuser:{self.chain_url_pw}"),
        ):
            out[name] = base64.b64encode(pair.encode())
        return out

    def env(self, **override: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HASHSPARK_")}
        return env | {
            "HASHSPARK_MQTT_PASSWORD": self.mqtt_pw,
            "HASHSPARK_ERCOT_SUBSCRIPTION_KEY": self.ercot_key,
            "HASHSPARK_INDEX_KEY": self.index_key,
            **override,
        }


_CREDENTIALS = ("Authorization", "Ocp-Apim-Subscription-Key", "X-API-Key")


class Upstream:
    """ERCOT (token + SPP), a hashprice index and a chain explorer, failing as told.

    ``mode`` applies to every data route: ``ok``, ``401``, ``403``, ``500``, or ``echo-400``,
    ``echo-500``, ``echo-200``: the whole request (headers, query, form) echoed in the body.
    ``token_mode`` is the same for ERCOT's token endpoint.
    """

    def __init__(self, s: Secrets) -> None:
        self.s = s
        self.mode = "ok"
        self.token_mode = "ok"
        self.hits: dict[str, int] = {}

    async def _echo(self, request: web.Request, status: int) -> web.Response:
        """The request back, credentials first (a client quoting the body's start sees them)."""
        form = dict(await request.post()) if request.method == "POST" else {}
        headers = sorted(request.headers.items(), key=lambda kv: kv[0] not in _CREDENTIALS)
        doc = {
            "form": {k: str(v) for k, v in form.items()},
            "headers": dict(headers),
            "request": f"{request.method} {request.path_qs}",
            "error": "echo",
            "message": "\n".join(f"{k}: {v}" for k, v in headers),
        }
        return web.json_response(doc, status=status)

    async def _answer(self, request: web.Request, mode: str, ok: bytes) -> web.Response:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        if mode.startswith("echo-"):
            return await self._echo(request, int(mode.removeprefix("echo-")))
        if mode != "ok":
            return web.json_response({"error": f"refused-{mode}"}, status=int(mode))
        return web.Response(body=ok, content_type="application/json")

    async def token(self, request: web.Request) -> web.Response:
        token = json.dumps({"id_token": self.s.id_token, "expires_in": 3600}).encode()
        return await self._answer(request, self.token_mode, token)

    async def spp(self, request: web.Request) -> web.Response:
        return await self._answer(request, self.mode, fixture("ercot_np6-905-cd_hb_west.json"))

    async def index(self, request: web.Request) -> web.Response:
        ok = json.dumps({"usd_per_ph_day": 50.0, "ts": time.time()}).encode()
        return await self._answer(request, self.mode, ok)

    async def blocks(self, request: web.Request) -> web.Response:
        return await self._answer(request, self.mode, fixture("mempool_blocks.json"))

    async def prices(self, request: web.Request) -> web.Response:
        return await self._answer(request, self.mode, fixture("mempool_prices.json"))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self.token)
        app.router.add_get(SPP, self.spp)
        app.router.add_get("/index", self.index)
        app.router.add_get("/api/v1/blocks", self.blocks)
        app.router.add_get("/api/v1/prices", self.prices)
        return app


def _ercot(url: str, password_file: Path) -> str:
    return (
        f'{{ type = "ercot", settlement_point = "HB_WEST", username = "ops@example.com", '
        f'password = {{ file = "{password_file}" }}, '
        'subscription_key = { env = "HASHSPARK_ERCOT_SUBSCRIPTION_KEY" }, '
        f'base_url = "{url}", token_url = "{url}/token", interval_s = 2, timeout_s = 5, '
        "backoff = { base_s = 0.2, cap_s = 1 } }"
    )


def _site(site_id: str, price: str, hashprice: str) -> str:
    return f"""
[[sites]]
id = "{site_id}"
pool_fee = 0.02
price_feed = {price}
hashprice_feed = {hashprice}

[[sites.miners]]
model = "Antminer S21"
count = 10

[sites.supply]
type = "spot"
"""


def _http_config(tmp: Path, s: Secrets, url: str, password_file: Path) -> Path:
    """Two sites: ERCOT + hashprice index (key in header, URL userinfo and query), ERCOT +
    chain (URL userinfo)."""
    scheme, host = url.split("://", 1)
    index_url = f"{scheme}://idxuser:{s.index_url_pw}@{host}/index?api_key={s.index_query_key}&v=1"
    index = (
        f'{{ type = "hashprice_index", url = "{index_url}", '
        'api_key = { env = "HASHSPARK_INDEX_KEY" }, interval_s = 10, timeout_s = 5, '
        "backoff = { base_s = 0.2, cap_s = 1 } }"
    )
    chain = (
        f'{{ type = "chain", base_url = "{scheme}://chainuser:{s.chain_url_pw}@{host}", '
        "interval_s = 10, timeout_s = 5, min_blocks = 1, backoff = { base_s = 0.2, cap_s = 1 } }"
    )
    path = tmp / "http.toml"
    path.write_text(
        "[daemon]\ncycle_s = 0.25\n"
        + _site("idx", _ercot(url, password_file), index)
        + _site("chn", _ercot(url, password_file), chain)
    )
    return path


def _broker_lines(port: int, user: str, tls: str) -> list[str]:
    return [
        'host = "127.0.0.1"',
        f"port = {port}",
        f'client_id = "hs-{secrets.token_hex(3)}"',
        f'username = "{user}"',
        'password = { env = "HASHSPARK_MQTT_PASSWORD" }',
        f"tls = {tls}",
        "connect_timeout_s = 3",
        "backoff = { base_s = 0.2, cap_s = 1 }",
    ]


def _broker_block(port: int, user: str, tls: str) -> str:
    return "{ " + ", ".join(_broker_lines(port, user, tls)) + " }"


def _mqtt_config(tmp: Path, name: str, broker: str) -> Path:
    feed = f'{{ type = "mqtt", broker = {broker} }}'
    path = tmp / f"{name}.toml"
    path.write_text("[daemon]\ncycle_s = 0.25\n" + _site("mq", feed, feed))
    return path


@dataclass
class Outputs:
    """Everything a case produced, by where it came from."""

    blobs: dict[str, bytes] = field(default_factory=dict)

    def add(self, where: str, blob: bytes) -> None:
        self.blobs[where] = blob

    def add_tree(self, root: Path, label: str) -> None:
        for p in sorted(root.rglob("*")):
            if not p.is_file():
                continue
            self.add(f"{label}/{p.relative_to(root)}", p.read_bytes())
            if p.suffix == ".sqlite3":
                with sqlite3.connect(p) as conn:
                    self.add(f"{label}/{p.name} (SQL dump)", "\n".join(conn.iterdump()).encode())

    def leaks(self, watched: dict[str, bytes]) -> list[str]:
        return [
            f"{what} in {where}"
            for where, blob in self.blobs.items()
            for what, value in watched.items()
            if value in blob
        ]


async def _run(*args: str, env: dict[str, str], limit_s: float = 60) -> tuple[int, bytes]:
    done = await asyncio.to_thread(
        subprocess.run, [EXE, *args], env=env, capture_output=True, timeout=limit_s, check=False
    )
    return done.returncode, done.stdout + done.stderr


def _events(log: Path) -> list[dict[str, object]]:
    out = []
    for line in log.read_bytes().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


FAILURES = ("feed_failed", "feed_outage")


def _feeds_with(log: Path, events: tuple[str, ...]) -> set[str]:
    return {str(e.get("feed")) for e in _events(log) if e.get("event") in events}


async def _daemon(
    config: Path,
    tmp: Path,
    name: str,
    env: dict[str, str],
    out: Outputs,
    failing: int,
    events: tuple[str, ...] = FAILURES,
) -> None:
    """Run the daemon until ``failing`` feeds logged one of ``events``; keep its outputs.

    The daemon keeps running with failed feeds (the fail-safe applies); it must not exit.
    """
    port = free_port()
    log, stdout, state = tmp / f"{name}.log", tmp / f"{name}.out", tmp / f"{name}-state"
    proc = subprocess.Popen(
        [EXE, "run", str(config), "--state-dir", str(state), "--metrics-port", str(port)],
        env=env,
        stdout=stdout.open("wb"),
        stderr=log.open("wb"),
    )
    try:
        deadline = time.monotonic() + 40
        while len(_feeds_with(log, events)) < failing:
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, (failing, log.read_text(errors="replace"))
            await asyncio.sleep(0.1)
        metrics = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/metrics")
        out.add(f"{name} /metrics", metrics)
        out.add(f"{name} /healthz", await _healthz(port))
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 20)
    out.add(f"{name} stderr", log.read_bytes())
    out.add(f"{name} stdout", stdout.read_bytes())
    out.add_tree(state, f"{name} state")


async def _healthz(port: int) -> bytes:
    """/healthz, whatever its status (503 while the feeds are down is still a document)."""
    try:
        return await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz")
    except urllib.error.HTTPError as exc:
        return bytes(exc.read())


@pytest.fixture
def secret_file(tmp_path: Path) -> tuple[Secrets, Path]:
    s = Secrets()
    path = tmp_path / "ercot-password"
    path.write_text(s.ercot_pw + "\n")
    path.chmod(0o600)
    return s, path


HTTP_CASES = {
    "401 on every data route": ("ok", "401"),
    "403 on every data route": ("ok", "403"),
    "500 on every data route": ("ok", "500"),
    "400 echoing the request (headers, query, form)": ("ok", "echo-400"),
    "500 echoing the request": ("ok", "echo-500"),
    "200 echoing the request (does not parse)": ("ok", "echo-200"),
    "token endpoint 400 echoing the password form": ("echo-400", "ok"),
    "token endpoint 401": ("401", "ok"),
    "TLS to a plain HTTP port (every feed https://)": ("ok", "tls"),
    "a server certificate from an unknown CA": ("ok", "unknown-ca"),
}


@pytest.mark.parametrize(("token_mode", "mode"), HTTP_CASES.values(), ids=HTTP_CASES.keys())
async def test_http_feed_failures_leak_no_secret(
    tmp_path: Path,
    secret_file: tuple[Secrets, Path],
    test_ca: CaFiles,
    token_mode: str,
    mode: str,
) -> None:
    s, password_file = secret_file
    upstream = Upstream(s)
    # "tls": the server answers plain HTTP, the feeds speak TLS to it. "unknown-ca": the server
    # speaks TLS with a certificate the system's CAs never signed.
    tls = mode in ("tls", "unknown-ca")
    upstream.mode, upstream.token_mode = ("ok" if tls else mode), token_mode
    server = TestServer(upstream.app(), host="127.0.0.1")
    context = None
    if mode == "unknown-ca":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(test_ca.server_cert, test_ca.server_key)
    await server.start_server(ssl=context)
    out = Outputs()
    try:
        url = str(server.make_url("")).rstrip("/")
        url = url.replace("http://", "https://") if tls else url
        config = _http_config(tmp_path, s, url, password_file)
        code, text = await _run("check-config", str(config), env=s.env())
        out.add("check-config", text)
        assert code == 0, text
        assert b"**********@127.0.0.1" in text  # the URLs are shown, credentials masked
        assert b"api_key=**********&v=1" in text
        # The token endpoint failing fails both ERCOT feeds; the others still come up.
        failing = 2 if token_mode != "ok" else 4
        await _daemon(config, tmp_path, "daemon", s.env(), out, failing)
    finally:
        await server.close()
    # Each route was really exercised with the secrets (a case that never asked proves nothing).
    assert upstream.hits.get("/token", 0) >= 1 or tls
    if token_mode == "ok" and not tls:
        assert upstream.hits.get(SPP, 0) >= 1
        assert upstream.hits.get("/index", 0) >= 1
        assert upstream.hits.get("/api/v1/blocks", 0) >= 1
    # The failure was logged, with its status: the case ran the path it names.
    errors = " ".join(str(e.get("error")) for e in _events(tmp_path / "daemon.log"))
    status = next(m for m in (mode, token_mode) if m != "ok").removeprefix("echo-")
    if tls:
        reason = "TLS handshake failed" if mode == "tls" else "TLS certificate does not verify"
        assert f"{reason} from https://**********@127.0.0.1" in errors, errors
    elif status != "200":
        assert f"HTTP {status} " in errors, errors
    code, text = await _run("ledger", "summary", "--state-dir", str(tmp_path / "daemon-state"),
                            env=s.env())  # fmt: skip
    out.add("ledger summary", text)
    assert out.leaks(s.watched()) == []
    assert len(out.blobs) >= 6


@dataclass
class BrokerSetup:
    """A TLS broker (password, ACL) with a plain listener on a second port."""

    broker: Broker
    plain_port: int
    ca: CaFiles


@pytest.fixture
def tls_broker(
    tmp_path: Path, test_ca: CaFiles, secret_file: tuple[Secrets, Path]
) -> Iterator[BrokerSetup]:
    s, _ = secret_file
    passwd = tmp_path / "passwd"
    for i, (user, pw) in enumerate(((DAEMON_USER, s.mqtt_pw), (STRANGER_USER, s.stranger_pw))):
        create = ["-c"] if i == 0 else []
        subprocess.run([MOSQUITTO_PASSWD, "-b", *create, str(passwd), user, pw], check=True)
    acl = tmp_path / "acl"
    acl.write_text(
        f"user {DAEMON_USER}\ntopic readwrite hashspark/#\n"
        f"user {STRANGER_USER}\ntopic read nothing/here\n"
    )
    plain = free_port()
    broker = Broker(
        tmp_path,
        free_port(),
        f"allow_anonymous false\npassword_file {passwd}\nacl_file {acl}\n"
        f"cafile {test_ca.ca_cert}\ncertfile {test_ca.server_cert}\n"
        f"keyfile {test_ca.server_key}\n"
        f"listener {plain} 127.0.0.1\n",
    )
    broker.start()
    yield BrokerSetup(broker, plain, test_ca)
    broker.stop()


BROKER_CASES = ["wrong password", "unknown user", "ACL refuses the topics", "TLS to a plain port",
                "broker certificate from an unknown CA"]  # fmt: skip


@pytest.mark.parametrize("case", BROKER_CASES)
async def test_broker_failures_leak_no_secret(
    tmp_path: Path, secret_file: tuple[Secrets, Path], tls_broker: BrokerSetup, case: str
) -> None:
    s, _ = secret_file
    b = tls_broker
    good_tls = f'{{ ca_file = "{b.ca.ca_cert}" }}'
    port, user, tls, env = b.broker.port, DAEMON_USER, good_tls, s.env()
    if case == "wrong password":
        env = s.env(HASHSPARK_MQTT_PASSWORD=s.wrong_pw)
    elif case == "unknown user":
        user, env = "nobody-here", s.env()
    elif case == "ACL refuses the topics":
        user, env = STRANGER_USER, s.env(HASHSPARK_MQTT_PASSWORD=s.stranger_pw)
    elif case == "TLS to a plain port":
        port = b.plain_port
    else:
        tls = "{}"  # the system's CAs, which never signed the test broker's certificate
    config = _mqtt_config(tmp_path, "mqtt", _broker_block(port, user, tls))
    out = Outputs()
    code, text = await _run("check-config", str(config), env=env)
    out.add("check-config", text)
    assert code == 0, text
    # Mosquitto grants a subscription its ACL denies (and delivers nothing): the link is up.
    settled = (*FAILURES, "feed_up") if case == "ACL refuses the topics" else FAILURES
    await _daemon(config, tmp_path, "daemon", env, out, failing=1, events=settled)
    failures = [e for e in _events(tmp_path / "daemon.log") if e.get("event") == "feed_failed"]
    until = "2099-01-01T00:00:00Z"
    command = json.dumps({"command": "force_curtail", "until": until, "reason": "test"})
    code, text = await _run("command", str(config), command, "--timeout", "3", env=env)
    out.add("command", text)
    assert code != 0, text  # refused, or no answer: never a success
    assert text.count(b"\n") == 1, text  # one line, no traceback
    # Replay with the secret-bearing broker config (its fast path does not connect).
    replay_cfg = scenario(tmp_path, "2024-08-19T00:00:00Z", "2024-08-19T06:00:00Z")
    lines = "\n".join(_broker_lines(port, user, tls))
    replay_cfg.write_text(replay_cfg.read_text() + "\n[sites.mqtt]\n" + lines + "\n")
    code, text = await _run("replay", str(replay_cfg), "--report-json",
                            str(tmp_path / "report.json"), env=env)  # fmt: skip
    out.add("replay", text)
    assert code == 0, text
    out.add("broker log", b.broker.log.read_bytes())
    watched = s.watched()
    assert out.leaks(watched) == []
    if case in ("wrong password", "unknown user", "broker certificate from an unknown CA"):
        assert failures, out.blobs["daemon stderr"]  # permanent: logged once, not retried
