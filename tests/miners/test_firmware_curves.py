"""Firmware curve parsers on reply payloads shaped as LuxOS and pyasic's BOS+ dicts give them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pyasic.web.braiins_os.proto.braiins.bos.v1 import (
    GetConstraintsResponse,
    GigaHashrate,
    ListTargetProfilesResponse,
    Power,
    PowerConstraints,
    PowerTargetProfile,
    TunerConstraints,
)

from adapters.miners.firmware_curves import braiins_curve, luxos_curve

#: A LuxOS ``profiles`` reply: the fields pyasic's ``MiningPreset.from_luxos`` reads.
LUXOS_PROFILES: dict[str, Any] = {
    "STATUS": [{"STATUS": "S", "When": 1, "Code": 327, "Msg": "Profiles", "Description": ""}],
    "PROFILES": [
        {"Profile Name": "default", "Frequency": 525, "Hashrate": 200.0, "IsDynamic": False,
         "IsTuned": False, "Step": "default", "Voltage": 14.0, "Watts": 3500},
        {"Profile Name": "420MHz", "Frequency": 420, "Hashrate": 159.64, "IsDynamic": False,
         "IsTuned": False, "Step": "420MHz", "Voltage": 13.4, "Watts": 2450},
        {"Profile Name": "broken", "Frequency": 0, "Hashrate": "n/a", "Watts": 1000},
        {"Profile Name": "zero", "Hashrate": 10.0, "Watts": 0},
    ],
    "id": 1,
}  # fmt: skip


def test_luxos_profiles_are_points_by_power_with_their_exact_hashrate() -> None:
    curve = luxos_curve(LUXOS_PROFILES)
    assert curve is not None
    assert curve.points == ((159.64, 2450.0), (200.0, 3500.0))  # not rounded as pyasic's preset
    assert curve.detail == "luxos profiles"


@pytest.mark.parametrize(
    "reply", [{}, {"PROFILES": []}, {"PROFILES": "x"}, None, {"PROFILES": [{"Watts": 10}]}]
)
def test_a_luxos_reply_without_usable_profiles_is_no_curve(reply: Any) -> None:
    assert luxos_curve(reply) is None


def _profile(watt: int, ghs: float) -> PowerTargetProfile:
    return PowerTargetProfile(
        created=datetime(2025, 1, 1, tzinfo=UTC),
        target=Power(watt=watt),
        measured_hashrate=GigaHashrate(gigahash_per_second=ghs),
        estimated_power_consumption=Power(watt=watt - 7),
    )


def test_braiins_tuner_profiles_within_the_power_target_range() -> None:
    # pyasic hands back betterproto's to_pydict(): built here from the same proto classes
    profiles = ListTargetProfilesResponse(
        power_target_profiles=[
            _profile(3500, 200_100.0),
            _profile(2100, 145_500.0),
            _profile(900, 60_000.0),  # below the tuner's minimum now: not offered
            PowerTargetProfile(target=Power(watt=2800)),  # no measurement: not a point
        ]
    ).to_pydict()
    constraints = GetConstraintsResponse(
        tuner_constraints=TunerConstraints(
            power_target=PowerConstraints(
                default=Power(watt=3500), min=Power(watt=1050), max=Power(watt=4000)
            )
        )
    ).to_pydict()
    curve = braiins_curve(profiles, constraints)
    assert curve is not None
    assert curve.points == ((145.5, 2100.0), (200.1, 3500.0))
    assert curve.detail == "bos+ tuner profiles"
    unconstrained = braiins_curve(profiles, None)
    assert unconstrained is not None
    assert [w for _, w in unconstrained.points] == [900.0, 2100.0, 3500.0]
    assert braiins_curve({}, constraints) is None
    assert braiins_curve(None) is None
