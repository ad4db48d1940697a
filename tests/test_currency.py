"""Currencies in the pure core, the daemon's converted feed and the config's checks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from adapters.feeds.recorded import RecordedFeed
from controller.app.currency_feeds import site_currency_feeds
from controller.config import ConfigError, load_config
from controller.currency import CurrencyError, ExchangeRate, convert
from controller.domain import Recording
from controller.runtime.converted_feed import ConvertedFeed
from tests.scenario_kit import T0, write_scenario

DAY = 86_400.0


def _rec(times: list[float], values: list[float], column: str = "eur_per_mwh") -> Recording:
    return Recording("r.csv", Path("r.csv"), column, np.array(times), np.array(values))


#: 1 EUR = 1.10 USD from T0, 1.20 USD from T0 + 100 s.
RATE = ExchangeRate("EUR", "USD", np.array([T0, T0 + 100.0]), np.array([1.10, 1.20]), "fx.csv")


@pytest.mark.parametrize(
    ("src", "dst", "rate", "expected"),
    [
        ("EUR", "USD", RATE, [110.0, 120.0, 120.0]),  # each price at the rate of its own time
        ("USD", "EUR", RATE, [100 / 1.10, 100 / 1.20, 100 / 1.20]),  # the other way round
        ("EUR", "EUR", None, [100.0, 100.0, 100.0]),  # nothing to convert, no rate needed
        ("EUR", "USD", ExchangeRate.constant("EUR", "USD", 1.05), [105.0, 105.0, 105.0]),
    ],
    ids=["eur-to-usd", "usd-to-eur", "same", "constant"],
)
def test_convert_each_observation_at_the_rate_published_before_it(
    src: str, dst: str, rate: ExchangeRate | None, expected: list[float]
) -> None:
    rec = _rec([T0 + 50.0, T0 + 100.0, T0 + 150.0], [100.0, 100.0, 100.0])
    out = convert(rec, src, dst, rate, "mwh")
    np.testing.assert_allclose(out.values, expected, rtol=1e-12)
    np.testing.assert_array_equal(out.times, rec.times)  # a price still holds for its hour
    if src != dst:
        assert out.column == f"{dst.lower()}_per_mwh"  # labelled with what it now is
        assert rate is not None
        assert rate.source in out.source


def test_a_constant_rate_says_it_is_an_assumption() -> None:
    rate = ExchangeRate.constant("EUR", "USD", 1.08)
    assert rate.is_constant
    assert "assumption" in rate.source
    assert not RATE.is_constant


@pytest.mark.parametrize(
    ("rec", "rate", "dst", "message"),
    [
        (_rec([T0 - 1.0], [1.0]), RATE, "USD", "no EUR/USD rate at or before 2024-06-01T04:59:59Z"),
        (
            _rec([T0 + 9 * DAY], [1.0]),
            ExchangeRate("EUR", "USD", np.array([T0]), np.array([1.1]), "fx.csv", 7 * DAY),
            "USD",
            "9.0 days old (more than 7)",
        ),
        (_rec([T0 + 1.0], [1.0]), RATE, "SEK", "EUR/USD: it cannot convert EUR to SEK"),
        (_rec([T0 + 1.0], [1.0]), None, "USD", "no exchange rate"),
    ],
    ids=["before-the-first-rate", "stale-rate", "wrong-pair", "no-rate"],
)
def test_a_conversion_that_cannot_be_made_is_refused(
    rec: Recording, rate: ExchangeRate | None, dst: str, message: str
) -> None:
    with pytest.raises(CurrencyError, match=re.escape(message)):
        convert(rec, "EUR", dst, rate, "mwh")


def test_the_daemons_converted_feed_converts_each_reading_and_drops_it_without_a_rate() -> None:
    inner = RecordedFeed(_rec([T0 - 10.0, T0 + 150.0], [80.0, 90.0]))
    feed = ConvertedFeed(inner, "EUR", "USD", RATE)
    assert feed.latest(T0 - 20.0) is None  # nothing yet
    assert feed.latest(T0) is None  # a reading from before any rate: not offered
    reading = feed.latest(T0 + 200.0)
    assert reading is not None
    assert reading.value == pytest.approx(90.0 * 1.20)
    assert reading.observed_at == T0 + 150.0  # its age is the price's, not the rate's
    assert feed.next_change_after(T0) == T0 + 150.0
    assert "EUR -> USD" in feed.name


def _site(tmp: Path, extra: str, failsafe: str = "") -> Path:
    path = write_scenario(tmp, [(T0, 50.0)], [(T0, 50.0)], failsafe=failsafe)
    text = path.read_text().replace("pool_fee = 0.02\n", f"pool_fee = 0.02\n{extra}\n", 1)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("extra", "failsafe", "names"),
    [
        ('price_currency = "EUR"', "", ["sites[0]: exchange_rate", "the price feed is in EUR"]),
        ('currency = "EUR"', "", ["sites[0]: exchange_rate", "the hashprice is in USD"]),
        (
            'price_currency = "SEK"\nexchange_rate = { pair = "EUR/USD", rate = 1.1 }',
            "",
            ["sites[0]: exchange_rate.pair", "EUR/USD cannot convert the price feed (SEK)"],
        ),
        (
            'price_currency = "EUR"\nexchange_rate = { pair = "EUR/USD" }',
            "",
            ["sites[0].exchange_rate", "give either rate"],
        ),
        (
            'market = "day_ahead"',
            "price_max_age_s = 900",
            ["sites[0]: failsafe.price_max_age_s", "holds for its hour"],
        ),
    ],
    ids=["eur-prices-no-rate", "eur-site-no-rate", "wrong-pair", "no-rate-source", "da-age"],
)
def test_a_site_whose_currencies_or_market_do_not_fit_stops_at_load(
    tmp_path: Path, extra: str, failsafe: str, names: list[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_site(tmp_path, extra, failsafe))
    line = err.value.messages[0]
    assert "\n" not in line
    for name in names:
        assert name in line


def test_a_site_with_a_rate_for_each_conversion_loads(tmp_path: Path) -> None:
    path = _site(
        tmp_path,
        'currency = "EUR"\nprice_currency = "EUR"\n'
        'exchange_rate = { pair = "EUR/USD", rate = 1.1 }',
    )
    site = load_config(path).config.sites[0]
    assert (site.currency, site.prices_in) == ("EUR", "EUR")
    assert site.exchange_rate is not None
    assert site.exchange_rate.column == "usd_per_eur"


def test_the_daemon_converts_a_usd_sites_eur_prices_and_refuses_a_eur_site(tmp_path: Path) -> None:
    price = RecordedFeed(_rec([T0], [80.0]))
    hashprice = RecordedFeed(_rec([T0], [50.0], "usd_per_ph_day"))
    usd = _site(
        tmp_path,
        'price_currency = "EUR"\nmarket = "day_ahead"\n'
        'exchange_rate = { pair = "EUR/USD", rate = 1.1 }',
        failsafe="price_max_age_s = 7200",
    )
    site = load_config(usd).config.sites[0]
    p, hp, da = site_currency_feeds(usd, site, price, hashprice, None)
    reading = p.latest(T0)
    assert reading is not None
    assert reading.value == pytest.approx(88.0)
    assert hp is hashprice  # USD already
    assert da is p  # a day-ahead-only site settles day-ahead options on its own prices
    eur = _site(tmp_path, 'currency = "EUR"\nexchange_rate = { pair = "EUR/USD", rate = 1.1 }')
    with pytest.raises(ConfigError, match=r"sites\[test-site\]\.currency: the daemon's ledger"):
        site_currency_feeds(eur, load_config(eur).config.sites[0], price, hashprice, None)
