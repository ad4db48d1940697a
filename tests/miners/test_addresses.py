"""Address specs: single, FIRST-LAST, CIDR; and the config's count check."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adapters.miners.addresses import AddressError, expand, expand_all
from controller.app.fleet_cmd import compress
from controller.config import MinerGroup


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.43.0.7", ["127.43.0.7"]),
        ("127.43.0.254-127.43.1.1", ["127.43.0.254", "127.43.0.255", "127.43.1.0", "127.43.1.1"]),
        (" 127.43.0.1 - 127.43.0.2 ", ["127.43.0.1", "127.43.0.2"]),
        ("127.43.0.0/30", ["127.43.0.1", "127.43.0.2"]),
        ("127.43.0.9/32", ["127.43.0.9"]),
    ],
)
def test_expand(spec: str, expected: list[str]) -> None:
    assert expand(spec) == expected


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("127.43.0.9-127.43.0.1", "ends before it starts"),
        ("127.43.0.300", "127.43.0.300"),
        ("10.0.0.0/8", "more than 65536"),
        ("10.0.0.0-10.2.0.0", "more than 65536"),
        ("miner-7", "miner"),
    ],
)
def test_bad_specs_say_why(spec: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        expand(spec)


def test_an_address_listed_twice_is_an_error() -> None:
    with pytest.raises(AddressError, match=r"127\.43\.0\.2 is listed more than once"):
        expand_all(["127.43.0.1-127.43.0.3", "127.43.0.2"])


def test_compress_is_the_inverse_of_expand() -> None:
    ips = expand_all(["127.43.0.1-127.43.0.3", "127.43.0.9", "127.43.1.0/31"])
    assert compress(list(reversed(ips))) == [
        "127.43.0.1-127.43.0.3",
        "127.43.0.9",
        "127.43.1.0-127.43.1.1",
    ]
    assert expand_all(compress(ips)) == ips


def test_group_count_comes_from_addresses_and_must_match_them() -> None:
    group = MinerGroup.model_validate(
        {"model": "Antminer S21", "addresses": ["127.43.0.1-127.43.0.4"], "firmware": "luxos"}
    )
    assert (group.count, group.firmware) == (4, "luxos")
    with pytest.raises(ValidationError, match="count is 5 but the addresses name 4 miners"):
        MinerGroup.model_validate(
            {"model": "Antminer S21", "count": 5, "addresses": ["127.43.0.1-127.43.0.4"]}
        )
    with pytest.raises(ValidationError, match="ends before it starts"):
        MinerGroup.model_validate({"model": "Antminer S21", "addresses": ["127.0.0.9-127.0.0.1"]})
    with pytest.raises(ValidationError, match="firmware"):
        MinerGroup.model_validate(
            {"model": "Antminer S21", "addresses": ["127.0.0.1"], "firmware": "vnish"}
        )
