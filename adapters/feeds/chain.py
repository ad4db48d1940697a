"""Hashprice from chain data served by a mempool.space-style REST API (ECONOMICS.md).

``HP = 86400 * 1e15 * (subsidy + fees per block) * btc_usd / (difficulty * 2**32)`` with
the difficulty of the newest block, the mean fees of the recent blocks (``extras.totalFees``
of ``/api/v1/blocks``), the subsidy of the newest block's height, and the USD price of
``/api/v1/prices``. Each successful poll is one reading stamped with the poll time: it is
when these inputs were observed together.

The same feed serves the site's Bitcoin inputs (``[sites.bitcoin]``): built for the BTC
price, the difficulty or the fees, it publishes that input of the same poll instead of the
hashprice, so the instruments settle on the figures the hashprice is made of.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from adapters.feeds.config import BackoffConfig, BoundedFeedConfig, HttpUrl
from adapters.feeds.http import PollingFeed, fetch_bytes
from adapters.feeds.payloads import (
    Candidate,
    ParseResult,
    ReadingKind,
    ValueBound,
    check_value,
    validation_detail,
)
from adapters.feeds.registry import FEEDS, FeedContext
from adapters.feeds.store import LatestStore, Rejected, RejectReason, StoreFeed
from controller.decision.economics import hashprice_usd_per_ph_day
from controller.domain import EpochS
from controller.runtime.ports import Clock
from controller.runtime.retry import Backoff

SATS_PER_BTC = 100_000_000
HALVING_INTERVAL_BLOCKS = 210_000

# Magnitudes no real chain reaches, checked before any arithmetic: more fees in a block than
# all bitcoin there will ever be, a height of two centuries, a difficulty 1e16 times today's,
# a billion dollars per coin. Python's ints have no ceiling, and their division raises.
MAX_FEES_SATS = 21_000_000 * SATS_PER_BTC
MAX_HEIGHT = 10_000_000
MAX_DIFFICULTY = 1e30
MAX_BTC_USD = 1e9


class ChainFeedConfig(BoundedFeedConfig):
    """Hashprice computed from chain data served by a mempool.space-style REST API."""

    type: Literal["chain"]
    base_url: HttpUrl = "https://mempool.space"
    interval_s: float = Field(default=600.0, ge=10.0, le=86_400)
    timeout_s: float = Field(default=20.0, gt=0, le=120)
    min_blocks: int = Field(default=6, ge=1, le=1000)
    backoff: BackoffConfig = BackoffConfig(base_s=5.0, cap_s=900.0)


class _Lax(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class BlockExtras(_Lax):
    """The part of mempool's block extras we use."""

    totalFees: int = Field(ge=0, le=MAX_FEES_SATS)  # noqa: N815 (API name; satoshis)


class Block(_Lax):
    """One block of ``/api/v1/blocks``."""

    height: int = Field(ge=0, le=MAX_HEIGHT)
    timestamp: int
    difficulty: float = Field(gt=0, le=MAX_DIFFICULTY, allow_inf_nan=False)
    extras: BlockExtras | None = None


class Prices(_Lax):
    """``/api/v1/prices``: the latest BTC price per currency."""

    time: int
    USD: float = Field(gt=0, le=MAX_BTC_USD, allow_inf_nan=False)


_BLOCKS = TypeAdapter(list[Block])


def subsidy_btc(height: int) -> float:
    """Block subsidy at ``height``: 50 BTC halved every 210,000 blocks."""
    halvings = height // HALVING_INTERVAL_BLOCKS
    return 0.0 if halvings >= 64 else 50.0 / 2**halvings


def parse_chain(
    blocks_raw: bytes,
    prices_raw: bytes,
    *,
    observed_at: EpochS,
    source: str,
    min_blocks: int,
    bound: ValueBound,
    kind: ReadingKind = ReadingKind.HASHPRICE,
) -> ParseResult:
    """Hashprice (USD/PH/day) from a blocks list and a prices document; or, by ``kind``,
    the BTC price (USD), the tip's difficulty (units of 1e12) or the mean fees per block."""
    try:
        blocks = _BLOCKS.validate_json(blocks_raw)
        prices = Prices.model_validate_json(prices_raw)
    except ValidationError as exc:
        return Rejected(RejectReason.MALFORMED, validation_detail(exc))
    fees = [b.extras.totalFees for b in blocks if b.extras is not None]
    if len(fees) < min_blocks:
        return Rejected(
            RejectReason.MALFORMED, f"{len(fees)} blocks with fee data, need {min_blocks}"
        )
    tip = max(blocks, key=lambda b: b.height)
    try:  # bounded above, so this cannot fail; if it ever does, it is a rejection
        fees_btc_per_block = sum(fees) / len(fees) / SATS_PER_BTC
        parts = {
            ReadingKind.BTC_USD: prices.USD,
            ReadingKind.DIFFICULTY: tip.difficulty / 1e12,
            ReadingKind.FEES: fees_btc_per_block,
        }
        value = (
            parts[kind]
            if kind in parts
            else hashprice_usd_per_ph_day(
                tip.difficulty, subsidy_btc(tip.height), fees_btc_per_block, prices.USD
            )
        )
    except (ArithmeticError, ValueError) as exc:
        return Rejected(RejectReason.OUT_OF_RANGE, f"hashprice not computable: {exc}")
    return check_value(value, observed_at, f"{source}@{tip.height}", bound)


class ChainHashpriceFeed(PollingFeed):
    """Hashprice computed from a block explorer's blocks and price endpoints."""

    def __init__(
        self,
        config: ChainFeedConfig,
        store: LatestStore,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
        kind: ReadingKind = ReadingKind.HASHPRICE,
    ) -> None:
        super().__init__(config, kind, store, clock, backoff=backoff)
        self._cfg = config
        self._kind = kind
        # The host only: the netloc would carry a ``user:pass@`` into readings and the ledger.
        netloc = urlsplit(config.base_url).netloc
        self._source = f"chain:{netloc.rsplit('@', 1)[-1]}"

    async def poll(self, session: aiohttp.ClientSession) -> Candidate | Rejected:
        """Fetch the recent blocks and the price; compute the hashprice."""
        base = self._cfg.base_url.rstrip("/")
        timeout_s = self._cfg.timeout_s
        blocks = await fetch_bytes(session, "GET", f"{base}/api/v1/blocks", timeout_s=timeout_s)
        prices = await fetch_bytes(session, "GET", f"{base}/api/v1/prices", timeout_s=timeout_s)
        return parse_chain(
            blocks,
            prices,
            observed_at=float(int(self._clock.now())),
            source=self._source,
            min_blocks=self._cfg.min_blocks,
            bound=self._bound,
            kind=self._kind,
        )


def _build(config: ChainFeedConfig, kind: ReadingKind, ctx: FeedContext) -> StoreFeed:
    store = ctx.store(kind, config.type, config.max_future_s)
    return ctx.poll(ChainHashpriceFeed(config, store, ctx.clock, kind=kind))


FEEDS.register("chain", ChainFeedConfig, _build)
