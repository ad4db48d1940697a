"""The daemon's feeds in the site's currency, and a day-ahead-only site's settlement feed.

The daemon's ledger and metrics name USD, so a live site settles in USD: a price feed in
another currency is converted reading by reading (``ConvertedFeed``) at the site's
``exchange_rate``. A site whose own ``currency`` is not USD replays (its report's keys say
its currency) but is refused by the daemon at start, rather than booking euros as dollars.
"""

from __future__ import annotations

from pathlib import Path

from controller.app.currencies import load_rate
from controller.config import ConfigError, SiteConfig
from controller.currency import USD
from controller.runtime.converted_feed import ConvertedFeed
from controller.runtime.ports import ReadingFeed


def site_currency_feeds(
    config_path: Path,
    site: SiteConfig,
    price: ReadingFeed,
    hashprice: ReadingFeed,
    day_ahead: ReadingFeed | None,
) -> tuple[ReadingFeed, ReadingFeed, ReadingFeed | None]:
    """``price``, ``hashprice`` and ``day_ahead`` as the site decides and settles on them."""
    if site.currency != USD:
        raise ConfigError(
            [
                f"{config_path}: sites[{site.id}].currency: the daemon's ledger and metrics are "
                f"in USD; a {site.currency} site replays (hashspark replay) but does not run: "
                'set currency = "USD" with price_currency and exchange_rate'
            ]
        )
    if site.prices_in != USD:
        rate = load_rate(site)
        assert rate is not None  # the config's validator
        price = ConvertedFeed(price, site.prices_in, USD, rate)
        if day_ahead is not None:
            day_ahead = ConvertedFeed(day_ahead, site.prices_in, USD, rate)
    if day_ahead is None and site.market == "day_ahead":
        day_ahead = price  # a day-ahead-only site: its options settle on the prices it buys at
    return price, hashprice, day_ahead
