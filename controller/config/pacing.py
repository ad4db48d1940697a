"""A site's actuation pacing: per-miner command intervals and failure backoff, with bounds."""

from __future__ import annotations

from pydantic import Field, model_validator

from controller.decision.pacing import PacingParams
from controller.runtime.config_base import Strict


class PacingConfig(Strict):
    """How often one miner may be commanded; backoff for miners whose commands fail.

    Defaults for real hardware: ASIC firmware restarts its hashboards on a resume (tens of
    seconds to a minute before it hashes again, the PSU's inrush on every start), so a miner
    is resumed at most once a minute; a curtail is never held behind a resume. All zero: no
    pacing (``controller.decision.pacing``).
    """

    min_raise_interval_s: float = Field(default=60.0, ge=0, le=3_600)
    min_lower_interval_s: float = Field(default=10.0, ge=0, le=300)
    backoff_initial_s: float = Field(default=10.0, ge=0, le=3_600)
    backoff_max_s: float = Field(default=600.0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _cap_above_start(self) -> PacingConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s {self.backoff_max_s:g} is below backoff_initial_s "
                f"{self.backoff_initial_s:g}"
            )
        return self

    def params(self) -> PacingParams:
        """The pacing as a core value."""
        return PacingParams(
            min_raise_interval_s=self.min_raise_interval_s,
            min_lower_interval_s=self.min_lower_interval_s,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
        )
