"""Braiins OS+ on port 80: the web root, the GraphQL API (``/graphql``) and LuCI's login.

Over 300 lines: one firmware's GraphQL surface (queries, mutations, its union results).

Field names, types and union results follow BOS+'s GraphQL schema as of 24.09 (``Query``:
``bos``, ``bosminer``, ``events``; ``Mutation``: ``auth``, ``bos``, ``bosminer``), the subset
a miner-management client uses:

- ``bos``: ``hostname``, ``macAddress``, ``faultLight``, ``info { version { full isPlus } }``,
  ``uptime { durationS since }``;
- ``bosminer.info``: ``modelName``, ``workSolver`` (real and nominal hashrate, per-board
  ``childSolvers`` with ``hwDetails`` and ``temperatures``), ``fans``, ``summary { power }``,
  ``poolGroups``; ``bosminer.config`` (``BosminerConfig``: ``autotuning``, ``groups``);
  ``bosminer.metadata.autotuning`` (the power-target range); ``events.appeals``;
- mutations: ``auth.login`` (sets the ``session_id`` cookie), ``bosminer.stop`` /
  ``bosminer.start`` (pause and resume mining, as gRPC's ``PauseMining``/``ResumeMining``),
  ``bosminer.config.updateAutotuning`` (the power target; out of range is an
  ``AutotuningError``), ``bos.setFaultLight``.

Queries answer without a session (a client identifies a miner by ``modelName`` and
``bos.info.version`` before it logs in); mutations other than ``auth.login`` need the
session cookie. A command the miner refuses (the "reject" fault) is a field error in
``errors``. LuCI: ``POST /cgi-bin/luci`` (``luci_username``, ``luci_password``) logs in,
``/cgi-bin/luci/admin/network/iface_status/lan`` gives the MAC.

Not implemented (a GraphQL error names the field): hashrate targets, pool and cooling
configuration, reboot and restart, logs, upgrades, subscriptions.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
from typing import Any
from urllib.parse import parse_qs

import structlog
from aiohttp import web

from simulators.miners import replies
from simulators.miners.braiins import BOS_VERSION
from simulators.miners.braiins_tuner import Tuner
from simulators.miners.fleet_web import FleetWebServer
from simulators.miners.graphql_lite import FieldError, GraphQLError, Node, execute
from simulators.miners.miner import Refused, SimMiner
from simulators.miners.state import MinerReading

WEB_PORT = 80
_INT32 = 2**31
_ROOT_PAGE = (
    "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
    "<title>Braiins OS</title></head><body><div id=app>Braiins OS+</div></body></html>"
)
#: Sessions a miner keeps; the oldest is dropped past this (clients that log in on every
#: request must not grow the server without bound).
MAX_SESSIONS = 64
_PRUNE_AT = 64  # closed connections are forgotten when a miner has this many recorded
_NOT_FOUND = "<html><head><title>404 Not Found</title></head><body>404 Not Found</body></html>"

_log = structlog.get_logger("hashspark.simulate")


def _mhs(th: float) -> float:
    return th * 1e6


def _gql_int(watts: float, fallback: float) -> int:
    """A wattage as GraphQL's Int (signed 32-bit) carries it; the truth where it cannot."""
    return round(watts) if math.isfinite(watts) and -_INT32 <= watts < _INT32 else round(fallback)


def _void() -> Node:
    return Node("VoidResult", {"void": None})


def _done(result: Refused | object) -> Node:
    if isinstance(result, Refused):
        raise FieldError(result.reason)
    return _void()


