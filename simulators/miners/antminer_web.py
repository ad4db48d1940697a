"""Stock Antminer web UI on port 80: CGI endpoints behind HTTP digest auth.

User root, password root, realm "antMiner Configuration"; sleep and wake go through
``miner-mode`` in ``set_miner_conf.cgi``; unknown paths answer a non-JSON 404.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from simulators.miners import replies
from simulators.miners.antminer import COMPILE_TIME, firmware_program
from simulators.miners.captures import template
from simulators.miners.digest import DigestRealm
from simulators.miners.fleet_web import FleetWebServer
from simulators.miners.host import permission_hint
from simulators.miners.miner import Refused, SimMiner

REALM = "antMiner Configuration"
WEB_PORT = 80
DEFAULT_WEB_PASSWORD = "root"  # noqa: S105  (the factory default pyasic also assumes)
_NOT_FOUND = "<html><head><title>404 Not Found</title></head><body>404 Not Found</body></html>"


class AntminerWeb(FleetWebServer):
    """The CGI web UI of every stock Antminer in a fleet: one app, one site per address."""

    def __init__(self, password: str = DEFAULT_WEB_PASSWORD) -> None:
        self.realm = DigestRealm(REALM, "root", password)
        self.miners: dict[str, SimMiner] = {}
        self.blink: dict[str, bool] = {}
        super().__init__()

    # -- request handling ---------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        miner = self.miners.get(sockname[0]) if sockname else None
        if miner is None:
            return web.Response(status=404, text=_NOT_FOUND, content_type="text/html")
        await miner.gate()
        if not self.realm.verify(request.method, request.headers.get("Authorization")):
            return web.Response(
                status=401,
                text="401 Unauthorized",
                headers={"WWW-Authenticate": self.realm.challenge()},
            )
        path = request.path
        if not path.startswith("/cgi-bin/") or not path.endswith(".cgi"):
            return web.Response(status=404, text=_NOT_FOUND, content_type="text/html")
        name = path.removeprefix("/cgi-bin/").removesuffix(".cgi")
        handler = getattr(self, f"_cgi_{name}", None)
        if handler is None:
            return web.Response(status=404, text=_NOT_FOUND, content_type="text/html")
        body: dict[str, Any] = {}
        if request.method == "POST":
            try:
                parsed = json.loads(await request.read() or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                return web.json_response({"stats": "error", "code": "M001", "msg": "Bad JSON"})
            body = parsed if isinstance(parsed, dict) else {}
        result: dict[str, Any] = handler(miner, body)
        return web.json_response(result)

    def _cgi_get_system_info(self, miner: SimMiner, _body: dict[str, Any]) -> dict[str, Any]:
        return {
            "minertype": miner.model.name,
            "nettype": "DHCP",
            "netdevice": "eth0",
            "macaddr": miner.mac,
            "hostname": miner.hostname,
            "ipaddress": miner.ip,
            "netmask": "255.0.0.0",
            "gateway": "",
            "dnsservers": "",
            "system_mode": "GNU/Linux",
            "system_kernel_version": "Linux 4.9.113 #1 SMP PREEMPT",
            "system_filesystem_version": COMPILE_TIME,
            "firmware_type": "Release",
            "serinum": miner.serial,
        }

    def _cgi_get_network_info(self, miner: SimMiner, _body: dict[str, Any]) -> dict[str, Any]:
        info = self._cgi_get_system_info(miner, _body)
        return {
            "nettype": "DHCP",
            "netdevice": "eth0",
            "macaddr": miner.mac,
            "ipaddress": miner.ip,
            "netmask": info["netmask"],
            "conf_nettype": "DHCP",
            "conf_hostname": miner.hostname,
            "conf_ipaddress": "",
            "conf_netmask": "",
            "conf_gateway": "",
            "conf_dnsservers": "",
        }

    def _cgi_get_miner_conf(self, miner: SimMiner, _body: dict[str, Any]) -> dict[str, Any]:
        sleeping = miner.read().mode.value == "sleep"
        pool = {"url": replies.POOL_URL, "user": f"hashspark.{miner.hostname}", "pass": "x"}
        empty = {"url": "", "user": "", "pass": ""}
        return {
            "pools": [pool, empty, empty],
            "api-listen": True,
            "api-network": True,
            "api-groups": "A:stats:pools:devs:summary:version",
            "api-allow": "A:0/0,W:*",
            "bitmain-fan-ctrl": False,
            "bitmain-fan-pwm": "100",
            "bitmain-use-vil": True,
            "bitmain-freq": "525",
            "bitmain-voltage": "1360",
            "bitmain-ccdelay": "0",
            "bitmain-pwth": "0",
            "bitmain-work-mode": "1" if sleeping else "0",
            "bitmain-freq-level": "100",
        }

    def _cgi_set_miner_conf(self, miner: SimMiner, body: dict[str, Any]) -> dict[str, Any]:
        mode = str(body.get("miner-mode", "0"))
        state = miner.state
        if mode == "1":
            result = miner.command(state.sleep)
        elif mode == "0":
            result = miner.command(state.wake)
        else:
            return {"stats": "error", "code": "M002", "msg": f"unsupported miner-mode {mode}"}
        if isinstance(result, Refused):
            return {"stats": "error", "code": "M001", "msg": result.reason}
        return {"stats": "success", "code": "M000", "msg": "OK!"}

    def _web_status(self, msg: str) -> dict[str, Any]:
        return {"STATUS": "S", "when": 0, "Msg": msg, "api_version": "1.0.0"}

    def _info(self, miner: SimMiner) -> dict[str, Any]:
        _, _, miner_version = firmware_program(miner)
        return {
            "miner_version": miner_version,
            "CompileTime": COMPILE_TIME,
            "type": miner.model.name,
        }

    def _cgi_summary(self, miner: SimMiner, _body: dict[str, Any]) -> dict[str, Any]:
        reading = miner.read()
        reply: dict[str, Any] = template("antminer_web_summary.json")
        reply["STATUS"]["when"] = int(miner.clock.now())
        reply["INFO"] = self._info(miner)
        entry = reply["SUMMARY"][0]
        rate_gh = round(reading.reported_hashrate_th * 1000, 2)
        entry.update(
            elapsed=int(reading.uptime_s),
            rate_5s=rate_gh,
            rate_30m=rate_gh,
            rate_avg=round(reading.hashrate_th * 1000, 2),
            rate_ideal=round(miner.model.hashrate_at_th(reading.power_target_w) * 1000, 2),
            hw_all=0,
        )
        return reply

    def _cgi_stats(self, miner: SimMiner, _body: dict[str, Any]) -> dict[str, Any]:
        reading = miner.read()
        model = miner.model
        chains = []
        for b in range(model.hashboards):
            pcb, chip = round(reading.board_temp_c[b]), round(reading.chip_temp_c[b])
            chains.append(
                {
                    "index": b,
                    "freq_avg": 525,
                    "rate_ideal": round(model.hashrate_at_th(reading.power_target_w) * 1000 / 3),
                    "rate_real": round(reading.board_hashrate_th[b] * 1000, 2),
                    "asic_num": model.chips_per_board,
                    "asic": "o" * model.chips_per_board,
                    "temp_pic": [pcb - 3, pcb - 2, pcb + 1, pcb],
                    "temp_pcb": [pcb - 3, pcb - 2, pcb + 1, pcb],
                    "temp_chip": [chip - 3, chip - 2, chip + 1, chip],
                    "hw": 0,
                    "eeprom_loaded": True,
                    "sn": f"{miner.serial}B{b}",
                    "hwp": 0,
                }
            )
        stats = {
            "elapsed": int(reading.uptime_s),
            "rate_5s": round(reading.reported_hashrate_th * 1000, 2),
            "rate_30m": round(reading.hashrate_th * 1000, 2),
            "rate_avg": round(reading.hashrate_th * 1000, 2),
            "rate_ideal": round(model.hashrate_at_th(reading.power_target_w) * 1000, 2),
            "rate_unit": "GH/s",
            "chain_num": model.hashboards,
            "fan_num": model.fans,
            "fan": list(reading.fan_rpm),
            "hwp_total": 0,
            "miner-mode": 1 if reading.mode.value == "sleep" else 0,
            "freq-level": 100,
            "chain": chains,
        }
        return {"STATUS": self._web_status("stats"), "INFO": self._info(miner), "STATS": [stats]}

    def _cgi_get_blink_status(self, miner: SimMiner, _body: dict[str, Any]) -> dict[str, Any]:
        return {"blink": self.blink.get(miner.ip, False)}

    def _cgi_blink(self, miner: SimMiner, body: dict[str, Any]) -> dict[str, Any]:
        on = str(body.get("blink", "false")).lower() == "true"
        self.blink[miner.ip] = on
        return {"code": "B000" if on else "B100"}


class WebEndpoint:
    """One miner's port-80 site on the shared web app."""

    def __init__(self, miner: SimMiner, app: AntminerWeb, port: int = WEB_PORT) -> None:
        self._miner = miner
        self._app = app
        self._port = port
        self._site: web.TCPSite | None = None
        app.miners[miner.ip] = miner

    async def start(self) -> None:
        """Listen on ``miner.ip:80`` (needs root)."""
        if self._site is not None:
            return
        await self._app.setup()
        site = self._app.site(self._miner.ip, self._port)
        try:
            await site.start()
        except OSError as exc:
            raise permission_hint(exc, self._port) from exc
        self._site = site

    async def stop(self) -> None:
        """Stop listening."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
