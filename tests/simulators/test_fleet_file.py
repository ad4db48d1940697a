"""Fleet files are parsed strictly: every mistake fails at start-up with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.miners.faults import FaultKind
from simulators.miners.fleet_file import FleetConfig, FleetFileError, load_fleet_file

GROUP = '[[group]]\nfamily = "luxos"\ncount = 3\nip_start = "127.44.251.1"\n'


def _load(tmp_path: Path, text: str) -> FleetConfig:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return load_fleet_file(path)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "group: Field required"),
        (GROUP.replace("luxos", "whatsminer"), "group.0.family: Input should be"),
        (GROUP + 'model = "S9"\n', "unknown model 'S9'"),
        (GROUP.replace("127.44.251.1", "10.0.0.1"), "would leave 127.0.0.0/8"),
        (GROUP + GROUP.replace("251.1", "251.3"), "groups overlap at 127.44.251.3"),
        (GROUP + '[[fault]]\nkind = "gremlins"\n', "fault.0.kind: Input should be"),
        (GROUP + '[[fault]]\nkind = "slow"\nminers = ["127.1.1.1"]\n', "outside the fleet"),
        (GROUP + '[[fault]]\nkind = "slow"\nlatency_s = -1\n', "fault.0.latency_s"),
        (GROUP + "speed = 0\n", "group.0.speed: Extra inputs"),
        ("speed = 0\n" + GROUP, "speed: Input should be greater than 0"),
        ("[[group]\n", "Expected ']]'"),
    ],
)
def test_bad_fleet_files_are_refused_with_the_key_and_reason(
    tmp_path: Path, text: str, reason: str
) -> None:
    with pytest.raises(FleetFileError) as raised:
        _load(tmp_path, text)
    assert reason in str(raised.value)


def test_a_good_fleet_file_gives_specs_and_faults(tmp_path: Path) -> None:
    text = GROUP + '[[fault]]\nkind = "drift"\ndrift_after_s = 30\nfraction = 0.5\n'
    config = _load(tmp_path, text)
    specs = config.specs()
    assert [s.ip for s in specs] == ["127.44.251.1", "127.44.251.2", "127.44.251.3"]
    fault = config.fault[0].fault()
    assert (fault.kind, fault.drift_after_s) == (FaultKind.DRIFT, 30.0)
