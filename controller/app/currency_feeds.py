"""The daemon's feeds in the site's currency, and a day-ahead-only site's settlement feed.

The daemon's ledger and metrics name USD (``hashspark_net_usd_total``, the ledger's
``*_usd_micros`` columns), so a live site settles in USD: a price feed in another currency
is converted reading by reading (``ConvertedFeed``) at the site's ``exchange_rate``. A
reading without a usable rate is not offered (the staleness fail-safe acts on it), counted
as a ``no_rate`` rejection of its feed and logged once per run of them. A site whose own
``currency`` is not USD replays (its report's keys say its currency) but is refused by the
daemon at start, rather than booking euros as dollars.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from adapters.feeds.store import FeedStats, RejectReason
from controller.app.currencies import load_rate
from controller.config import ConfigError, SiteConfig
from controller.currency import USD, ExchangeRate
from controller.runtime.converted_feed import ConvertedFeed
from controller.runtime.ports import ReadingFeed

_log = structlog.get_logger("hashspark.currency")


@dataclass(frozen=True, slots=True)
class SiteCurrency:
    """What a running site's figures are in, what its prices are in, and the conversion."""

    site: str
    currency: str  # the ledger's and the metrics' (USD)
    price_currency: str  # what its price feed quotes
    price: ConvertedFeed | None  # the converting price feed, None when no conversion

    @property
    def rate(self) -> ExchangeRate | None:
        """The exchange rate the prices convert at, if they do."""
        return None if self.price is None else self.price.rate

    @property
    def rate_pair(self) -> str | None:
        """``EUR/USD``; None without a conversion."""
        return None if self.rate is None else self.rate.pair

    @property
    def rate_source(self) -> str:
        """The rate's recording, or its constant stated as an assumption; empty without one."""
        return "" if self.rate is None else self.rate.source

    @property
    def applied_rate(self) -> float | None:
        """The pair's rate applied to the newest price converted."""
        if self.price is None:
            return None
        return _as_pair_rate(self.price.last_factor, self.price_currency, self.price.rate)

    def document(self) -> dict[str, object]:
        """``/healthz``'s ``currency`` of the site: the rate, its source, what it did last."""
        doc: dict[str, object] = {
            "site": self.currency,
            "prices": self.price_currency,
            "hashprice": USD,
        }
        if self.price is not None:
            rate = self.price.rate
            doc["exchange_rate"] = {
                "pair": rate.pair,
                "source": rate.source,
                "constant": rate.is_constant,
                # quote per base applied to the newest price (None before the first)
                "applied": self.applied_rate,
                "refused_readings": self.price.refused,
                "refusing": self.price.refusing,
            }
        return doc


def _as_pair_rate(factor: float | None, src: str, rate: ExchangeRate) -> float | None:
    """A conversion factor from ``src`` as the pair's rate (``EUR/USD`` 1.08)."""
    if factor is None:
        return None
    return factor if src == rate.base else 1.0 / factor


def conversion_line(site: SiteConfig, rate: ExchangeRate) -> str:
    """``prices in EUR converted to USD at EUR/USD from ecb_....csv`` for the start log."""
    return f"prices in {site.prices_in} converted to {USD} at {rate.pair} from {rate.source}"


def site_currency_feeds(
    config_path: Path,
    site: SiteConfig,
    price: ReadingFeed,
    hashprice: ReadingFeed,
    day_ahead: ReadingFeed | None,
    *,
    stats: FeedStats | None = None,
) -> tuple[ReadingFeed, ReadingFeed, ReadingFeed | None]:
    """``price``, ``hashprice`` and ``day_ahead`` as the site decides and settles on them.

    Readings refused for want of a rate are counted in ``stats`` (``no_rate``).
    """
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
        _log.info(
            "currency_conversion",
            site=site.id,
            currency=USD,
            price_currency=site.prices_in,
            pair=rate.pair,
            rate_source=rate.source,
            constant=rate.is_constant,
            max_age_s=None if rate.is_constant else rate.max_age_s,
            note=conversion_line(site, rate),
        )
        price = _converting(price, site, rate, stats)
        if day_ahead is not None:
            day_ahead = _converting(day_ahead, site, rate, stats)
    if day_ahead is None and site.market == "day_ahead":
        day_ahead = price  # a day-ahead-only site: its options settle on the prices it buys at
    return price, hashprice, day_ahead


def _converting(
    feed: ReadingFeed, site: SiteConfig, rate: ExchangeRate, stats: FeedStats | None
) -> ConvertedFeed:
    """``feed`` converted into USD, its refusals counted and logged."""

    def refused(why: str, first: bool) -> None:
        if stats is not None:
            stats.count_rejected(feed.name, RejectReason.NO_RATE)
        if first:
            _log.warning("exchange_rate_unusable", site=site.id, feed=feed.name, reason=why)

    def recovered() -> None:
        _log.info("exchange_rate_usable_again", site=site.id, feed=feed.name)

    return ConvertedFeed(
        feed, site.prices_in, USD, rate, on_refused=refused, on_recovered=recovered
    )


def site_currency(site: SiteConfig, price: ReadingFeed) -> SiteCurrency:
    """What the running site's figures and prices are in (``price`` as ``site_currency_feeds``
    returned it)."""
    converted = price if isinstance(price, ConvertedFeed) else None
    return SiteCurrency(site.id, USD, site.prices_in, converted)
