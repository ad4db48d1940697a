"""What every instrument's config shares: its id and its term."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field, model_validator

from controller.runtime.config_base import Strict

#: An instrument or tranche id: it goes into the ledger, metrics labels and logs.
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Term(Strict):
    """An instrument's term; open ends mean "throughout"."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Term:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self
