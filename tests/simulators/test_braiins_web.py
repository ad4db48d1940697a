"""Braiins OS+ port 80: the web root and the GraphQL API, spoken to as a client would.

The same API through unmodified asic-rs (discovery, reads, pause, resume, power target,
faults) is held by tests/miners (test_driver_asicrs.py, and the asic-rs runs of
test_driver_families.py and test_driver_faults.py, in the slow suite).
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import pytest

from simulators.miners.braiins import BOS_VERSION
from simulators.miners.faults import Fault, FaultKind
from simulators.miners.graphql_lite import GraphQLError, parse
from simulators.miners.miner import Family
from tests.simulators.conftest import FleetFactory, ManualClock
from tests.simulators.helpers import meter_miner

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="port 80 needs root")

LOGIN = """mutation ($username: String!, $password: String!) {
  auth { login(username: $username, password: $password) {
    __typename ... on VoidResult { void } ... on AuthError { message } } }
}"""
STOP = "mutation { bosminer { stop { __typename ... on VoidResult { void } } } }"
TARGET = """mutation ($limit: Int!) { bosminer { config {
  updateAutotuning(input: { powerTarget: $limit }, apply: true) {
    __typename
    ... on AutotuningOut { autotuning { powerTarget } }
    ... on AutotuningError { message }
  } } } }"""


async def _gql(
    session: aiohttp.ClientSession, ip: str, query: str, **variables: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query}
    if variables:
        body["variables"] = variables
    async with session.post(f"http://{ip}/graphql", json=body) as resp:
        assert resp.status == 200
        reply: dict[str, Any] = await resp.json()
        return reply


async def test_identification_answers_without_a_session(make_fleet: FleetFactory) -> None:
    fleet, _ = await make_fleet([(Family.BRAIINS, "S21", 1)])
    ip = fleet.first_ip
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{ip}/") as resp:
            assert "Braiins OS" in await resp.text()
        model = await _gql(session, ip, "{ bosminer { info { modelName } } }")
        version = await _gql(session, ip, "{ bos { info { version { full isPlus } } } }")
        unknown = await _gql(session, ip, "{ bosminer { info { noSuchField } } }")
    assert model == {"data": {"bosminer": {"info": {"modelName": "Antminer S21"}}}}
    assert version["data"]["bos"]["info"]["version"] == {"full": BOS_VERSION, "isPlus": True}
    assert unknown == {
        "errors": [{"message": 'Cannot query field "noSuchField" on type "BosminerInfo".'}]
    }


async def test_commands_need_a_session_and_move_the_meter(
    make_fleet: FleetFactory, clock: ManualClock
) -> None:
    fleet, meter = await make_fleet([(Family.BRAIINS, "S19jPro", 1)])
    ip = fleet.first_ip
    jar = aiohttp.CookieJar(unsafe=True)  # keeps cookies of IP-address hosts
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        refused = await _gql(session, ip, STOP)
        assert refused["data"] == {"bosminer": None}
        assert refused["errors"][0]["message"] == "Unauthorized"
        wrong = await _gql(session, ip, LOGIN, username="root", password="nope")
        assert wrong["data"]["auth"]["login"]["__typename"] == "AuthError"
        assert "session_id" not in {c.key for c in session.cookie_jar}
        ok = await _gql(session, ip, LOGIN, username="root", password="root")
        assert ok["data"]["auth"]["login"] == {"__typename": "VoidResult", "void": None}

        stopped = await _gql(session, ip, STOP)
        assert stopped == {
            "data": {"bosminer": {"stop": {"__typename": "VoidResult", "void": None}}}
        }
        clock.advance(5)
        assert (await meter_miner(meter, ip))["mode"] == "sleep"

        too_low = await _gql(session, ip, TARGET, limit=100)
        result = too_low["data"]["bosminer"]["config"]["updateAutotuning"]
        assert result["__typename"] == "AutotuningError"
        assert "out of range" in result["message"]
        set_ = await _gql(session, ip, TARGET, limit=1841)
        result = set_["data"]["bosminer"]["config"]["updateAutotuning"]
        assert result == {"__typename": "AutotuningOut", "autotuning": {"powerTarget": 1841}}
        assert (await meter_miner(meter, ip))["power_target_w"] == 1841

        await fleet.apply_fault([ip], Fault(FaultKind.REJECT))
        rejected = await _gql(session, ip, STOP.replace("stop", "start"))
        assert rejected["data"] == {"bosminer": {"start": None}}
        assert rejected["errors"] == [
            {"message": "command rejected", "path": ["bosminer", "start"]}
        ]


async def test_a_dead_miner_drops_open_connections(make_fleet: FleetFactory) -> None:
    fleet, _ = await make_fleet([(Family.BRAIINS, "S19jPro", 1)])
    ip = fleet.first_ip
    query = "{ bos { hostname } }"
    async with aiohttp.ClientSession() as session:  # keeps its connection alive
        assert "errors" not in await _gql(session, ip, query)
        await fleet.apply_fault([ip], Fault(FaultKind.UNREACHABLE))
        with pytest.raises(aiohttp.ClientError):
            await _gql(session, ip, query)


@pytest.mark.parametrize(
    "text",
    [
        "{ a { b } ",  # unclosed
        "query { ...Named }",  # named fragments
        "subscription { a }",
        "{ a } { b }",  # two operations
        "{ a @include(if: true) }",
    ],
)
def test_what_the_graphql_subset_refuses(text: str) -> None:
    with pytest.raises(GraphQLError):
        parse(text)


def test_values_parse_as_graphql_has_them() -> None:
    op = parse(
        'mutation M($x: [Int!]! = [1]) { f(a: 1, b: -2.5e1, c: "q\\"\\u00e9", d: ENUM, '
        "e: null, f: {g: [true, false]}, h: $x) { i: j } }"
    )
    assert op.kind == "mutation"
    assert op.defaults == (("x", [1]),)
    [field] = op.selections
    assert dict(field.args) | {"h": None} == {  # type: ignore[union-attr]
        "a": 1,
        "b": -25.0,
        "c": 'q"é',
        "d": "ENUM",
        "e": None,
        "f": {"g": [True, False]},
        "h": None,
    }
