"""What planner and workers say to each other over MQTT: bounded, validated pydantic models.

Every message is JSON, at most ``MAX_MESSAGE_BYTES``, strict (unknown keys, wrong types,
NaN are refused) and versioned (``v``). A plan carries the ``epoch`` of the planner's lease
(``lease.py``: it grows with every takeover) and a ``seq`` that grows with every plan, so a
worker can tell a new plan from a duplicate (QoS 1 may deliver twice), a reordered or a stale one
(``PlanGate``); a report echoes both, so the planner only takes the answer to what it asked.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.sharding.config import MAX_SHARD_MINERS
from controller.decision.reconcile import FailedName
from controller.domain import EpochS

#: Largest message either side accepts (a 65,536-miner report is about 1.5 MB).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_REASON_CHARS = 300
MAX_WATTS = 100_000  # one miner's target; anything above is a bug, not a miner
#: Epochs are about the time in ms; one further ahead of our clock than this is refused
#: (a bogus one would fence out every real planner until a restart).
MAX_EPOCH_AHEAD_MS = 86_400_000


def epoch_too_far(epoch: int, now: EpochS) -> bool:
    """Whether ``epoch`` is more than a day ahead of ``now`` (in ms): not a real planner's."""
    return epoch > now * 1000 + MAX_EPOCH_AHEAD_MS


SiteId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
WorkerId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
ShardNo = Annotated[int, Field(ge=0, lt=256)]
Local = Annotated[int, Field(ge=0, lt=MAX_SHARD_MINERS)]
Watts = Annotated[int, Field(ge=0, le=MAX_WATTS)]
Seconds = Annotated[float, Field(ge=0, le=86_400)]
Reason = Annotated[str, Field(max_length=MAX_REASON_CHARS)]
Bits = Annotated[int, Field(ge=0, lt=2**62)]
Miners = Annotated[tuple[Local, ...], Field(max_length=MAX_SHARD_MINERS)]


class MessageError(ValueError):
    """A message that cannot be used: too big, not JSON, or not the model."""


class JsonMessage(BaseModel):
    """Strict, frozen JSON: parsed with a bounded size, refused with the first problem."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    @classmethod
    def parse(cls, raw: bytes) -> Self:
        """Validate a payload; ``MessageError`` with the first problem (inputs not echoed)."""
        if len(raw) > MAX_MESSAGE_BYTES:
            raise MessageError(f"{len(raw)} bytes, more than {MAX_MESSAGE_BYTES}")
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            err = exc.errors(include_input=False, include_url=False)[0]
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise MessageError(f"{loc}: {err['msg']}") from None

    def to_bytes(self) -> bytes:
        """Compact JSON."""
        return self.model_dump_json().encode()


class _Message(JsonMessage):
    v: Literal[1] = 1
    site: SiteId
    shard: ShardNo


def _unique(miners: tuple[int, ...], what: str) -> None:
    if len(set(miners)) != len(miners):
        raise ValueError(f"{what} names a miner twice")


class ShardPlan(_Message):
    """Planner -> worker: read every miner (``observe``) or command some (``apply``)."""

    epoch: int = Field(ge=0)  # the planner's lease epoch (lease.py)
    seq: int = Field(ge=1)
    issued_at: EpochS = Field(ge=0)
    kind: Literal["observe", "apply"]
    miners: Miners = ()  # shard-local indices ...
    target_w: tuple[Watts, ...] = ()  # ... and each one's target point in watts (0: off)

    @model_validator(mode="after")
    def _consistent(self) -> ShardPlan:
        if len(self.miners) != len(self.target_w):
            raise ValueError("miners and target_w differ in length")
        if self.kind == "observe" and self.miners:
            raise ValueError("an observe plan commands no miner")
        _unique(self.miners, "miners")
        return self


class Failure(BaseModel):
    """One miner's command that did not apply, and why."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    miner: Local
    outcome: FailedName
    reason: Reason


class ShardReport(_Message):
    """Worker -> planner: outcomes of an apply plan and the shard's telemetry after it."""

    epoch: int = Field(ge=0)
    seq: int = Field(ge=1)
    worker: WorkerId
    finished_at: EpochS = Field(ge=0)
    applied: Miners = ()  # confirmed from telemetry ...
    confirmation_s: tuple[Seconds, ...] = ()  # ... and how long each took
    failures: Annotated[tuple[Failure, ...], Field(max_length=MAX_SHARD_MINERS)] = ()
    # Every miner of the shard, in local order: its observed point (watts) and reachability.
    point_w: Annotated[tuple[Watts, ...], Field(max_length=MAX_SHARD_MINERS)]
    reachable: Annotated[tuple[bool, ...], Field(max_length=MAX_SHARD_MINERS)]
    power_w: float = Field(ge=0)  # summed from the miners' own telemetry
    hashrate_th: float = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ShardReport:
        if len(self.applied) != len(self.confirmation_s):
            raise ValueError("applied and confirmation_s differ in length")
        if len(self.point_w) != len(self.reachable):
            raise ValueError("point_w and reachable differ in length")
        named = self.applied + tuple(f.miner for f in self.failures)
        _unique(named, "outcomes")
        if named and max(named) >= len(self.point_w):
            raise ValueError("an outcome names a miner outside the shard")
        return self


class ShardStatus(_Message):
    """A worker's presence (retained): ``starting``, ``online`` with capabilities, ``stopped``;
    its last will says ``offline``."""

    state: Literal["starting", "online", "offline", "stopped"]
    worker: WorkerId | None = None
    at: EpochS | None = Field(default=None, ge=0)
    fleet: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")  # shards.fingerprint
    # Online: per miner, the points its firmware allows (bit j for the config's point j);
    # 0 for a miner not discovered yet.
    allowed: Annotated[tuple[Bits, ...], Field(max_length=MAX_SHARD_MINERS)] = ()
    reason: Reason | None = None


class PlanGate:
    """Which plans a worker runs: the newest of the newest planner, never one twice or late."""

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self.epoch = -1
        self.seq = 0

    def admit(self, plan: ShardPlan, now: EpochS) -> str | None:
        """None to run ``plan`` (and remember it); otherwise why it is ignored."""
        age = now - plan.issued_at
        if age > self.max_age_s:
            return f"stale: issued {age:.1f} s ago (plan_max_age_s {self.max_age_s:g})"
        if epoch_too_far(plan.epoch, now):
            return f"epoch {plan.epoch} is more than a day ahead of this clock"
        if plan.epoch < self.epoch:
            return f"from an older planner (epoch {plan.epoch} < {self.epoch})"
        if plan.epoch == self.epoch and plan.seq <= self.seq:
            return f"duplicate or out of order (seq {plan.seq} <= {self.seq})"
        self.epoch, self.seq = plan.epoch, plan.seq
        return None

    def fence(self, epoch: int, now: EpochS) -> bool:
        """A lease of ``epoch`` was seen: plans of any older epoch are refused from now on.

        True if it raised the epoch (a new planner took over)."""
        if epoch <= self.epoch or epoch_too_far(epoch, now):
            return False
        self.epoch, self.seq = epoch, 0
        return True

    def fresh(self, plan: ShardPlan, now: EpochS) -> bool:
        """Whether an admitted plan is still young enough to run (it may have waited)."""
        return now - plan.issued_at <= self.max_age_s
