"""Adapter config unions, derived from the adapter registries (never listed by hand).

Importing ``adapters.feeds`` and ``adapters.miners`` registers every feed and driver type;
the site's ``price_feed``/``hashprice_feed`` and ``driver`` fields are discriminated unions
of what is registered, and error key paths skip every registered ``type`` tag.
"""

from __future__ import annotations

import functools
import typing
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, Union

from pydantic import Field

import adapters.feeds
import adapters.miners
from adapters.feeds.registry import FEEDS
from adapters.miners.registry import DRIVERS
from controller.config.contracts import HedgeConfig, SupplyConfig

__all__ = ["DriverConfig", "FeedConfig", "adapters", "union_tags"]


def _union(models: tuple[type[Any], ...]) -> Any:
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 (built at run time)


if TYPE_CHECKING:

    class FeedConfig(Protocol):
        """Any registered feed config (match on the concrete class)."""

        @property
        def type(self) -> str:
            """The registered type name."""
            ...

    class DriverConfig(Protocol):
        """Any registered driver config; each says how a replay starts its miners."""

        @property
        def type(self) -> str:
            """The registered type name."""
            ...

        @property
        def needs_addresses(self) -> bool:
            """Whether the driver talks to miners (every group then lists its addresses)."""
            ...

        @property
        def initial_state(self) -> Literal["running", "curtailed"]:
            """Where a replay's in-process model starts."""
            ...

else:
    FeedConfig = _union(FEEDS.configs())
    DriverConfig = _union(DRIVERS.configs())


def _tags(union: Any) -> set[str]:
    members = typing.get_args(typing.get_args(union)[0])
    return {t for m in members for t in typing.get_args(m.model_fields["type"].annotation)}


@functools.cache
def union_tags() -> frozenset[str]:
    """Every discriminator value pydantic may insert in an error location."""
    return frozenset({*FEEDS.types(), *DRIVERS.types(), *_tags(SupplyConfig), *_tags(HedgeConfig)})
