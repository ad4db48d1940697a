"""A published hashprice index over HTTP (USD per PH/s per day).

Index APIs differ in shape, so the config names where the value and its time are
(``value_path``, ``time_path``: dotted paths, list indices as numbers, e.g.
``data.0.usdHashprice``). The defaults read hashspark's own form, the same as the MQTT
hashprice payload: ``{"usd_per_ph_day": 55.21, "ts": "2026-11-21T00:00:00Z"}``. The time
is ISO-8601 with a zone, or epoch seconds (epoch milliseconds above 1e11).
"""

from __future__ import annotations

import json
from typing import Literal

import aiohttp
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from adapters.feeds.config import BackoffConfig, BoundedFeedConfig, HttpUrl
from adapters.feeds.http import PollingFeed, fetch_bytes
from adapters.feeds.payloads import (
    Candidate,
    ParseResult,
    ReadingKind,
    ValueBound,
    check_value,
    epoch_of,
    lookup,
    validation_detail,
)
from adapters.feeds.registry import FEEDS, FeedContext
from adapters.feeds.store import LatestStore, Rejected, RejectReason, StoreFeed
from controller.runtime.config_base import Secret
from controller.runtime.ports import Clock
from controller.runtime.retry import Backoff

_EPOCH_MS_THRESHOLD = 1e11  # epoch seconds pass this in the year 5138


class HashpriceIndexFeedConfig(BoundedFeedConfig):
    """A published hashprice index over HTTP; JSON value and time found by dotted paths."""

    type: Literal["hashprice_index"]
    url: HttpUrl
    api_key: Secret | None = None
    api_key_header: str = Field(default="X-API-Key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    value_path: str = Field(default="usd_per_ph_day", pattern=r"^[A-Za-z0-9_.-]{1,200}$")
    time_path: str = Field(default="ts", pattern=r"^[A-Za-z0-9_.-]{1,200}$")
    source: str = Field(default="index", pattern=r"^[\x21-\x7e]{1,64}$")
    interval_s: float = Field(default=900.0, ge=10.0, le=86_400)
    timeout_s: float = Field(default=20.0, gt=0, le=120)
    backoff: BackoffConfig = BackoffConfig(base_s=5.0, cap_s=900.0)


class IndexPoint(BaseModel):
    """The value and time picked out of an index response."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    usd_per_ph_day: float
    ts: AwareDatetime | float


def parse_index(
    raw: bytes, *, value_path: str, time_path: str, source: str, bound: ValueBound
) -> ParseResult:
    """The index value and time from a JSON document."""
    try:
        doc = json.loads(raw)
        picked = {"usd_per_ph_day": lookup(doc, value_path), "ts": lookup(doc, time_path)}
        point = IndexPoint.model_validate_json(json.dumps(picked))
    except (ValueError, RecursionError) as exc:  # JSON errors are ValueErrors
        detail = validation_detail(exc) if isinstance(exc, ValidationError) else str(exc)
        return Rejected(RejectReason.MALFORMED, detail[:200])
    except KeyError as exc:
        return Rejected(RejectReason.MALFORMED, f"no {exc.args[0]} in the response")
    if isinstance(point.ts, float):
        seconds = point.ts / 1000.0 if point.ts > _EPOCH_MS_THRESHOLD else point.ts
        observed_at: float | None = seconds
    else:
        observed_at = epoch_of(point.ts)
    if observed_at is None:
        return Rejected(RejectReason.MALFORMED, "time out of range")
    return check_value(point.usd_per_ph_day, observed_at, source, bound)


class HashpriceIndexFeed(PollingFeed):
    """Hashprice polled from an index API."""

    def __init__(
        self,
        config: HashpriceIndexFeedConfig,
        store: LatestStore,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(config, ReadingKind.HASHPRICE, store, clock, backoff=backoff)
        self._cfg = config

    async def poll(self, session: aiohttp.ClientSession) -> Candidate | Rejected:
        """Fetch the index document and pick the value and its time."""
        cfg = self._cfg
        headers = {"Accept": "application/json"}
        if cfg.api_key is not None:
            headers[cfg.api_key_header] = cfg.api_key.get_secret_value()
        body = await fetch_bytes(session, "GET", cfg.url, timeout_s=cfg.timeout_s, headers=headers)
        return parse_index(
            body,
            value_path=cfg.value_path,
            time_path=cfg.time_path,
            source=cfg.source,
            bound=self._bound,
        )


def _build(config: HashpriceIndexFeedConfig, kind: ReadingKind, ctx: FeedContext) -> StoreFeed:
    store = ctx.store(kind, config.type, config.max_future_s)
    return ctx.poll(HashpriceIndexFeed(config, store, ctx.clock))


FEEDS.register("hashprice_index", HashpriceIndexFeedConfig, _build)
