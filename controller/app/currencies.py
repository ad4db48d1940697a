"""A site's recordings in its own currency: which column to read, the rate, the conversion.

The header of a price recording names its currency (``usd_per_mwh``, ``eur_per_mwh``); it must
agree with the site's ``price_currency`` (else one line naming that key, exit 2). The rate is
``[sites.exchange_rate]``: a recording (``timestamp,usd_per_eur``) or a constant, which the
report states as an assumption. Conversion itself is the pure core's
(``controller/currency.py``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

from adapters.feeds.recorded import HASHPRICE_COLUMN, RecordingError, load_recording
from controller.config import SiteConfig
from controller.currency import USD, ExchangeRate
from controller.domain import Recording

#: The hashprice is USD per PH/s per day at its source, whatever the site's currency.
HASHPRICE_CURRENCY = USD


def price_column(currency: str) -> str:
    """The value column of a price recording in ``currency``: ``eur_per_mwh``."""
    return f"{currency.lower()}_per_mwh"


def header_currency(path: Path) -> str | None:
    """The currency a recording's header names (``timestamp,eur_per_mwh`` -> ``EUR``), if any.

    Reads the first line only; anything unreadable is left to the loader to report.
    """
    try:
        with path.open("rb") as f:
            first = f.readline(200)
    except OSError:
        return None
    if first[:2] == b"\x1f\x8b":  # gzipped: the loader reads the header
        try:
            with gzip.open(path, "rb") as gz:
                first = gz.readline(200)
        except (OSError, EOFError):
            return None
    parts = first.decode("utf-8", "replace").strip().split(",")
    if len(parts) != 2 or not parts[1].strip().endswith("_per_mwh"):
        return None
    code = parts[1].strip().removesuffix("_per_mwh")
    return code.upper() if len(code) == 3 and code.isalpha() else None


def load_prices(site: SiteConfig, key: str, path: Path) -> Recording:
    """A price recording of ``site`` (under ``sites[id].<key>``) in the price feed's currency."""
    wanted = site.prices_in
    found = header_currency(path)
    if found is not None and found != wanted:
        raise RecordingError(
            f"{path}: sites[{site.id}].price_currency: the {key} recording's prices are in "
            f'{found} and the site\'s prices are {wanted}: set price_currency = "{found}" '
            "(and an exchange_rate if the site is in another currency)"
        )
    return load_recording(path, price_column(wanted))


def load_rate(site: SiteConfig) -> ExchangeRate | None:
    """The site's exchange rate as a core value, loading its recording if it has one."""
    cfg = site.exchange_rate
    if cfg is None:
        return None
    constant = cfg.constant()
    if constant is not None:
        return constant
    assert cfg.path is not None  # the config's validator: rate or path
    rec = load_recording(cfg.path, cfg.column)
    return ExchangeRate(
        cfg.base, cfg.quote, rec.times, rec.values, rec.source, max_age_s=cfg.max_age_s
    )


def load_hashprice(path: Path) -> Recording:
    """The hashprice recording, USD per PH/s per day at its source."""
    return load_recording(path, HASHPRICE_COLUMN)
