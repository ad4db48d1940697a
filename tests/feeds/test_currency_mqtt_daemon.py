"""Currency-tagged MQTT prices into a running daemon, over a real Mosquitto: a site whose prices
are in EUR reads ``eur_per_mwh`` and decides on it converted at its rate; a price in another
currency than a site's ``price_currency`` is refused as ``currency`` and counted, never read
as that site's currency."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path

from tests.daemon_kit import free_port, get, healthz, wait_for
from tests.feeds.conftest import Broker
from tests.mqtt_daemon_kit import fleet, mqtt_feeds, run_daemon

RATE = 1.1  # EUR/USD, a constant: stated as an assumption


def _config(tmp: Path, broker_port: int) -> Path:
    site = """
[[sites]]
id = "{id}"
pool_fee = 0.02
{currency}
{feeds}{fleet}
[sites.supply]
type = "spot"

[sites.pacing]
min_raise_interval_s = 0
"""
    feeds = mqtt_feeds(broker_port)
    eur = f'price_currency = "EUR"\nexchange_rate = {{ pair = "EUR/USD", rate = {RATE} }}'
    text = "[daemon]\ncycle_s = 0.5\n"
    text += site.format(id="usd", currency="", feeds=feeds, fleet=fleet())
    text += site.format(id="eur", currency=eur, feeds=feeds, fleet=fleet())
    path = tmp / "currencies.toml"
    path.write_text(text)
    return path


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _metrics(port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        if line.startswith("hashspark_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_eur_prices_are_read_for_a_eur_priced_site_and_refused_elsewhere(
    tmp_path: Path, broker: Broker
) -> None:
    port = free_port()
    daemon = run_daemon(_config(tmp_path, broker.port), tmp_path, port)
    try:
        wait_for(lambda: healthz(port), what="daemon up")
        for site in ("usd", "eur"):
            broker.publish(
                f"hashspark/{site}/hashprice", json.dumps({"usd_per_ph_day": 50.0, "ts": _now()})
            )
        # EHP at HP 50, fee 2 %: S19j Pro 69.21, S21 116.67 USD/MWh. 65 EUR is 71.50 USD:
        # the S19j Pros curtail (read as USD, 65 < 69.21, they would all run).
        eur_price = json.dumps({"eur_per_mwh": 65.0, "ts": _now()})
        broker.publish("hashspark/eur/price", eur_price)
        broker.publish("hashspark/usd/price", eur_price)  # a USD-priced site: refused
        broker.publish("hashspark/eur/price", json.dumps({"usd_per_mwh": 20.0, "ts": _now()}))

        load = 'hashspark_load_mw{site="eur"}'
        wait_for(lambda: _metrics(port).get(load) == 1.4, timeout=20, what="S21s only")
        rejected = (
            'hashspark_feed_readings_rejected_total{{feed="{site}:price:mqtt:hashspark/{site}/'
            'price",reason="currency"}}'
        )

        def both_refused() -> dict[str, float] | None:
            m = _metrics(port)
            keys = [rejected.format(site=s) for s in ("usd", "eur")]
            return m if all(m.get(k) == 1.0 for k in keys) else None

        m = wait_for(both_refused, timeout=10, what="a refusal counted on each site")
        assert abs(m['hashspark_spot_price_usd_per_mwh{site="eur"}'] - 65.0 * RATE) < 1e-9
        assert m['hashspark_exchange_rate{pair="EUR/USD",site="eur"}'] == RATE
        info = (
            'hashspark_site_currency_info{{currency="USD",exchange_rate="{rate}",'
            'price_currency="{ccy}",site="{site}"}}'
        )
        assert m[info.format(rate=f"constant EUR/USD {RATE:g} (assumption)", ccy="EUR", site="eur")]
        assert m[info.format(rate="", ccy="USD", site="usd")] == 1.0
        # The USD site never saw a price: nothing decided on the euros sent to it.
        assert 'hashspark_spot_price_usd_per_mwh{site="usd"}' not in m
        assert healthz(port)["sites"]["usd"]["currency"] == {
            "site": "USD",
            "prices": "USD",
            "hashprice": "USD",
        }
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
