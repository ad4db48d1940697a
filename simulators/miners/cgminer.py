"""The cgminer-style JSON API on TCP 4028 that every family speaks, and its framing quirks.

One request per connection: the client sends ``{"command": "a+b", "parameter": "..."}``,
the miner answers and closes. Like cgminer, the request is read up to ``RECV_MAX_BYTES``;
anything longer is truncated and therefore invalid JSON. Plain-text requests
(``summary|``) get cgminer's plain-text reply.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Protocol

from simulators.miners.miner import SimMiner

RECV_MAX_BYTES = 65500  #: cgminer's RECVSIZE: the most it reads from one request
IDLE_TIMEOUT_S = 10.0  #: a client that sends nothing is dropped after this long
#: cgminer answers whatever one recv() returned; we wait this long for a split request
#: to become whole JSON before answering what arrived (usually "Invalid JSON").
GRACE_S = 0.2

Reply = dict[str, Any]


class ApiFamily(Protocol):
    """What a firmware family plugs into the 4028 server."""

    description: str  # the STATUS "Description", e.g. "cgminer 4.11.1"
    null_terminated: bool  # cgminer and bmminer end replies with a NUL byte

    def answer(self, command: str, parameter: str | None, when: int) -> Reply:
        """The reply to one (non-joined) command."""
        ...


def status(
    family: ApiFamily, when: int, code: int, msg: str, *, ok: bool = True
) -> list[dict[str, Any]]:
    """A cgminer STATUS section."""
    return [
        {
            "STATUS": "S" if ok else "E",
            "When": when,
            "Code": code,
            "Msg": msg,
            "Description": family.description,
        }
    ]


def error(family: ApiFamily, when: int, code: int, msg: str) -> Reply:
    """A whole error reply."""
    return {"STATUS": status(family, when, code, msg, ok=False), "id": 1}


def invalid_command(family: ApiFamily, when: int) -> Reply:
    """cgminer's reply to a command it does not know."""
    return error(family, when, 14, "Invalid command")


def _answer_json(family: ApiFamily, request: Any, when: int) -> Reply:
    if not isinstance(request, dict) or not isinstance(request.get("command"), str):
        return error(family, when, 21, "Missing JSON 'command'")
    command: str = request["command"].strip()
    raw_param = request.get("parameter")
    parameter = None if raw_param is None else str(raw_param)
    if "+" not in command:
        return family.answer(command, parameter, when)
    joined: Reply = {}
    for part in command.split("+"):
        if part and part not in joined:
            joined[part] = [family.answer(part, parameter, when)]
    joined["id"] = 1
    return joined


def _plain(reply: Reply) -> str:
    """cgminer's plain-text form: ``KEY=VALUE,...|`` per section entry."""
    parts: list[str] = []
    for key, value in reply.items():
        if not isinstance(value, list):
            continue
        for entry in value:
            if isinstance(entry, dict):
                fields = [f"{k}={v}" for k, v in entry.items() if not isinstance(v, dict | list)]
                prefix = "" if key == "STATUS" else f"{key}={len(parts) - 1},"
                parts.append(prefix + ",".join(fields) + "|")
    return "".join(parts)


def render(family: ApiFamily, payload: bytes, when: int) -> bytes:
    """The bytes a miner sends back for one request's bytes."""
    text = payload.decode("utf-8", errors="replace").strip("\x00 \r\n\t")
    tail = b"\x00" if family.null_terminated else b""
    if text.startswith("{") or len(payload) >= RECV_MAX_BYTES:
        try:
            reply = _answer_json(family, json.loads(text), when)
        except json.JSONDecodeError:
            reply = error(family, when, 23, "Invalid JSON")
        return json.dumps(reply, separators=(",", ":")).encode() + tail
    command, _, parameter = text.partition("|")
    reply = family.answer(command.strip(), parameter or None, when)
    return _plain(reply).encode() + tail


def _complete(buffer: bytes) -> bool:
    """True once the request can be answered: a full JSON value, or any plain text."""
    text = buffer.decode("utf-8", errors="replace").strip("\x00 \r\n\t")
    if not text:
        return False
    if not text.startswith("{"):
        return True
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


class ApiProtocol(asyncio.Protocol):
    """One 4028 connection: read one request, let the faults have their say, answer, close."""

    def __init__(self, miner: SimMiner, family: ApiFamily, now: Callable[[], float]) -> None:
        self._miner = miner
        self._family = family
        self._now = now
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self.on_close: Callable[[ApiProtocol], None] | None = None

    def abort(self) -> None:
        """Drop the connection now (the miner went away)."""
        if self._transport is not None:
            self._transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the idle timer."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT_S, transport.close)

    def data_received(self, data: bytes) -> None:
        """Collect the request; answer once it is whole or too long."""
        if self._task is not None:
            return
        self._buffer += data
        if len(self._buffer) >= RECV_MAX_BYTES:
            del self._buffer[RECV_MAX_BYTES:]
            self._start_answer()
        elif _complete(bytes(self._buffer)):
            self._start_answer()
        else:
            if self._idle is not None:
                self._idle.cancel()
            self._idle = asyncio.get_running_loop().call_later(GRACE_S, self._start_answer)

    def eof_received(self) -> bool:
        """A client that half-closes has sent all it will: answer what arrived."""
        if self._task is None and self._buffer:
            self._start_answer()
        return True  # keep the transport open to write the reply

    def connection_lost(self, exc: Exception | None) -> None:
        """The client went away: drop any pending reply."""
        if self._idle is not None:
            self._idle.cancel()
        if self._task is not None:
            self._task.cancel()
        self._transport = None
        if self.on_close is not None:
            self.on_close(self)

    def _start_answer(self) -> None:
        if self._task is not None or self._transport is None:
            return
        if self._idle is not None:
            self._idle.cancel()
        self._task = asyncio.get_running_loop().create_task(self._answer(bytes(self._buffer)))

    async def _answer(self, payload: bytes) -> None:
        await self._miner.gate()
        reply = render(self._family, payload, int(self._now()))
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(reply)
            transport.close()
