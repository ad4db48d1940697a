"""Live prices in a site's price currency: the payload's key, the refusals it leads to, and the
converting feed's counting. The daemon end to end: tests/test_currency_daemon.py (recorded)
and tests/feeds/test_currency_mqtt_daemon.py (Mosquitto)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapters.feeds.payloads import (
    DEFAULT_HASHPRICE_BOUND,
    DEFAULT_PRICE_BOUND,
    Candidate,
    ReadingKind,
    parse_reading,
    value_key,
)
from adapters.feeds.recorded import RecordedFeed
from adapters.feeds.store import Rejected, RejectReason
from controller.config import ConfigError, load_config
from controller.currency import ExchangeRate
from controller.domain import Recording
from controller.runtime.converted_feed import ConvertedFeed
from tests.scenario_kit import T0, write_scenario

TS = '"ts": "2024-06-03T12:00:00Z"'


@pytest.mark.parametrize(
    ("payload", "key", "expected"),
    [
        (f'{{"eur_per_mwh": 81.2, {TS}}}', "eur_per_mwh", 81.2),
        (f'{{"usd_per_mwh": 41.2, {TS}}}', None, 41.2),  # the default key: USD
        (f'{{"eur_per_mwh": 81.2, {TS}}}', None, RejectReason.CURRENCY),  # EUR at a USD site
        (f'{{"usd_per_mwh": 41.2, {TS}}}', "eur_per_mwh", RejectReason.CURRENCY),
        (f'{{"sek_per_mwh": 900, {TS}}}', "eur_per_mwh", RejectReason.CURRENCY),
        (f'{{"eur_per_mwh": 81.2, "usd_per_mwh": 88, {TS}}}', "eur_per_mwh", RejectReason.CURRENCY),
        (f'{{"eur_per_mwh": "81.2", {TS}}}', "eur_per_mwh", RejectReason.MALFORMED),
        (f'{{"eur_per_mwh": 1e9, {TS}}}', "eur_per_mwh", RejectReason.OUT_OF_RANGE),
        ('{"eur_per_mwh": 81.2, "ts": "soon"}', "eur_per_mwh", RejectReason.MALFORMED),
        (f'{{"price_per_mwh": 81.2, {TS}}}', "eur_per_mwh", RejectReason.MALFORMED),
    ],
    ids=[
        "eur-read",
        "usd-read",
        "eur-at-usd-site",
        "usd-at-eur-site",
        "sek-at-eur-site",
        "two-currencies",
        "string",
        "out-of-range",
        "bad-ts",
        "no-currency",
    ],
)
def test_a_price_is_read_under_its_sites_currency_key_and_no_other(
    payload: str, key: str | None, expected: float | RejectReason
) -> None:
    result = parse_reading(
        payload.encode(), ReadingKind.PRICE, DEFAULT_PRICE_BOUND, default_source="t", key=key
    )
    if isinstance(expected, RejectReason):
        assert isinstance(result, Rejected)
        assert result.reason is expected, result.detail
        if expected is RejectReason.CURRENCY:
            assert "never read as another currency" in result.detail
    else:
        assert isinstance(result, Candidate)
        assert result.value == expected


def test_only_prices_change_key_with_the_currency() -> None:
    assert value_key(ReadingKind.PRICE, "EUR") == "eur_per_mwh"
    assert value_key(ReadingKind.HASHPRICE, "EUR") == "usd_per_ph_day"
    hashprice = parse_reading(
        f'{{"usd_per_ph_day": 55.2, {TS}}}'.encode(),
        ReadingKind.HASHPRICE,
        DEFAULT_HASHPRICE_BOUND,
        default_source="t",
        key="eur_per_mwh",  # ignored: a hashprice is USD at its source
    )
    assert isinstance(hashprice, Candidate)


def test_a_reading_without_a_usable_rate_is_told_once_and_its_recovery_once() -> None:
    rate = ExchangeRate(
        "EUR", "USD", np.array([T0, T0 + 7200.0]), np.array([1.1, 1.2]), "fx.csv", max_age_s=3600
    )
    times = [T0 + 600.0, T0 + 4000.0, T0 + 5000.0, T0 + 7300.0]
    inner = RecordedFeed(
        Recording("p.csv", Path("p.csv"), "eur_per_mwh", np.array(times), np.full(4, 100.0))
    )
    told: list[tuple[str, bool]] = []
    recovered: list[bool] = []
    feed = ConvertedFeed(
        inner,
        "EUR",
        "USD",
        rate,
        on_refused=lambda why, first: told.append((why, first)),
        on_recovered=lambda: recovered.append(True),
    )
    first = feed.latest(T0 + 700.0)
    assert first is not None
    assert first.value == pytest.approx(110.0)
    assert first.source == "p.csv (EUR->USD)"
    for now in (T0 + 4000.0, T0 + 4100.0, T0 + 5000.0, T0 + 5100.0):  # asked every cycle
        assert feed.latest(now) is None
    assert feed.refused == 2  # two readings, each counted once
    assert [first for _, first in told] == [True, False]
    assert "old" in told[0][0]
    again = feed.latest(T0 + 7300.0)
    assert again is not None
    assert again.value == pytest.approx(120.0)
    assert recovered == [True]
    assert feed.refusing is None
    assert feed.last_factor == pytest.approx(1.2)


def test_an_ercot_feed_is_usd_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHSPARK_T_PW", "p")
    monkeypatch.setenv("HASHSPARK_T_KEY", "k")
    path = write_scenario(tmp_path, [(T0, 50.0)], [(T0, 50.0)])
    ercot = (
        '{ type = "ercot", settlement_point = "HB_SOUTH", username = "u", '
        'password = { env = "HASHSPARK_T_PW" }, subscription_key = { env = "HASHSPARK_T_KEY" } }'
    )
    text = path.read_text().replace(
        'price_feed = { type = "recorded", path = "price.csv" }',
        f'price_feed = {ercot}\nprice_currency = "EUR"\n'
        'exchange_rate = { pair = "EUR/USD", rate = 1.1 }',
    )
    assert "ercot" in text
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"price_feed: an ercot feed quotes USD/MWh"):
        load_config(path)
