"""What a replay covers (scenario, windows, grid events); the books `compare` replays."""

from __future__ import annotations

from pydantic import AwareDatetime, Field, model_validator

from controller.config.contracts import HedgeConfig, SupplyConfig, one_pool, unique
from controller.decision.overrides import Override, OverrideKind
from controller.runtime.config_base import Strict
from controller.runtime.config_bounds import (
    MAX_EVENTS,
    MAX_HEDGES,
    MAX_PRICE_USD_PER_MWH,
    MAX_SITE_MW,
    MAX_STRATEGIES,
    MAX_WINDOWS,
)


class Window(Strict):
    """A named part of a scenario to zoom into (``hashspark replay --window NAME``)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class GridEventConfig(Strict):
    """A grid program or operator instruction that a replay applies at its time."""

    type: OverrideKind
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    start: AwareDatetime
    end: AwareDatetime
    max_mw: float | None = Field(default=None, ge=0, le=MAX_SITE_MW)  # cap, or base point
    deadline: AwareDatetime | None = None  # demand response: when the cap must be met
    tolerance_mw: float = Field(default=0.0, ge=0, le=MAX_SITE_MW)  # base point
    # The site's capacity award this event deploys (grid revenue), by id.
    award: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    @model_validator(mode="after")
    def _consistent(self) -> GridEventConfig:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.type in ("demand_response", "base_point") and self.max_mw is None:
            raise ValueError(f"a {self.type} event needs max_mw")
        return self

    def override(self) -> Override:
        """The event as the core's override."""
        return Override(
            self.id,
            self.type,
            self.start.timestamp(),
            self.end.timestamp(),
            self.max_mw,
            issued_by="scenario",
            deadline=self.deadline.timestamp() if self.deadline else None,
            tolerance_mw=self.tolerance_mw,
            award=self.award,
        )


class ScenarioConfig(Strict):
    """What a replay covers: its name, time window and named windows inside it."""

    name: str = Field(min_length=1)
    description: str = ""
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    # Grid programs to replay (site loop engine).
    events: tuple[GridEventConfig, ...] = Field(default=(), max_length=MAX_EVENTS)
    windows: tuple[Window, ...] = Field(default=(), max_length=MAX_WINDOWS)

    @model_validator(mode="after")
    def _ordered(self) -> ScenarioConfig:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        unique("window names", [w.name for w in self.windows])
        for w in self.windows:
            if (self.start is not None and w.start < self.start) or (
                self.end is not None and w.end > self.end
            ):
                raise ValueError(f"window {w.name!r} is not inside the scenario's start..end")
        return self

    def window(self, name: str) -> Window | None:
        """The window called ``name``, if there is one."""
        return next((w for w in self.windows if w.name == name), None)


class StrategyConfig(Strict):
    """One supply and hedge book to compare, in the same schema as a site's."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.+-]+$")
    description: str = ""
    supply: SupplyConfig
    hedges: tuple[HedgeConfig, ...] = Field(default=(), max_length=MAX_HEDGES)

    @model_validator(mode="after")
    def _unique_hedge_ids(self) -> StrategyConfig:
        unique("hedge ids", [h.id for h in self.hedges])
        one_pool(self.hedges)
        return self


class CompareConfig(Strict):
    """The books ``hashspark compare`` replays side by side; without ``strategies``, the
    built-in set, whose two assumed prices can be given here."""

    strategies: tuple[StrategyConfig, ...] = Field(default=(), max_length=MAX_STRATEGIES)
    #: Books replayed after the built-in set (or after ``strategies``), e.g. the fully
    #: hedged book with a BTC collar beside the built-in six.
    extra_strategies: tuple[StrategyConfig, ...] = Field(default=(), max_length=MAX_STRATEGIES)
    #: What the built-in capped PPA's price is below the plain PPA's (USD/MWh): a cap buys a
    #: lower price. Unset: the break-even concession, the embedded call's mean payout in
    #: the window (hindsight).
    capped_ppa_concession_usd_per_mwh: float | None = Field(
        default=None, ge=0, le=MAX_PRICE_USD_PER_MWH
    )
    #: The built-in short call's premium (USD/MWh). Unset: the break-even premium, the
    #: call's mean payout in the window (hindsight).
    call_premium_usd_per_mwh: float | None = Field(default=None, ge=0, le=MAX_PRICE_USD_PER_MWH)

    @model_validator(mode="after")
    def _unique_names(self) -> CompareConfig:
        unique("strategy names", [s.name for s in (*self.strategies, *self.extra_strategies)])
        return self
