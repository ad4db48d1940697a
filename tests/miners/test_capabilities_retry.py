"""The capability mask, the restricted fleet, and retries of transient failures only."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from adapters.miners.capabilities import Capabilities, allowed_mask, restrict_fleet
from adapters.miners.driver import is_transient
from adapters.miners.retry import RetryPolicy, retry_transient
from controller.domain import build_fleet

LUX = Capabilities("luxos", "S21 (LuxOS)", can_stop=True, can_throttle=True, power_modes=False)
STOCK = Capabilities("stock", "S21 (Stock)", can_stop=True, can_throttle=False, power_modes=True)
NOSTOP = Capabilities("other", "X", can_stop=False, can_throttle=False, power_modes=False)


def test_mask_and_restricted_fleet_follow_capabilities() -> None:
    fleet = build_fleet([("Antminer S21", 4, [(155.0, 2100.0), (180.0, 2800.0), (200.0, 3500.0)])])
    mask = allowed_mask(fleet, [LUX, STOCK, NOSTOP, None])
    assert mask.tolist() == [
        [True, True, True, True],
        [True, False, False, True],
        [False, False, False, True],
        [False, False, False, True],  # not discovered yet: run only
    ]
    restricted = restrict_fleet(fleet, mask)
    assert restricted.power_w[0].tolist() == [0.0, 2100.0, 2800.0, 3500.0]
    assert restricted.power_w[1].tolist() == [0.0, 3500.0, 0.0, 0.0]
    assert restricted.valid[1].tolist() == [True, True, False, False]
    assert np.array_equal(restricted.nominal_power_w, fleet.nominal_power_w)


class Flaky:
    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_transient_errors_are_retried_up_to_the_cap() -> None:
    call = Flaky([ConnectionRefusedError(), ConnectionResetError()])
    policy = RetryPolicy(attempts=3, base_s=0.001, cap_s=0.01)
    deadline = asyncio.get_running_loop().time() + 5
    got = await retry_transient(
        call, policy=policy, transient=is_transient, deadline=deadline, rng=random.Random(0)
    )
    assert (got, call.calls) == ("ok", 3)

    call = Flaky([ConnectionRefusedError()] * 5)
    with pytest.raises(ConnectionRefusedError):
        await retry_transient(
            call, policy=policy, transient=is_transient, deadline=deadline, rng=random.Random(0)
        )
    assert call.calls == 3


@pytest.mark.parametrize("error", [TimeoutError(), ValueError("bad"), KeyError("x")])
async def test_timeouts_and_answers_are_not_retried(error: BaseException) -> None:
    call = Flaky([error])
    deadline = asyncio.get_running_loop().time() + 5
    with pytest.raises(type(error)):
        await retry_transient(
            call,
            policy=RetryPolicy(attempts=3, base_s=0.001, cap_s=0.01),
            transient=is_transient,
            deadline=deadline,
            rng=random.Random(0),
        )
    assert call.calls == 1


async def test_no_retry_past_the_deadline() -> None:
    call = Flaky([ConnectionRefusedError()] * 3)
    deadline = asyncio.get_running_loop().time() + 0.001
    with pytest.raises(ConnectionRefusedError):
        await retry_transient(
            call,
            policy=RetryPolicy(attempts=3, base_s=1.0, cap_s=1.0),
            transient=is_transient,
            deadline=deadline,
            rng=random.Random(3),
        )
    assert call.calls == 1


def test_full_jitter_stays_under_the_cap() -> None:
    policy = RetryPolicy(attempts=10, base_s=0.2, cap_s=2.0)
    rng = random.Random(1)
    delays = [policy.delay_s(k, rng) for k in range(10) for _ in range(50)]
    assert max(delays) <= 2.0
    assert min(delays) >= 0.0
    assert max(delays) > 1.0  # it does grow
