"""Which reads are samples of a miner's curve, and at what power (pure)."""

from __future__ import annotations

import pytest

from adapters.miners.telemetry import Telemetry, curve_sample
from tests.miners.test_telemetry import CURVE, TH, tel


@pytest.mark.parametrize(
    ("t", "sample"),
    [
        (tel(104.0, 3068.0, 3068.0), (3068.0, 104.0)),
        # drawing a little under its profile: filed at the target the driver can command
        (tel(103.0, 3010.0, 3068.0), (3068.0, 103.0)),
        (tel(60.0, 1200.0, 1841.0), None),  # still ramping to its target
        (tel(0.0, 22.0, 3068.0), None),  # asleep
        (tel(104.0, None, None), None),  # stock: no wattage
        (tel(None, 3068.0, 3068.0), None),  # no hashrate read
        (tel(80.0, 1850.0, None), (1850.0, 80.0)),  # no target reported: its wattage
    ],
)
def test_curve_sample(t: Telemetry, sample: tuple[float, float] | None) -> None:
    assert curve_sample(t, CURVE, TH) == sample
