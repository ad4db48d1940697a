"""Helpers for simulator tests: bounded pyasic calls and meter reads."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pyasic

from simulators.miners.meter import Meter

PYASIC_TIMEOUT_S = 20.0


async def bounded(awaitable: Any, timeout_s: float = PYASIC_TIMEOUT_S) -> Any:
    """Await a pyasic call with a deadline (4028 reads can otherwise hang ~100 s)."""
    return await asyncio.wait_for(awaitable, timeout_s)


async def get_miner(ip: str) -> Any:
    """pyasic's discovery of one address."""
    return await bounded(pyasic.get_miner(ip))


async def meter_miner(meter: Meter, ip: str) -> dict[str, Any]:
    """The meter's ground truth for one miner."""
    async with aiohttp.ClientSession() as session, session.get(f"{meter.url}/meter") as resp:
        data = await resp.json()
    [row] = [m for m in data["miners"] if m["ip"] == ip]
    assert isinstance(row, dict)
    return row


async def raw_4028(ip: str, payload: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes to a miner's 4028 port and read the reply until it closes."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, 4028), 5)
    writer.write(payload)
    await writer.drain()
    if half_close:
        writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    return data


def parse_4028(data: bytes) -> dict[str, Any]:
    """A 4028 JSON reply (without cgminer's trailing NUL)."""
    parsed = json.loads(data.rstrip(b"\x00"))
    assert isinstance(parsed, dict)
    return parsed


async def post_fault(meter: Meter, ips: list[str], fault: dict[str, Any]) -> None:
    """Inject a fault through the meter's run-time API."""
    body = {"miners": ips, "fault": fault}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{meter.url}/faults", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def clear_faults(meter: Meter, ips: list[str]) -> None:
    """Clear faults through the meter's run-time API."""
    async with (
        aiohttp.ClientSession() as session,
        session.delete(f"{meter.url}/faults", json={"miners": ips}) as resp,
    ):
        assert resp.status == 200, await resp.text()
