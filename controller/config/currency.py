"""A site's currencies and market: what its figures are in, and what its prices are in.

``currency`` is what the site decides and settles in; ``price_currency`` what its price feed
quotes (default: the site's); the hashprice is USD per PH/s per day at its source. Any of
them differing needs ``exchange_rate``: a recording of rates or a constant rate, which every
report then states as an assumption. A mismatch without a rate is refused at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from controller.currency import USD, ExchangeRate
from controller.runtime.config_base import Strict, resolve_path

#: ISO 4217 code, upper case.
CURRENCY_PATTERN = r"^[A-Z]{3}$"
#: A rate beyond this (quote per base) is a typo, whatever the pair.
MAX_EXCHANGE_RATE = 1e6
#: A rate recording may go this long without a new rate (weekends, holidays) by default.
DEFAULT_RATE_MAX_AGE_S = 7 * 86_400.0
MAX_RATE_AGE_S = 31 * 86_400.0

#: Price feed types whose source quotes USD/MWh whatever the site says (ERCOT's API).
USD_ONLY_PRICE_FEEDS = frozenset({"ercot"})

#: ``real_time``: the price feed is the real-time market (a price holds until the next one);
#: ``day_ahead``: it is the hourly day-ahead market (a price holds for its hour), and options
#: settled on day-ahead prices read it when the site has no separate ``day_ahead_feed``.
Market = Literal["real_time", "day_ahead"]


class ExchangeRateConfig(Strict):
    """``pair = "EUR/USD"`` (1 EUR = rate USD) with a constant ``rate`` or a recording ``path``.

    The recording is canonical CSV with the header ``timestamp,<quote>_per_<base>``
    (``usd_per_eur``), each rate stamped when it was published.
    """

    pair: str = Field(pattern=r"^[A-Z]{3}/[A-Z]{3}$")
    rate: float | None = Field(default=None, gt=0, le=MAX_EXCHANGE_RATE)
    path: Path | None = None
    max_age_s: float = Field(default=DEFAULT_RATE_MAX_AGE_S, gt=0, le=MAX_RATE_AGE_S)

    _check_path = field_validator("path")(resolve_path)

    @model_validator(mode="after")
    def _one_source(self) -> ExchangeRateConfig:
        if (self.rate is None) == (self.path is None):
            raise ValueError("give either rate (a constant, an assumption) or path (a recording)")
        if self.base == self.quote:
            raise ValueError(f"pair {self.pair} converts a currency into itself")
        return self

    @property
    def base(self) -> str:
        """``EUR`` of ``EUR/USD``."""
        return self.pair.split("/")[0]

    @property
    def quote(self) -> str:
        """``USD`` of ``EUR/USD``."""
        return self.pair.split("/")[1]

    @property
    def column(self) -> str:
        """The recording's value column: ``usd_per_eur``."""
        return f"{self.quote.lower()}_per_{self.base.lower()}"

    def constant(self) -> ExchangeRate | None:
        """The constant rate as a core value; None when the rate is a recording."""
        if self.rate is None:
            return None
        return ExchangeRate.constant(self.base, self.quote, self.rate)


def check_currencies(currency: str, price_currency: str, rate: ExchangeRateConfig | None) -> None:
    """Every conversion the site needs has a rate: raises ``ValueError`` with the key."""
    needs = [(price_currency, "the price feed"), (USD, "the hashprice")]
    for src, what in needs:
        if src == currency:
            continue
        if rate is None:
            raise ValueError(
                f"exchange_rate: {what} is in {src} and the site in {currency}: give "
                f'exchange_rate (e.g. pair = "{src}/{currency}" with rate or path)'
            )
        if {src, currency} != {rate.base, rate.quote}:
            raise ValueError(
                f"exchange_rate.pair: {rate.pair} cannot convert {what} ({src}) into the "
                f"site's {currency}"
            )
