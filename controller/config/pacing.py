"""A site's actuation pacing: per-miner command intervals and failure backoff, with bounds;
a miner group can set its own (``[sites.miners.pacing]``), the rest coming from the site."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field, model_validator

from controller.decision.pacing import PacingParams
from controller.runtime.config_base import Strict

_KEYS = ("min_raise_interval_s", "min_lower_interval_s", "backoff_initial_s", "backoff_max_s")


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


class GroupPacingConfig(Strict):
    """A miner group's own pacing (firmware that restarts slower or faster); keys not set
    here come from the site's ``[sites.pacing]``. Same bounds."""

    min_raise_interval_s: float | None = Field(default=None, ge=0, le=3_600)
    min_lower_interval_s: float | None = Field(default=None, ge=0, le=300)
    backoff_initial_s: float | None = Field(default=None, ge=0, le=3_600)
    backoff_max_s: float | None = Field(default=None, ge=0, le=86_400)

    def over(self, site: PacingConfig) -> PacingConfig:
        """The group's pacing: its keys over the site's (checked as a whole)."""
        mine = self.model_dump(exclude_none=True)
        return PacingConfig.model_validate(site.model_dump() | mine)


def pacing_params(
    site: PacingConfig, groups: Sequence[tuple[int, GroupPacingConfig | None]]
) -> PacingParams:
    """The site's pacing as a core value: one value per key if no group sets its own, else
    each miner's (``groups``: each group's miner count and its own settings, fleet order)."""
    if all(own is None for _, own in groups):
        return site.params()
    per_group = [site if own is None else own.over(site) for _, own in groups]
    counts = [n for n, _ in groups]
    arrays = {
        key: np.repeat(np.array([float(getattr(g, key)) for g in per_group]), counts)
        for key in _KEYS
    }
    return PacingParams(**arrays)