class BraiinsMinerApi:
    """The GraphQL objects of one miner."""

    def __init__(self, miner: SimMiner, tuner: Tuner) -> None:
        self.miner = miner
        self.tuner = tuner
        self.fault_light = False

    # -- queries --------------------------------------------------------------------

    def query(self) -> Node:
        return Node(
            "Query",
            {"bos": self._bos, "bosminer": self._bosminer, "events": self._events},
        )

    def _bos(self) -> Node:
        miner = self.miner
        reading = miner.read()
        now = miner.clock.now()
        version = Node("BosVersion", {"full": BOS_VERSION, "isPlus": True})
        uptime = Node(
            "BosUptime", {"durationS": int(reading.uptime_s), "since": int(now - reading.uptime_s)}
        )
        return Node(
            "BosQuery",
            {
                "hostname": miner.hostname,
                "macAddress": miner.mac,
                "faultLight": self.fault_light,
                "info": Node("BosInfo", {"version": version, "mode": "NAND"}),
                "uptime": uptime,
            },
        )

    def _bosminer(self) -> Node:
        return Node(
            "BosminerQuery",
            {"info": self._info, "config": self._config, "metadata": self._metadata},
        )

    def _hashrate(self, th: float) -> Node:
        mhs = _mhs(th)
        names = ("mhsAv", "mhs5S", "mhs15S", "mhs30S", "mhs1M", "mhs5M", "mhs15M", "mhs30M")
        return Node("RealHashrate", dict.fromkeys(names, mhs))

    def _power(self, reading: MinerReading) -> Node:
        watts = _gql_int(self.miner.reported_power_w(), reading.power_w)
        return Node(
            "PowerInfo",
            {"limitW": round(reading.power_target_w), "approxConsumptionW": watts},
        )

    def _board(self, reading: MinerReading, b: int) -> Node:
        model = self.miner.model
        per_board = model.hashrate_at_th(reading.power_target_w) / model.hashboards
        temps = [
            Node("Temperature", {"name": "Board", "degreesC": reading.board_temp_c[b]}),
            Node("Temperature", {"name": "Chip", "degreesC": reading.chip_temp_c[b]}),
        ]
        details = {
            "chips": model.chips_per_board,
            "frequencyMhz": 525.0 if reading.load > 0 else 0.0,
            "voltageV": 13.6,
            "hbSerialNumber": f"{self.miner.serial}B{b}",
        }
        return Node(
            "WorkSolverInfo",
            {
                "name": str(b + 1),
                "nominalMhs": _mhs(per_board),
                "realHashrate": self._hashrate(reading.board_hashrate_th[b]),
                "hwErrorMhs15M": 0.0,
                "hwDetails": Node("HwDetails", details),
                "temperatures": temps,
            },
        )

    def _info(self) -> Node:
        miner = self.miner
        reading = miner.read()
        boards = [self._board(reading, b) for b in range(miner.model.hashboards)]
        solver = Node(
            "WorkSolverInfo",
            {
                "name": "miner",
                "nominalMhs": _mhs(miner.model.hashrate_at_th(reading.power_target_w)),
                "realHashrate": self._hashrate(reading.reported_hashrate_th),
                "hwErrorMhs15M": 0.0,
                "power": self._power(reading),
                "childSolvers": boards,
            },
        )
        top = max(miner.model.fan_max_rpm, 1)
        fans = [
            Node("FanInfo", {"name": str(i), "rpm": rpm, "speed": round(100 * rpm / top)})
            for i, rpm in enumerate(reading.fan_rpm)
        ]
        summary = Node(
            "SummaryInfo",
            {
                "realHashrate": self._hashrate(reading.reported_hashrate_th),
                "poolStatus": "ALIVE",
                "power": self._power(reading),
            },
        )
        return Node(
            "BosminerInfo",
            {
                "modelName": miner.model.name,
                "workSolver": solver,
                "fans": fans,
                "summary": summary,
                "poolGroups": [self._pool_group(reading)],
            },
        )

    def _pool_group(self, reading: MinerReading) -> Node:
        accepted = 1 + int(reading.uptime_s // 10)
        shares = Node(
            "SharesInfo",
            {"acceptedSolutions": accepted, "rejectedSolutions": 0, "staleSolutions": 0},
        )
        pool = Node(
            "PoolInfo",
            {
                "url": replies.POOL_URL,
                "user": f"hashspark.{self.miner.hostname}",
                "status": "ALIVE",
                "active": reading.load > 0,
                "shares": shares,
            },
        )
        return Node("GroupInfo", {"name": "Default", "pools": [pool]})

    def _autotuning(self) -> Node:
        watt = round(self.miner.read().power_target_w)
        return Node(
            "Autotuning",
            {"enabled": True, "mode": "POWER_TARGET", "powerTarget": watt, "hashrateTarget": None},
        )

    def _config(self) -> Node:
        pool = Node(
            "PoolConfig",
            {"url": replies.POOL_URL, "user": f"hashspark.{self.miner.hostname}", "enabled": True},
        )
        group = Node(
            "GroupConfig",
            {
                "id": "0",
                "name": "Default",
                "strategy": Node("QuotaStrategy", {"quota": 1}),
                "pools": [pool],
            },
        )
        return Node("BosminerConfig", {"autotuning": self._autotuning, "groups": [group]})

    def _metadata(self) -> Node:
        model = self.miner.model
        power = Node(
            "UsizeMetadata",
            {
                "default": round(model.nameplate_power_w),
                "min": round(model.min_power_target_w),
                "max": round(model.max_power_target_w),
                "unit": "W",
            },
        )
        autotuning = Node(
            "AutotuningMetadata",
            {
                "enabled": Node("BooleanMetadata", {"default": True}),
                "modes": ["POWER_TARGET"],
                "modeDefault": "POWER_TARGET",
                "powerTarget": power,
            },
        )
        return Node("BosminerMetadata", {"autotuning": autotuning})

    def _events(self) -> Node:
        return Node("EventQuery", {"appeals": []})

    # -- mutations ------------------------------------------------------------------

    def mutation(self, session: _Session) -> Node:
        def need_session(node: Node) -> Any:
            def resolve() -> Node:
                if not session.valid:
                    raise FieldError("Unauthorized")
                return node

            return resolve

        actions = Node(
            "BosminerMutation",
            {"stop": self._stop, "start": self._start, "config": self._configurator},
        )
        bos = Node("BosMutation", {"setFaultLight": self._set_fault_light})
        return Node(
            "Mutation",
            {
                "auth": Node("Auth", {"login": session.login}),
                "bosminer": need_session(actions),
                "bos": need_session(bos),
            },
        )

    def _stop(self) -> Node:
        return _done(self.miner.command(self.miner.state.sleep))

    def _start(self) -> Node:
        return _done(self.miner.command(self.miner.state.wake))

    def _set_fault_light(self, enable: bool) -> Node:
        self.fault_light = bool(enable)
        return Node("BosFaultLight", {"enabled": self.fault_light})

    def _configurator(self) -> Node:
        return Node("BosminerConfigurator", {"updateAutotuning": self._update_autotuning})

    def _update_autotuning(self, input: dict[str, Any], apply: bool = True) -> Node:
        watt = input.get("powerTarget")
        model = self.miner.model
        if not isinstance(watt, int) or not (
            model.min_power_target_w <= watt <= model.max_power_target_w
        ):
            message = (
                f"Power target {watt} W is out of range "
                f"{model.min_power_target_w:.0f}..{model.max_power_target_w:.0f} W"
            )
            return Node(
                "AutotuningError",
                {"message": message, "powerTarget": message},
                implements=("Error",),
            )
        if apply:

            def set_target(now: float) -> None:
                self.miner.state.set_power_target(now, watt)
                self.tuner.set_target(watt, now)

            result = self.miner.command(set_target)
            if isinstance(result, Refused):
                raise FieldError(result.reason)
        return Node("AutotuningOut", {"autotuning": self._autotuning()})


def _new_session(sessions: dict[str, None]) -> str:
    token = secrets.token_hex(16)
    sessions[token] = None
    while len(sessions) > MAX_SESSIONS:
        del sessions[next(iter(sessions))]
    return token


class _Session:
    """One request's view of the miner's sessions: who it is, and a login's new cookie."""

    def __init__(self, sessions: dict[str, None], cookie: str | None, password: str) -> None:
        self._sessions = sessions
        self._password = password
        self.valid = cookie is not None and cookie in sessions
        self.new: str | None = None

    def login(self, username: str, password: str) -> Node:
        if username != "root" or password != self._password:
            return Node(
                "AuthError", {"message": "Invalid username or password"}, implements=("Error",)
            )
        token = _new_session(self._sessions)
        self.valid = True
        self.new = token
        return _void()


class BraiinsWeb(FleetWebServer):
    """The port-80 web server of every Braiins OS+ miner in a fleet: one app, a site per miner.

    Sessions are kept per miner across a listener's stop and start, as the gRPC side's
    tokens are.
    """

    def __init__(self, password: str) -> None:
        self.password = password
        self.miners: dict[str, BraiinsMinerApi] = {}
        self.sessions: dict[str, dict[str, None]] = {}  # per miner, oldest first
        # Open connections per miner: a miner that goes down drops them (clients keep
        # connections alive, and a stopped listener alone leaves those answering).
        self.connections: dict[str, set[asyncio.Transport]] = {}
        super().__init__()
        self.warned = False

    def add(self, miner: SimMiner, tuner: Tuner) -> None:
        """Serve one more miner (its address picks it)."""
        self.miners[miner.ip] = BraiinsMinerApi(miner, tuner)
        self.sessions[miner.ip] = {}

    def drop_connections(self, ip: str) -> None:
        """Abort every open connection to one miner (it went down)."""
        for transport in self.connections.pop(ip, set()):
            transport.abort()

    def _track(self, ip: str, transport: asyncio.Transport) -> None:
        open_ = self.connections.setdefault(ip, set())
        if len(open_) >= _PRUNE_AT:
            open_ -= {t for t in open_ if t.is_closing()}
        open_.add(transport)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        api = self.miners.get(sockname[0]) if sockname else None
        if api is None:
            return web.Response(status=404, text=_NOT_FOUND, content_type="text/html")
        if request.transport is not None:
            self._track(api.miner.ip, request.transport)
        await api.miner.gate()
        path = request.path
        if path == "/graphql" and request.method == "POST":
            return await self._graphql(request, api)
        if path == "/cgi-bin/luci" and request.method == "POST":
            return await self._luci_login(request, api)
        if path.startswith("/cgi-bin/luci/"):
            return self._luci(path.removeprefix("/cgi-bin/luci/"), request, api)
        if path in ("/", "/index.html") and request.method == "GET":
            return web.Response(text=_ROOT_PAGE, content_type="text/html")
        return web.Response(status=404, text=_NOT_FOUND, content_type="text/html")

    async def _graphql(self, request: web.Request, api: BraiinsMinerApi) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"errors": [{"message": "Invalid JSON body"}]}, status=400)
        query = body.get("query") if isinstance(body, dict) else None
        variables = body.get("variables") if isinstance(body, dict) else None
        if not isinstance(query, str) or not isinstance(variables, dict | None):
            return web.json_response({"errors": [{"message": "Invalid request"}]}, status=400)
        session = _Session(
            self.sessions[api.miner.ip], request.cookies.get("session_id"), self.password
        )

        def root(kind: str) -> Node:
            if kind == "query":
                return api.query()
            if kind == "mutation":
                return api.mutation(session)
            raise GraphQLError(f"Unsupported operation {kind!r}")

        response = web.json_response(execute(root, query, variables))
        if session.new is not None:
            response.set_cookie("session_id", session.new, path="/", httponly=True)
        return response

    def _luci(self, page: str, request: web.Request, api: BraiinsMinerApi) -> web.Response:
        if request.cookies.get("session_id") not in self.sessions[api.miner.ip]:
            return web.Response(status=403, text="Forbidden")
        if page == "admin/network/iface_status/lan":
            return web.json_response([{"macaddr": api.miner.mac, "ifname": "eth0"}])
        if page == "":
            return web.Response(text=_ROOT_PAGE, content_type="text/html")
        return web.Response(status=404, text=_NOT_FOUND, content_type="text/html")

    async def _luci_login(self, request: web.Request, api: BraiinsMinerApi) -> web.Response:
        form = parse_qs((await request.read()).decode("utf-8", "replace"))
        user = form.get("luci_username", [""])[0]
        password = form.get("luci_password", [""])[0]
        if user != "root" or password != self.password:
            return web.Response(status=403, text="Invalid username and/or password")
        token = _new_session(self.sessions[api.miner.ip])
        response = web.Response(status=302, headers={"Location": "/cgi-bin/luci/"})
        response.set_cookie("session_id", token, path="/", httponly=True)
        return response


class BraiinsWebEndpoint:
    """One miner's port-80 site on the shared app.

    Port 80 needs root (or CAP_NET_BIND_SERVICE). Without it the miner runs without its web
    UI: its gRPC and 4028 APIs still answer (all pyasic needs), but asic-rs, which reads BOS+
    through GraphQL, cannot identify it; a warning says so once per fleet.
    """

    def __init__(self, miner: SimMiner, app: BraiinsWeb, port: int = WEB_PORT) -> None:
        self._miner = miner
        self._app = app
        self._port = port
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        """Listen on ``miner.ip:80`` where allowed."""
        if self._site is not None:
            return
        await self._app.setup()
        site = self._app.site(self._miner.ip, self._port)
        try:
            await site.start()
        except PermissionError:
            if not self._app.warned:
                self._app.warned = True
                _log.warning(
                    "braiins_web_not_served",
                    reason=f"port {self._port} needs root or CAP_NET_BIND_SERVICE",
                    effect="gRPC and 4028 answer; GraphQL clients (asic-rs) cannot identify",
                )
            return
        self._site = site

    async def stop(self) -> None:
        """Stop listening."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        self._app.drop_connections(self._miner.ip)
