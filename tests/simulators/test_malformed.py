"""Malformed input gets the firmware's error reply, and every other miner keeps serving."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from grpclib import GRPCError, Status
from grpclib.client import Channel
from pyasic.web.braiins_os.proto.braiins.bos.v1 import AuthenticationServiceStub, LoginRequest

from simulators.miners.cgminer import RECV_MAX_BYTES
from simulators.miners.miner import Family
from tests.simulators.conftest import FleetFactory
from tests.simulators.helpers import get_miner, meter_miner, parse_4028, raw_4028


@pytest.mark.parametrize(
    ("payload", "code", "msg"),
    [
        (b'{"command": "summary"', 23, "Invalid JSON"),
        (b'{"command": summary}', 23, "Invalid JSON"),
        (b'{"command": "selfdestruct"}', 14, "Invalid command"),
        (b'{"parameter": "x"}', 21, "Missing JSON 'command'"),
    ],
    ids=["truncated", "not-json", "unknown-command", "no-command"],
)
@pytest.mark.parametrize("family", [Family.LUXOS, Family.ANTMINER, Family.BRAIINS])
async def test_bad_4028_requests_get_cgminer_errors(
    make_fleet: FleetFactory, family: Family, payload: bytes, code: int, msg: str
) -> None:
    fleet, _ = await make_fleet([(family, "S19jPro", 2)])
    reply = parse_4028(await raw_4028(fleet.first_ip, payload, half_close=True))
    assert reply["STATUS"][0]["STATUS"] == "E"
    assert (reply["STATUS"][0]["Code"], reply["STATUS"][0]["Msg"]) == (code, msg)
    ok = parse_4028(await raw_4028(fleet.last_ip, b'{"command": "summary"}'))
    assert ok["STATUS"][0]["STATUS"] == "S"


@pytest.mark.parametrize("family", [Family.LUXOS, Family.ANTMINER, Family.BRAIINS])
async def test_oversized_request_is_cut_at_recvsize_and_nobody_else_notices(
    make_fleet: FleetFactory, family: Family
) -> None:
    fleet, _ = await make_fleet([(family, "S19jPro", 2)])
    payload = b'{"command": "' + b"a" * (2 * RECV_MAX_BYTES) + b'"}'
    try:
        reply = parse_4028(await raw_4028(fleet.first_ip, payload, half_close=True))
    except ConnectionResetError:
        pass  # like cgminer: it answers after one read and closes with our bytes unread
    else:
        assert reply["STATUS"][0]["Msg"] == "Invalid JSON"
    for ip in (fleet.first_ip, fleet.last_ip):
        ok = parse_4028(await raw_4028(ip, b'{"command": "summary"}'))
        assert ok["STATUS"][0]["STATUS"] == "S"


async def test_plain_text_request_gets_a_plain_text_reply(make_fleet: FleetFactory) -> None:
    fleet, _ = await make_fleet([(Family.ANTMINER, "S19jPro", 1)])
    data = await raw_4028(fleet.first_ip, b"summary|")
    assert data.startswith(b"STATUS=S,")
    assert b"GHS 5s=" in data


async def test_client_vanishing_mid_request_harms_nobody(make_fleet: FleetFactory) -> None:
    fleet, meter = await make_fleet([(Family.LUXOS, "S19jPro", 2)])
    for _ in range(20):
        _, writer = await asyncio.open_connection(fleet.first_ip, 4028)
        writer.write(b'{"command": "stat')
        await writer.drain()
        writer.transport.abort()
    assert await get_miner(fleet.first_ip) is not None
    assert await get_miner(fleet.last_ip) is not None
    assert (await meter_miner(meter, fleet.first_ip))["mode"] == "normal"


async def test_oversized_and_bad_web_bodies_are_refused(make_fleet: FleetFactory) -> None:
    fleet, meter = await make_fleet([(Family.ANTMINER, "S19jPro", 2)])
    url = f"http://{fleet.first_ip}/cgi-bin/set_miner_conf.cgi"
    auth = httpx.DigestAuth("root", "root")
    async with httpx.AsyncClient(timeout=5) as client:
        big = await client.post(url, auth=auth, content=b"{" + b" " * 200_000 + b"}")
        bad = await client.post(url, auth=auth, content=b'{"miner-mode": ')
        other = await client.get(f"http://{fleet.last_ip}/cgi-bin/get_system_info.cgi", auth=auth)
    assert big.status_code == 413
    assert bad.json()["stats"] == "error"
    assert (await meter_miner(meter, fleet.first_ip))["mode"] == "normal"
    assert other.json()["minertype"] == "Antminer S19j Pro"


async def test_grpc_login_with_a_wrong_password_is_unauthenticated(
    make_fleet: FleetFactory,
) -> None:
    fleet, _ = await make_fleet([(Family.BRAIINS, "S21", 1)])
    async with Channel(fleet.first_ip, 50051) as channel:
        stub = AuthenticationServiceStub(channel)
        with pytest.raises(GRPCError) as raised:
            await stub.login(LoginRequest(username="root", password="nope"), timeout=5)
    assert raised.value.status is Status.UNAUTHENTICATED


async def test_web_client_vanishing_mid_request_harms_nobody(make_fleet: FleetFactory) -> None:
    fleet, _ = await make_fleet([(Family.ANTMINER, "S21", 1)])
    for _ in range(10):
        _, writer = await asyncio.open_connection(fleet.first_ip, 80)
        writer.write(b"POST /cgi-bin/set_miner_conf.cgi HTTP/1.1\r\nHost: x\r\nContent-Length: 500")
        await writer.drain()
        writer.transport.abort()
    url = f"http://{fleet.first_ip}/cgi-bin/get_system_info.cgi"
    async with httpx.AsyncClient(timeout=5) as client:
        resp = await client.get(url, auth=httpx.DigestAuth("root", "root"))
    assert resp.json()["minertype"] == "Antminer S21"
