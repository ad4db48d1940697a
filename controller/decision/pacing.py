"""Actuation pacing: how often one miner may be commanded, and backoff for miners that fail.

The policy decides where miners should be; pacing decides whether a miner may be told so
*now*, from the commands it was actually sent and what came of them. Its rules, per miner:

1. **Raises wait** (a resume or a throttle-up): at least ``min_raise_interval_s`` after the
   miner's last command in either direction. Firmware restarts its hashboards on a resume
   (tens of seconds before it hashes, with the PSU's inrush on each start); a resume
   followed by a curtail inside a minute earns nothing and wears the hardware.
2. **Lowerings go at once when they are new** (a curtail or a throttle-down): one that
   undoes the miner's last command (a raise) or goes deeper than its last lowering is never
   held, so a spike, a grid instruction or a fail-safe never waits behind a resume. Only a
   lowering that repeats the last one (the miner did not follow) waits for
   ``min_lower_interval_s``.
3. **Backoff**: a command that failed (rejected, unreachable, unverified) holds the miner's
   next command for ``backoff_initial_s``, doubling per consecutive failure up to
   ``backoff_max_s``; an applied command resets it. Rule 2's new lowerings pass backoff too.

Raises are held in the plan: the policy sees a ``PacingGate`` on its snapshot, and
``decide`` keeps a held miner where it is headed (its command in flight, else its point),
its change pending like a ramp-limited one. Lowerings are never held in the plan (the
plan says where the miner should be; the repeat only is not sent): the loop drops a repeated
lowering from its commands (``lowering_due``). Pure: the caller passes the time and says
what it sent and what came of it.

With every interval at zero nothing is held.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.domain import BoolArray, EpochS, FloatArray, IntArray

#: Why a wanted command was held (metric labels spell them so).
REASONS = ("resume_interval", "curtail_repeat", "backoff")


#: A duration for the whole site, or one per miner (groups can set their own).
Seconds = float | FloatArray


def _at(x: Seconds, miners: IntArray) -> Seconds:
    """``x`` for ``miners``: the site's value, or each miner's own."""
    return x[miners] if isinstance(x, np.ndarray) else x


@dataclass(frozen=True, slots=True)
class PacingParams:
    """Per-miner command pacing; the defaults are meant for real hardware (see module doc).

    Each duration is the site's, or an (N,) array with each miner's (per-group settings).
    """

    min_raise_interval_s: Seconds = 60.0
    min_lower_interval_s: Seconds = 10.0
    backoff_initial_s: Seconds = 10.0
    backoff_max_s: Seconds = 600.0

    @classmethod
    def off(cls) -> PacingParams:
        """No pacing at all: every wanted command goes out at once."""
        return cls(0.0, 0.0, 0.0, 0.0)

    def raise_bound(self, span_s: float) -> int:
        """Most raises one miner can be sent in ``span_s`` seconds (rule 1; the shortest
        interval where miners have their own)."""
        interval = float(np.min(self.min_raise_interval_s))
        if interval <= 0:
            raise ValueError("raises are not paced")
        return 1 + int(span_s // interval)


@dataclass(frozen=True, slots=True)
class PacingGate:
    """What the policy may command now, per miner."""

    raise_held: BoolArray  # (N,) a raise of this miner waits
    heading: IntArray  # (N,) the point of a command in flight to the miner; -1: none


@dataclass(frozen=True, slots=True)
class PacingState:
    """The commands each miner was sent and how they ended."""

    last_command_at: FloatArray  # (N,) -inf: never commanded
    last_was_raise: BoolArray  # (N,)
    last_lower_at: FloatArray  # (N,)
    last_lower_w: FloatArray  # (N,) power of the last lowering's target; inf: none yet
    failures: IntArray  # (N,) consecutive failed commands
    retry_at: FloatArray  # (N,) backoff holds the miner until then

    @classmethod
    def initial(cls, fleet_size: int) -> PacingState:
        """Nothing sent yet: nothing is held."""
        return cls(
            last_command_at=np.full(fleet_size, -np.inf),
            last_was_raise=np.zeros(fleet_size, dtype=bool),
            last_lower_at=np.full(fleet_size, -np.inf),
            last_lower_w=np.full(fleet_size, np.inf),
            failures=np.zeros(fleet_size, dtype=np.int64),
            retry_at=np.full(fleet_size, -np.inf),
        )

    def in_backoff(self, now: EpochS) -> BoolArray:
        """Miners whose next command waits for their backoff to end."""
        backing_off: BoolArray = now < self.retry_at
        return backing_off


def gate(params: PacingParams, state: PacingState, now: EpochS, heading: IntArray) -> PacingGate:
    """Which miners' raises wait at ``now`` (rules 1 and 3), and where each is headed."""
    raise_held = state.in_backoff(now) | (now - state.last_command_at < params.min_raise_interval_s)
    return PacingGate(raise_held=raise_held, heading=heading)


