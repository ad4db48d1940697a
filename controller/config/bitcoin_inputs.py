"""A site's Bitcoin inputs: the BTC price, the difficulty and the fees per block, as feeds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from controller.config.adapters import FeedConfig
from controller.config.bitcoin import NEEDS_FEED
from controller.runtime.config_base import Strict

#: A block's subsidy, BTC (50 at the genesis block).
MAX_SUBSIDY_BTC = 50.0
BITCOIN_FEEDS = ("btc_usd_feed", "difficulty_feed", "fees_feed")


class BitcoinConfig(Strict):
    """The site's Bitcoin inputs: each a feed (recorded, chain or MQTT) of one quantity.

    ``hashprice = "derived"`` builds the hashprice from them, ``HP = 86400 * 1e15 *
    (subsidy + fees per block) * btc_usd / (difficulty * 2**32)``, instead of reading the
    site's ``hashprice_feed`` (then all three feeds are needed, and the replay uses it).
    """

    btc_usd_feed: FeedConfig | None = None
    difficulty_feed: FeedConfig | None = None
    fees_feed: FeedConfig | None = None
    subsidy_btc: float = Field(default=3.125, ge=0, le=MAX_SUBSIDY_BTC)
    hashprice: Literal["feed", "derived"] = "feed"

    @model_validator(mode="after")
    def _derivable(self) -> BitcoinConfig:
        if self.hashprice == "derived":
            missing = [k for k in BITCOIN_FEEDS if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a derived hashprice needs {', '.join(missing)}")
        for key in BITCOIN_FEEDS:
            feed = getattr(self, key)
            if feed is not None and feed.type not in {"recorded", "chain", "mqtt"}:
                raise ValueError(f"{key}: a {feed.type!r} feed has no Bitcoin data")
        return self


def missing_bitcoin_feed(hedges: tuple[object, ...], bitcoin: BitcoinConfig | None) -> str | None:
    """Why a hedge cannot settle (``hedges[k] (id) settles on ...: give ...``), or None."""
    for k, h in enumerate(hedges):
        feed = NEEDS_FEED.get(str(getattr(h, "type", "")))
        if feed is not None and (bitcoin is None or getattr(bitcoin, feed) is None):
            return f"hedges[{k}] ({getattr(h, 'id', '')}) settles on bitcoin.{feed}: give it"
    return None
