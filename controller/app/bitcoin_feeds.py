"""A live site's Bitcoin feeds (``[sites.bitcoin]``) and its hashprice, read or derived."""

from __future__ import annotations

from pathlib import Path

from adapters.feeds.derived import DerivedHashpriceFeed
from adapters.feeds.payloads import ReadingKind
from adapters.feeds.site import SiteFeeds
from controller.config import SiteConfig
from controller.config.bitcoin_inputs import BITCOIN_FEEDS
from controller.runtime.ports import ReadingFeed

#: The reading kind of each of ``BITCOIN_FEEDS``.
KINDS = (ReadingKind.BTC_USD, ReadingKind.DIFFICULTY, ReadingKind.FEES)


def bitcoin_configs(site: SiteConfig) -> tuple[object, ...]:
    """The site's Bitcoin feed configs that are set."""
    if site.bitcoin is None:
        return ()
    return tuple(f for k in BITCOIN_FEEDS if (f := getattr(site.bitcoin, k)) is not None)


def bitcoin_feeds(
    site: SiteConfig, feeds: SiteFeeds, *, record_dir: Path, remember_dir: Path
) -> tuple[ReadingFeed | None, ReadingFeed | None, ReadingFeed | None, ReadingFeed]:
    """The BTC price, difficulty and fees feeds (None where not configured), and the
    hashprice: the site's ``hashprice_feed``, or derived from the three Bitcoin feeds.

    Each live Bitcoin feed records its readings and remembers its newest across restarts,
    as the price and hashprice feeds do.
    """
    max_age_s = site.failsafe.hashprice_max_age_s
    parts: list[ReadingFeed | None] = []
    for key, kind in zip(BITCOIN_FEEDS, KINDS, strict=True):
        config = None if site.bitcoin is None else getattr(site.bitcoin, key)
        leaf = key.removesuffix("_feed")
        parts.append(
            None
            if config is None
            else feeds.add(
                config,
                kind,
                record_dir=record_dir / leaf,
                remember=remember_dir / f"{leaf}.json",
                max_age_s=max_age_s,
            )
        )
    btc_usd, difficulty, fees = parts
    if site.hashprice_feed is not None:
        hashprice = feeds.add(
            site.hashprice_feed,
            ReadingKind.HASHPRICE,
            record_dir=record_dir / "hashprice",
            remember=remember_dir / "hashprice.json",
            max_age_s=max_age_s,
        )
    else:  # bitcoin.hashprice = "derived": the config checked all three are set
        assert site.bitcoin is not None
        assert btc_usd is not None
        assert difficulty is not None
        assert fees is not None
        hashprice = DerivedHashpriceFeed(btc_usd, difficulty, fees, site.bitcoin.subsidy_btc)
    return btc_usd, difficulty, fees, hashprice
