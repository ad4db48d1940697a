"""A day-ahead price published on its own MQTT topic reaches a day-ahead-settled option's
payout in the ledger, through the real broker and the site loop; it never moves dispatch."""

from __future__ import annotations

import json
import time

from adapters.feeds.config import MqttBrokerConfig
from adapters.feeds.mqtt import MqttLink
from adapters.feeds.payloads import DEFAULT_HASHPRICE_BOUND, DEFAULT_PRICE_BOUND, ReadingKind
from adapters.feeds.recorder import format_timestamp
from adapters.feeds.store import FeedStats
from adapters.ledger.memory import MemoryLedger
from adapters.miners.simulated import InProcessFleet
from controller.accounting.instruments import SpotSupply
from controller.accounting.options import Option
from controller.app.assemble import assemble
from controller.decision.pacing import PacingParams
from controller.decision.policy import PolicyParams
from controller.domain import OFF, build_fleet
from controller.runtime.clocks.system import SystemClock
from controller.runtime.retry import Backoff
from controller.runtime.site_loop import SiteModel
from tests.feeds.conftest import Broker, eventually

SITE = "hb-da"


def _publish(broker: Broker, topic: str, key: str, value: float) -> float:
    t = round(time.time(), 3)
    broker.publish(f"hashspark/{SITE}/{topic}", json.dumps({key: value, "ts": format_timestamp(t)}))
    return t


async def test_a_day_ahead_price_on_mqtt_settles_the_option(broker: Broker) -> None:
    clock = SystemClock()
    fleet = build_fleet([("Antminer S21", 2, [(200.0, 3500.0)])])
    call = Option("da-call", "power", "long", "call", 200.0, 2.0, "day_ahead")
    link = MqttLink(
        SITE,
        MqttBrokerConfig(host="127.0.0.1", port=broker.port),
        clock,
        FeedStats(),
        backoff=Backoff(0.05, 0.2),
    )
    price = link.reading_feed(ReadingKind.PRICE, bound=DEFAULT_PRICE_BOUND)
    hashprice = link.reading_feed(ReadingKind.HASHPRICE, bound=DEFAULT_HASHPRICE_BOUND)
    day_ahead = link.reading_feed(
        ReadingKind.PRICE, bound=DEFAULT_PRICE_BOUND, topic=f"hashspark/{SITE}/price_da"
    )
    ledger = MemoryLedger()
    loop = assemble(
        SiteModel(
            SITE,
            fleet,
            PolicyParams(supply=SpotSupply()),
            SpotSupply(),
            (call,),
            pacing=PacingParams(0.0),
        ),
        clock=clock,
        price_feed=price,
        hashprice_feed=hashprice,
        day_ahead_feed=day_ahead,
        driver=InProcessFleet(fleet, clock),
        ledger=ledger,
        cycle_s=60,
    )
    async with link:
        await link.wait_up(10)
        _publish(broker, "hashprice", "usd_per_ph_day", 55.0)
        t_da = _publish(broker, "price_da", "usd_per_mwh", 300.0)
        t = _publish(broker, "price", "usd_per_mwh", 20.0)
        await eventually(lambda: (r := day_ahead.latest(0)) is not None and r.observed_at == t_da)
        await eventually(lambda: (r := price.latest(0)) is not None and r.observed_at == t)
        await eventually(lambda: hashprice.latest(0) is not None)
        plan = await loop.cycle()
        assert (plan.point > OFF).all()  # a 300 day-ahead price does not curtail at 20 spot

        t = _publish(broker, "price", "usd_per_mwh", 25.0)  # a new interval: the first closes
        await eventually(lambda: (r := price.latest(0)) is not None and r.observed_at == t)
        await loop.cycle()

    (first,) = ledger.records
    flows = {(i, c): usd for i, c, usd in first.instruments}
    dt_h = (first.end - first.start) / 3600.0
    assert dt_h > 0
    # Settled on the day-ahead 300, not on the 20 real-time price.
    assert abs(flows[("da-call", "option_payout_usd")] - 100.0 * 2.0 * dt_h) < 1e-9
