"""The capability mask, the restricted fleet, retries of transient failures only, and the
hard deadline on every miner call."""

from __future__ import annotations

import asyncio
import random
import time

import numpy as np
import pytest

from adapters.miners.capabilities import Capabilities, allowed_mask, restrict_fleet
from adapters.miners.driver import is_transient
from controller.domain import build_fleet
from controller.runtime.retry import RetryPolicy, abandoned_calls, hard_deadline, retry_transient

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


class _Stubborn:
    """A call that swallows its first cancellation and goes on waiting (as a library with a
    cleanup that never ends would), and honours the second."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    async def __call__(self) -> str:
        try:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                await asyncio.sleep(60)  # the first cancellation is swallowed
            return "late"
        finally:
            self.ended.set()


def _cancel_stubborn() -> None:
    for task in asyncio.all_tasks():
        if task.get_coro().__qualname__ == "_Stubborn.__call__":  # type: ignore[union-attr]
            task.cancel()


async def test_a_call_that_swallows_its_cancellation_does_not_hold_the_caller() -> None:
    call = _Stubborn()
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        await hard_deadline(call(), 0.05)
    assert time.monotonic() - began < 30  # not the 60 s the call goes on waiting
    assert abandoned_calls() == 1
    await asyncio.sleep(0.2)  # the first cancellation reaches the call, which swallows it
    assert not call.ended.is_set()  # still running, left behind
    assert abandoned_calls() == 1
    _cancel_stubborn()  # the second cancellation ends it
    await asyncio.wait_for(call.ended.wait(), 5)
    await asyncio.sleep(0)
    assert abandoned_calls() == 0


async def test_wait_for_would_have_held_the_caller() -> None:
    # Why hard_deadline exists: asyncio.wait_for waits for the cancelled call to end.
    call = _Stubborn()
    inner = asyncio.ensure_future(asyncio.wait_for(call(), 0.05))
    done, _ = await asyncio.wait({inner}, timeout=1.0)
    assert not done  # still held, long past its 0.05 s deadline
    _cancel_stubborn()
    await asyncio.wait({inner}, timeout=5)
    assert call.ended.is_set()
    assert inner.done()


async def test_hard_deadline_passes_answers_and_errors_through() -> None:
    async def answer() -> int:
        return 7

    async def refuse() -> int:
        raise ConnectionRefusedError("refused")

    assert await hard_deadline(answer(), 1.0) == 7
    with pytest.raises(ConnectionRefusedError):
        await hard_deadline(refuse(), 1.0)
    assert abandoned_calls() == 0