def raise_due(params: PacingParams, state: PacingState, now: EpochS, miners: IntArray) -> BoolArray:
    """Whether a raise of each of ``miners`` may be sent at ``now`` (rules 1 and 3)."""
    held = gate(params, state, now, np.zeros(0, dtype=np.int64)).raise_held[miners]
    due: BoolArray = ~held
    return due


def lowering_due(
    params: PacingParams, state: PacingState, now: EpochS, miners: IntArray, target_w: FloatArray
) -> BoolArray:
    """Whether a lowering of each of ``miners`` to ``target_w`` may be sent (rules 2 and 3).

    One that undoes the miner's last command (a raise) or goes deeper than its last
    lowering always may; a repeat waits ``min_lower_interval_s`` and any backoff.
    """
    repeat_ok = (now - state.last_lower_at[miners] >= _at(params.min_lower_interval_s, miners)) & ~(
        state.in_backoff(now)[miners]
    )
    due: BoolArray = (
        state.last_was_raise[miners] | (target_w < state.last_lower_w[miners]) | repeat_ok
    )
    return due


def reasons(state: PacingState, now: EpochS, miners: IntArray, raising: BoolArray) -> list[str]:
    """Why each held miner waits (``raising``: its change is a raise), one of ``REASONS``."""
    backoff = state.in_backoff(now)[miners]
    return [
        "backoff" if b else ("resume_interval" if r else "curtail_repeat")
        for b, r in zip(backoff.tolist(), raising.tolist(), strict=True)
    ]


def sent(
    state: PacingState, miners: IntArray, target_w: FloatArray, *, raises: bool, now: EpochS
) -> PacingState:
    """``miners`` were sent a command now (all raises, or all lowerings to ``target_w``)."""
    last_at = state.last_command_at.copy()
    last_at[miners] = now
    was_raise = state.last_was_raise.copy()
    was_raise[miners] = raises
    lower_at, lower_w = state.last_lower_at, state.last_lower_w
    if not raises:
        lower_at, lower_w = lower_at.copy(), lower_w.copy()
        lower_at[miners] = now
        lower_w[miners] = target_w
    return PacingState(last_at, was_raise, lower_at, lower_w, state.failures, state.retry_at)


def settled(
    params: PacingParams, state: PacingState, miners: IntArray, ok: BoolArray, *, now: EpochS
) -> PacingState:
    """What came of commands to ``miners``: applied (``ok``) resets, a failure backs off."""
    failures = state.failures.copy()
    retry_at = state.retry_at.copy()
    good, bad = miners[ok], miners[~ok]
    failures[good] = 0
    retry_at[good] = -np.inf
    failures[bad] += 1
    initial = _at(params.backoff_initial_s, bad)
    exponent = np.minimum(failures[bad] - 1, 60)  # 2**60 s is past any cap
    wait = np.minimum(initial * 2.0**exponent, _at(params.backoff_max_s, bad))
    retry_at[bad] = np.where(np.asarray(initial) > 0, now + wait, -np.inf)  # 0: no backoff
    return PacingState(
        state.last_command_at,
        state.last_was_raise,
        state.last_lower_at,
        state.last_lower_w,
        failures,
        retry_at,
    )


def next_release(
    params: PacingParams, state: PacingState, miners: IntArray, now: EpochS
) -> EpochS | None:
    """The next instant after ``now`` at which the gate of one of ``miners`` may open."""
    if not miners.size:
        return None
    t = np.concatenate(
        [
            state.retry_at[miners],
            state.last_command_at[miners] + _at(params.min_raise_interval_s, miners),
            state.last_lower_at[miners] + _at(params.min_lower_interval_s, miners),
        ]
    )
    later = t[t > now]
    return float(later.min()) if later.size else None
